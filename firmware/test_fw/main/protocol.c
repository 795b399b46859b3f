/*
 * The ate line protocol, device side: the pure part (see protocol.h). No ESP-IDF here.
 *
 * The grammar follows the host's codec, ate/protocol/lines.py, decision for decision:
 * where a request starts, how the checksum is split off, how tokens are split, which
 * lines are noise. test/host/ checks the two against each other.
 */
#include "protocol.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- small character helpers (ASCII only, independent of the C locale) ------------------- */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

int ate_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* The characters Python's str.split() splits on, restricted to ASCII. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
           (c >= 0x1c && c <= 0x1f);
}

static bool is_printable(char c) { return c > 0x20 && c < 0x7f; }

static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || is_digit(c) || c == '_'; }

/* ---- error codes ----------------------------------------------------------------------- */

const char *ate_code_name(ate_code_t code)
{
    switch (code) {
    case ATE_OK:
        return "OK";
    case ATE_EPROTO:
        return "EPROTO";
    case ATE_EUNKNOWN:
        return "EUNKNOWN";
    case ATE_EARG:
        return "EARG";
    case ATE_EHW:
        return "EHW";
    case ATE_EBUSY:
        return "EBUSY";
    case ATE_EVERSION:
        return "EVERSION";
    case ATE_EPERM:
        return "EPERM";
    }
    return "EHW";
}

/* ---- CRC-16/CCITT-FALSE ------------------------------------------------------------------ */

/* Bitwise rather than a 256-entry table: a 4 KB line costs ~32k shift steps (well under a
 * millisecond at 160 MHz), and there is nothing to get wrong in a table. Same function as
 * the host's binascii.crc_hqx(data, 0xFFFF). */
uint16_t ate_crc16_update(uint16_t crc, const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    uint32_t c = crc; /* 32-bit working copy: no integer-promotion surprises */
    for (size_t i = 0; i < len; i++) {
        c ^= (uint32_t)p[i] << 8;
        for (int bit = 0; bit < 8; bit++) {
            c = (c & 0x8000u) ? ((c << 1) ^ 0x1021u) : (c << 1);
        }
        c &= 0xFFFFu;
    }
    return (uint16_t)c;
}

uint16_t ate_crc16(const void *data, size_t len)
{
    return ate_crc16_update((uint16_t)ATE_CRC16_INIT, data, len);
}

/* ---- line assembly ----------------------------------------------------------------------- */

void ate_line_reader_reset(ate_line_reader_t *reader)
{
    reader->len = 0;
    reader->dropping = false;
    reader->buf[0] = '\0';
}

bool ate_line_reader_feed(ate_line_reader_t *reader, uint8_t byte, ate_line_t *line)
{
    if (byte == '\n') {
        const bool was_dropping = reader->dropping;
        size_t n = reader->len;
        reader->len = 0;
        reader->dropping = false;
        if (was_dropping) {
            return false; /* the tail of an over-long run: never a valid request */
        }
        if (n > 0 && reader->buf[n - 1] == '\r') {
            n--;
        }
        reader->buf[n] = '\0';
        line->text = reader->buf;
        line->len = n;
        return true;
    }
    if (reader->dropping) {
        return false;
    }
    if (reader->len == ATE_MAX_LINE) {
        /* Too long to be protocol. Forget it now rather than at the newline, so a line
         * that never ends costs nothing. */
        reader->len = 0;
        reader->dropping = true;
        return false;
    }
    reader->buf[reader->len++] = (char)byte;
    return false;
}

/* ---- requests ------------------------------------------------------------------------------- */

ate_frame_status_t ate_frame_parse(const char *line, size_t len, ate_frame_t *frame)
{
    memset(frame, 0, sizeof(*frame));

    /* Rule 2 for requests: bytes may precede the '!', which must be followed by a digit. */
    size_t start = len;
    for (size_t i = 0; i + 1 < len; i++) {
        if (line[i] == '!' && is_digit(line[i + 1])) {
            start = i;
            break;
        }
    }
    if (start == len) {
        return ATE_FRAME_NOT_REQUEST;
    }
    const char *text = line + start;
    size_t n = len - start;
    while (n > 0 && is_space(text[n - 1])) {
        n--;
    }

    /* The checksum is the last '*' and exactly four characters after it. */
    size_t star = n;
    for (size_t i = n; i > 0; i--) {
        if (text[i - 1] == '*') {
            star = i - 1;
            break;
        }
    }
    const size_t body_len = star; /* == n when there is no '*' */

    /* The id: everything between '!' and the first space must be 1 to 5 ASCII digits with
     * a value of 1..65535 (the host's _ID_RE). Read before the checksum is judged, so a bad
     * checksum can still be answered under its id. */
    size_t head_end = 1;
    while (head_end < body_len && text[head_end] != ' ') {
        head_end++;
    }
    if (head_end - 1 > 5) {
        frame->error = "request id must be 1..65535";
        return ATE_FRAME_NO_ID;
    }
    uint32_t id = 0;
    for (size_t i = 1; i < head_end; i++) {
        if (!is_digit(text[i])) {
            frame->error = "request id is not a number";
            return ATE_FRAME_NO_ID;
        }
        id = id * 10u + (uint32_t)(text[i] - '0');
        if (id > 0xFFFFu) {
            frame->error = "request id must be 1..65535";
            return ATE_FRAME_NO_ID;
        }
    }
    if (id == 0) {
        frame->error = "request id must be 1..65535";
        return ATE_FRAME_NO_ID;
    }
    frame->id = (uint16_t)id;
    frame->body = text;
    frame->body_len = body_len;

    if (star == n) {
        /* No checksum: a person typing at a terminal. Accepted (PROTOCOL.md, Lines). */
        frame->had_checksum = false;
        return ATE_FRAME_OK;
    }
    frame->had_checksum = true;
    if (n - star != 5) {
        frame->error = "malformed checksum: want *XXXX at the end of the line";
        return ATE_FRAME_BAD;
    }
    uint16_t want = 0;
    for (size_t i = star + 1; i < n; i++) {
        const int v = ate_hex_value(text[i]);
        if (v < 0) {
            frame->error = "bad checksum digits";
            return ATE_FRAME_BAD;
        }
        want = (uint16_t)((want << 4) | (uint16_t)v);
    }
    if (ate_crc16(text, star) != want) {
        frame->error = "checksum mismatch";
        return ATE_FRAME_BAD;
    }
    return ATE_FRAME_OK;
}

/* [a-z][a-z0-9_]*(\.[a-z0-9_]+)*  -- the host's _COMMAND_RE. */
static bool is_command_name(const char *s)
{
    if (!(s[0] >= 'a' && s[0] <= 'z')) {
        return false;
    }
    bool after_dot = false;
    for (const char *p = s + 1; *p != '\0'; p++) {
        if (*p == '.') {
            if (after_dot) {
                return false; /* ".." */
            }
            after_dot = true;
        } else if (is_lower_alnum(*p)) {
            after_dot = false;
        } else {
            return false;
        }
    }
    return !after_dot; /* no trailing '.' */
}

ate_code_t ate_request_parse(const ate_frame_t *frame, char *work, size_t work_size,
                             ate_request_t *request, const char **error)
{
    memset(request, 0, sizeof(*request));
    *error = NULL;
    if (frame->body_len + 1 > work_size) {
        *error = "request too long";
        return ATE_EPROTO;
    }
    memcpy(work, frame->body, frame->body_len);
    work[frame->body_len] = '\0';
    request->id = frame->id;

    /* Skip "!<id>" up to the first space (the id is already read); then split the rest on
     * whitespace runs, like the host: head, _, rest = body[1:].partition(" "). */
    char *p = work + 1;
    while (*p != '\0' && *p != ' ') {
        p++;
    }
    bool have_command = false;
    for (;;) {
        while (*p != '\0' && is_space(*p)) {
            *p++ = '\0';
        }
        if (*p == '\0') {
            break;
        }
        char *token = p;
        while (*p != '\0' && !is_space(*p)) {
            p++;
        }
        if (*p != '\0') {
            *p++ = '\0';
        }

        if (strchr(token, '*') != NULL) {
            /* Only the checksum may follow a '*'; one inside the body is line damage. */
            *error = "'*' is only allowed before the checksum";
            return ATE_EPROTO;
        }
        if (!have_command) {
            if (!is_command_name(token)) {
                *error = "request without a command (want a dotted lowercase name)";
                return ATE_EPROTO;
            }
            request->command = token;
            have_command = true;
            continue;
        }
        if (request->argc + request->optc == ATE_MAX_TOKENS) {
            *error = "too many arguments (at most 16)";
            return ATE_EARG;
        }
        char *eq = strchr(token, '=');
        if (eq != NULL) {
            if (eq == token) {
                *error = "option without a key (=value)";
                return ATE_EPROTO;
            }
            *eq = '\0';
            request->optv[request->optc].key = token;
            request->optv[request->optc].value = eq + 1;
            request->optc++;
        } else if (request->optc > 0) {
            *error = "positional arguments must come before key=value";
            return ATE_EPROTO;
        } else {
            request->argv[request->argc++] = token;
        }
    }
    if (!have_command) {
        *error = "request without a command";
        return ATE_EPROTO;
    }
    return ATE_OK;
}

/* ---- replies ------------------------------------------------------------------------------ */

/* Room for the "*XXXX\n" tail and the NUL, and never past the protocol's line limit. */
static size_t body_limit(const ate_reply_t *reply)
{
    size_t cap = reply->cap - 1; /* NUL */
    if (cap > ATE_MAX_LINE) {
        cap = ATE_MAX_LINE;
    }
    return cap - 6; /* "*XXXX\n" */
}

static void put_raw(ate_reply_t *reply, const char *s, size_t n)
{
    if (reply->overflow || reply->len + n > body_limit(reply)) {
        reply->overflow = true;
        return;
    }
    memcpy(reply->buf + reply->len, s, n);
    reply->len += n;
    reply->buf[reply->len] = '\0';
}

static void put_str(ate_reply_t *reply, const char *s) { put_raw(reply, s, strlen(s)); }

/* A value that cannot break the grammar: no whitespace, '*' or control bytes. */
static void put_value(ate_reply_t *reply, const char *s)
{
    for (; *s != '\0'; s++) {
        const char c = is_printable(*s) && *s != '*' ? *s : '_';
        put_raw(reply, &c, 1);
    }
}

static void put_key(ate_reply_t *reply, const char *key)
{
    put_raw(reply, " ", 1);
    put_value(reply, key);
    put_raw(reply, "=", 1);
}

void ate_reply_init(ate_reply_t *reply, char *buf, size_t cap, uint16_t id)
{
    memset(reply, 0, sizeof(*reply));
    reply->buf = buf;
    reply->cap = cap;
    reply->id = id;
    char head[16];
    const int n = snprintf(head, sizeof(head), "@%u OK", (unsigned)id);
    put_raw(reply, head, (size_t)n);
}

void ate_notice_init(ate_reply_t *reply, char *buf, size_t cap, const char *name)
{
    memset(reply, 0, sizeof(*reply));
    reply->buf = buf;
    reply->cap = cap;
    put_str(reply, "@* ");
    put_value(reply, name);
}

void ate_reply_str(ate_reply_t *reply, const char *key, const char *value)
{
    put_key(reply, key);
    put_value(reply, value);
}

void ate_reply_uint(ate_reply_t *reply, const char *key, uint64_t value)
{
    char text[24];
    const int n = snprintf(text, sizeof(text), "%" PRIu64, value);
    put_key(reply, key);
    put_raw(reply, text, (size_t)n);
}

void ate_reply_int(ate_reply_t *reply, const char *key, int64_t value)
{
    char text[24];
    const int n = snprintf(text, sizeof(text), "%" PRId64, value);
    put_key(reply, key);
    put_raw(reply, text, (size_t)n);
}

void ate_reply_hex(ate_reply_t *reply, const char *key, uint32_t value, unsigned digits)
{
    char text[16];
    if (digits > 8) {
        digits = 8;
    }
    const int n = snprintf(text, sizeof(text), "0x%0*" PRIx32, (int)digits, value);
    put_key(reply, key);
    put_raw(reply, text, (size_t)n);
}

void ate_reply_bytes(ate_reply_t *reply, const char *key, const uint8_t *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    put_key(reply, key);
    for (size_t i = 0; i < len; i++) {
        const char pair[2] = {digits[data[i] >> 4], digits[data[i] & 0x0f]};
        put_raw(reply, pair, 2);
    }
}

void ate_reply_fixed(ate_reply_t *reply, const char *key, int32_t value, unsigned decimals)
{
    uint32_t scale = 1;
    if (decimals > 6) {
        decimals = 6;
    }
    for (unsigned i = 0; i < decimals; i++) {
        scale *= 10u;
    }
    /* Magnitude in 64 bits so INT32_MIN negates safely. */
    const uint64_t mag = value < 0 ? (uint64_t)(-(int64_t)value) : (uint64_t)value;
    char text[32];
    int n;
    if (decimals == 0) {
        n = snprintf(text, sizeof(text), "%s%" PRIu64, value < 0 ? "-" : "", mag);
    } else {
        n = snprintf(text, sizeof(text), "%s%" PRIu64 ".%0*" PRIu64, value < 0 ? "-" : "",
                     mag / scale, (int)decimals, mag % scale);
    }
    put_key(reply, key);
    put_raw(reply, text, (size_t)n);
}

void ate_reply_vfail(ate_reply_t *reply, ate_code_t code, const char *fmt, va_list ap)
{
    if (reply->code != ATE_OK) {
        return; /* the first failure is the cause; later ones are consequences */
    }
    reply->code = code == ATE_OK ? ATE_EHW : code;
    vsnprintf(reply->msg, sizeof(reply->msg), fmt, ap);
}

void ate_reply_fail(ate_reply_t *reply, ate_code_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ate_reply_vfail(reply, code, fmt, ap);
    va_end(ap);
}

bool ate_reply_failed(const ate_reply_t *reply) { return reply->code != ATE_OK; }

void ate_reply_after(ate_reply_t *reply, ate_after_fn fn, uint32_t arg)
{
    reply->after = fn;
    reply->after_arg = arg;
}

static size_t seal(char *buf, size_t len)
{
    const uint16_t crc = ate_crc16(buf, len);
    static const char digits[] = "0123456789ABCDEF";
    buf[len++] = '*';
    buf[len++] = digits[(crc >> 12) & 0xf];
    buf[len++] = digits[(crc >> 8) & 0xf];
    buf[len++] = digits[(crc >> 4) & 0xf];
    buf[len++] = digits[crc & 0xf];
    buf[len++] = '\n';
    buf[len] = '\0';
    return len;
}

size_t ate_reply_finish(ate_reply_t *reply)
{
    if (reply->overflow && reply->code == ATE_OK) {
        ate_reply_fail(reply, ATE_EARG, "reply would exceed %d bytes; ask for less data",
                       ATE_MAX_LINE);
    }
    if (reply->code != ATE_OK) {
        reply->after = NULL; /* a failed request changes nothing after its answer */
        reply->len = ate_format_error(reply->buf, reply->cap, reply->id, reply->code, reply->msg);
        return reply->len;
    }
    reply->len = seal(reply->buf, reply->len);
    return reply->len;
}

size_t ate_format_error(char *buf, size_t cap, uint16_t id, ate_code_t code, const char *msg)
{
    if (cap < 32) {
        return 0; /* ate_reply_init documents the minimum; nothing sensible fits */
    }
    size_t limit = cap - 1;
    if (limit > ATE_MAX_LINE) {
        limit = ATE_MAX_LINE;
    }
    limit -= 6; /* "*XXXX\n" */

    int head = snprintf(buf, cap, "@%u ERR %s ", (unsigned)id,
                        ate_code_name(code == ATE_OK ? ATE_EHW : code));
    size_t len = (size_t)head;
    /* The host does " ".join(message.split()) or "-"; '*' and control bytes would break the
     * line, so they become '?'. */
    bool pending_space = false;
    const size_t msg_start = len;
    for (const char *p = msg; *p != '\0' && len < limit; p++) {
        if (is_space(*p)) {
            pending_space = len > msg_start;
            continue;
        }
        if (pending_space) {
            if (len + 1 >= limit) {
                break;
            }
            buf[len++] = ' ';
            pending_space = false;
        }
        buf[len++] = (is_printable(*p) && *p != '*') ? *p : '?';
    }
    if (len == msg_start) {
        buf[len++] = '-';
    }
    return seal(buf, len);
}

/* ---- argument helpers ---------------------------------------------------------------- */

bool ate_parse_uint(const char *text, uint32_t *value)
{
    uint64_t v = 0;
    const char *p = text;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        p += 2;
        if (*p == '\0') {
            return false;
        }
        for (; *p != '\0'; p++) {
            const int d = ate_hex_value(*p);
            if (d < 0) {
                return false;
            }
            v = (v << 4) | (uint64_t)d;
            if (v > UINT32_MAX) {
                return false;
            }
        }
    } else {
        if (*p == '\0') {
            return false;
        }
        for (; *p != '\0'; p++) {
            if (!is_digit(*p)) {
                return false;
            }
            v = v * 10u + (uint64_t)(*p - '0');
            if (v > UINT32_MAX) {
                return false;
            }
        }
    }
    *value = (uint32_t)v;
    return true;
}

bool ate_parse_hex(const char *text, uint8_t *out, size_t cap, size_t *len)
{
    const size_t n = strlen(text);
    if (n == 0 || n % 2 != 0 || n / 2 > cap) {
        return false;
    }
    for (size_t i = 0; i < n; i += 2) {
        const int hi = ate_hex_value(text[i]);
        const int lo = ate_hex_value(text[i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i / 2] = (uint8_t)((hi << 4) | lo);
    }
    *len = n / 2;
    return true;
}

bool ate_parse_uint_list(const char *text, uint64_t *mask)
{
    uint64_t bits = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        uint32_t v = 0;
        bool any = false;
        while (is_digit(*p)) {
            v = v * 10u + (uint32_t)(*p - '0');
            if (v >= 64) {
                return false;
            }
            any = true;
            p++;
        }
        if (!any) {
            return false;
        }
        bits |= (uint64_t)1 << v;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == ',') {
            p++;
        } else if (*p != '\0') {
            return false;
        }
    }
    *mask = bits;
    return true;
}

const char *ate_option(const ate_request_t *request, const char *key)
{
    for (size_t i = request->optc; i > 0; i--) {
        if (strcmp(request->optv[i - 1].key, key) == 0) {
            return request->optv[i - 1].value;
        }
    }
    return NULL;
}

/* A user's token in an error message: bounded, since a token can be 4 KB long. */
#define SHOW "'%.24s%s'"
#define SHOW_ARGS(s) (s), (strlen(s) > 24 ? "..." : "")

static bool check_uint(ate_reply_t *reply, const char *name, const char *text, uint32_t min,
                       uint32_t max, uint32_t *value)
{
    uint32_t v;
    if (!ate_parse_uint(text, &v)) {
        ate_reply_fail(reply, ATE_EARG, "%s: expected a number (decimal or 0x hex), got " SHOW,
                       name, SHOW_ARGS(text));
        return false;
    }
    if (v < min || v > max) {
        ate_reply_fail(reply, ATE_EARG, "%s %" PRIu32 " out of range %" PRIu32 "..%" PRIu32,
                       name, v, min, max);
        return false;
    }
    *value = v;
    return true;
}

bool ate_arg_uint(const ate_request_t *request, ate_reply_t *reply, size_t index,
                  const char *name, uint32_t min, uint32_t max, uint32_t *value)
{
    if (index >= request->argc) {
        ate_reply_fail(reply, ATE_EARG, "missing argument %s", name);
        return false;
    }
    return check_uint(reply, name, request->argv[index], min, max, value);
}

bool ate_option_uint(const ate_request_t *request, ate_reply_t *reply, const char *key,
                     uint32_t fallback, uint32_t min, uint32_t max, uint32_t *value)
{
    const char *text = ate_option(request, key);
    if (text == NULL) {
        *value = fallback;
        return true;
    }
    return check_uint(reply, key, text, min, max, value);
}

bool ate_arg_choice(const ate_request_t *request, ate_reply_t *reply, size_t index,
                    const char *name, const char *choices, size_t *choice)
{
    if (index >= request->argc) {
        ate_reply_fail(reply, ATE_EARG, "missing argument %s (%s)", name, choices);
        return false;
    }
    const char *text = request->argv[index];
    const size_t n = strlen(text);
    size_t position = 0;
    for (const char *c = choices; *c != '\0'; position++) {
        const char *end = strchr(c, '|');
        const size_t clen = end != NULL ? (size_t)(end - c) : strlen(c);
        if (clen == n && strncmp(c, text, n) == 0) {
            *choice = position;
            return true;
        }
        c += clen;
        if (*c == '|') {
            c++;
        }
    }
    ate_reply_fail(reply, ATE_EARG, "%s: expected one of %s, got " SHOW, name, choices,
                   SHOW_ARGS(text));
    return false;
}

bool ate_arg_hex(const ate_request_t *request, ate_reply_t *reply, size_t index,
                 const char *name, uint8_t *out, size_t cap, size_t *len)
{
    if (index >= request->argc) {
        ate_reply_fail(reply, ATE_EARG, "missing argument %s", name);
        return false;
    }
    const char *text = request->argv[index];
    if (!ate_parse_hex(text, out, cap, len)) {
        if (strlen(text) / 2 > cap) {
            ate_reply_fail(reply, ATE_EARG, "%s: at most %u bytes", name, (unsigned)cap);
        } else {
            ate_reply_fail(reply, ATE_EARG, "%s: expected hex bytes (even length), got " SHOW,
                           name, SHOW_ARGS(text));
        }
        return false;
    }
    return true;
}

/* ---- the session ---------------------------------------------------------------------------- */

void ate_session_init(ate_session_t *session, const ate_command_t *commands, size_t count)
{
    session->commands = commands;
    session->command_count = count;
    session->cached = false;
    session->cached_id = 0;
    session->cached_body_len = 0;
    session->cached_reply_len = 0;
}

static const ate_command_t *find_command(const ate_session_t *session, const char *name)
{
    for (size_t i = 0; i < session->command_count; i++) {
        if (strcmp(session->commands[i].name, name) == 0) {
            return &session->commands[i];
        }
    }
    return NULL;
}

/* Is `key` one of the space-separated words in `options`? */
static bool option_allowed(const char *options, const char *key)
{
    if (options == NULL) {
        return false;
    }
    const size_t n = strlen(key);
    for (const char *p = options; *p != '\0';) {
        while (*p == ' ') {
            p++;
        }
        const char *end = p;
        while (*end != '\0' && *end != ' ') {
            end++;
        }
        if ((size_t)(end - p) == n && n > 0 && strncmp(p, key, n) == 0) {
            return true;
        }
        p = end;
    }
    return false;
}

static void dispatch(const ate_session_t *session, const ate_request_t *request,
                     ate_reply_t *reply)
{
    const ate_command_t *command = find_command(session, request->command);
    if (command == NULL) {
        ate_reply_fail(reply, ATE_EUNKNOWN, "no command %.40s in this firmware",
                       request->command);
        return;
    }
    if (request->argc < command->min_args || request->argc > command->max_args) {
        ate_reply_fail(reply, ATE_EARG, "%s arguments; usage: %s",
                       request->argc < command->min_args ? "missing" : "too many",
                       command->usage);
        return;
    }
    for (size_t i = 0; i < request->optc; i++) {
        if (!option_allowed(command->options, request->optv[i].key)) {
            ate_reply_fail(reply, ATE_EARG, "unknown option %.24s; usage: %s",
                           request->optv[i].key, command->usage);
            return;
        }
    }
    command->handler(request, reply);
}

ate_outcome_t ate_session_handle_line(ate_session_t *session, const char *line, size_t len)
{
    ate_outcome_t out = {0};
    ate_frame_t frame;

    switch (ate_frame_parse(line, len, &frame)) {
    case ATE_FRAME_NOT_REQUEST:
        return out;
    case ATE_FRAME_NO_ID:
        /* No id to answer under. Id 0, which no host request uses, tells a person at a
         * terminal what was wrong, and a host drops it as an answer to nothing pending
         * (the simulated twin in ate/sim does the same). */
        out.note = frame.error;
        out.reply_len = ate_format_error(session->error_reply, sizeof(session->error_reply),
                                         0, ATE_EPROTO, frame.error);
        out.reply = session->error_reply;
        return out;
    case ATE_FRAME_BAD:
        /* Not cached: the host resends the same id with a good checksum, and that one must
         * execute rather than be answered EPROTO from the cache. */
        out.reply_len = ate_format_error(session->error_reply, sizeof(session->error_reply),
                                         frame.id, ATE_EPROTO, frame.error);
        out.reply = session->error_reply;
        return out;
    case ATE_FRAME_OK:
        break;
    }

    /* Rule 4: the request answered last, sent again, is answered again without executing.
     * The body is compared as well as the id, so that a different request reusing the id
     * (a new host session starting again at 1) is executed rather than given a stale
     * answer; a true retransmission is byte-identical. */
    if (session->cached && session->cached_id == frame.id &&
        session->cached_body_len == frame.body_len &&
        memcmp(session->cached_body, frame.body, frame.body_len) == 0) {
        out.reply = session->cached_reply;
        out.reply_len = session->cached_reply_len;
        out.from_cache = true;
        return out;
    }

    ate_request_t request;
    const char *why = NULL;
    const ate_code_t parsed =
        ate_request_parse(&frame, session->work, sizeof(session->work), &request, &why);
    if (parsed == ATE_EPROTO) {
        out.reply_len = ate_format_error(session->error_reply, sizeof(session->error_reply),
                                         frame.id, ATE_EPROTO, why);
        out.reply = session->error_reply;
        return out;
    }

    /* From here on the answer is this request's: built straight into the cache. */
    session->cached = false;
    ate_reply_t reply;
    ate_reply_init(&reply, session->cached_reply, sizeof(session->cached_reply), frame.id);
    if (parsed != ATE_OK) {
        ate_reply_fail(&reply, parsed, "%s", why);
    } else {
        dispatch(session, &request, &reply);
    }
    session->cached_reply_len = ate_reply_finish(&reply);
    memcpy(session->cached_body, frame.body, frame.body_len);
    session->cached_body_len = frame.body_len;
    session->cached_id = frame.id;
    session->cached = true;

    out.reply = session->cached_reply;
    out.reply_len = session->cached_reply_len;
    out.after = reply.after;
    out.after_arg = reply.after_arg;
    return out;
}

bool ate_session_last(const ate_session_t *session, uint16_t *id, const char **body,
                      size_t *body_len, const char **reply, size_t *reply_len)
{
    if (!session->cached) {
        return false;
    }
    *id = session->cached_id;
    *body = session->cached_body;
    *body_len = session->cached_body_len;
    *reply = session->cached_reply;
    *reply_len = session->cached_reply_len;
    return true;
}

bool ate_session_restore(ate_session_t *session, uint16_t id, const char *body, size_t body_len,
                         const char *reply, size_t reply_len)
{
    if (id == 0 || body_len > sizeof(session->cached_body) ||
        reply_len + 1 > sizeof(session->cached_reply)) {
        return false;
    }
    memcpy(session->cached_body, body, body_len);
    memcpy(session->cached_reply, reply, reply_len);
    session->cached_reply[reply_len] = '\0';
    session->cached_body_len = body_len;
    session->cached_reply_len = reply_len;
    session->cached_id = id;
    session->cached = true;
    return true;
}
