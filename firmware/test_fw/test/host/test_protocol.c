/*
 * Host unit test for main/protocol.c: the firmware's CRC, parser and formatter checked
 * against vectors written by the host's Python codec (test/test_vectors.txt), plus the
 * line reader, argument helpers and the retransmission cache.
 *
 *     make -C firmware/test_fw/test/host
 *
 * Plain C11 and libc: protocol.c has no ESP-IDF dependency by design.
 */
#include "protocol.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- vectors ------------------------------------------------------------------------------- */

#define MAX_FIELDS 8

/* Split `s` on TABs in place (empty fields allowed). */
static size_t split_tabs(char *s, char **fields, size_t max)
{
    size_t n = 0;
    fields[n++] = s;
    for (char *p = s; *p != '\0' && n < max; p++) {
        if (*p == '\t') {
            *p = '\0';
            fields[n++] = p + 1;
        }
    }
    return n;
}

/* Undo Python's unicode_escape for what the generator can produce: \\, \t, \xHH. */
static size_t unescape(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = in; *p != '\0' && n + 1 < cap; p++) {
        if (p[0] == '\\' && p[1] == '\\') {
            out[n++] = '\\';
            p++;
        } else if (p[0] == '\\' && p[1] == 't') {
            out[n++] = '\t';
            p++;
        } else if (p[0] == '\\' && p[1] == 'x' && p[2] != '\0' && p[3] != '\0') {
            char hex[3] = {p[2], p[3], '\0'};
            out[n++] = (char)strtol(hex, NULL, 16);
            p += 3;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return n;
}

static ate_code_t code_from_name(const char *name)
{
    static const ate_code_t all[] = {ATE_EPROTO, ATE_EUNKNOWN, ATE_EARG,
                                     ATE_EHW,    ATE_EBUSY,    ATE_EVERSION, ATE_EPERM};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(ate_code_name(all[i]), name) == 0) {
            return all[i];
        }
    }
    return ATE_OK;
}

/* Add "k=v k=v" (or "-") to a reply as string fields, as the firmware's handlers would. */
static void add_fields(ate_reply_t *reply, char *fields)
{
    if (strcmp(fields, "-") == 0) {
        return;
    }
    for (char *tok = strtok(fields, " "); tok != NULL; tok = strtok(NULL, " ")) {
        char *eq = strchr(tok, '=');
        if (eq == NULL) {
            continue;
        }
        *eq = '\0';
        ate_reply_str(reply, tok, eq + 1);
    }
}

/* `got` is a sealed line with its '\n'; `want` is the vector's line without it. */
static void check_sealed(const char *got, size_t got_len, const char *want)
{
    const size_t want_len = strlen(want);
    CHECK(got_len == want_len + 1);
    CHECK(got_len > 0 && got[got_len - 1] == '\n');
    char copy[ATE_MAX_LINE + 2];
    memcpy(copy, got, got_len);
    copy[got_len > 0 ? got_len - 1 : 0] = '\0';
    CHECK_STR(copy, want);
}

static void vector_crc(char **f, size_t n)
{
    CHECK(n == 3);
    char want[8];
    snprintf(want, sizeof(want), "%04X", ate_crc16(f[1], strlen(f[1])));
    CHECK_STR(want, f[2]);
}

static void vector_request(char **f, size_t n)
{
    CHECK(n == 6);
    ate_frame_t frame;
    CHECK(ate_frame_parse(f[1], strlen(f[1]), &frame) == ATE_FRAME_OK);
    CHECK(frame.had_checksum);
    CHECK(frame.id == (uint16_t)strtoul(f[2], NULL, 10));

    static char work[ATE_MAX_LINE + 1];
    ate_request_t req;
    const char *why = NULL;
    CHECK(ate_request_parse(&frame, work, sizeof(work), &req, &why) == ATE_OK);
    CHECK_STR(req.command, f[3]);

    /* Rebuild the arguments and options as text and compare with the vector. */
    char args[256] = "";
    for (size_t i = 0; i < req.argc; i++) {
        strcat(args, i ? " " : "");
        strcat(args, req.argv[i]);
    }
    CHECK_STR(req.argc ? args : "-", f[4]);
    char opts[256] = "";
    for (size_t i = 0; i < req.optc; i++) {
        strcat(opts, i ? " " : "");
        strcat(opts, req.optv[i].key);
        strcat(opts, "=");
        strcat(opts, req.optv[i].value);
    }
    CHECK_STR(req.optc ? opts : "-", f[5]);

    /* The CRC over the body is the one the line carries. */
    char crc[8];
    snprintf(crc, sizeof(crc), "*%04X", ate_crc16(frame.body, frame.body_len));
    CHECK(strstr(f[1], crc) != NULL);
}

static void vector_ok(char **f, size_t n)
{
    CHECK(n == 4);
    char buf[ATE_MAX_LINE + 1];
    ate_reply_t reply;
    ate_reply_init(&reply, buf, sizeof(buf), (uint16_t)strtoul(f[1], NULL, 10));
    add_fields(&reply, f[2]);
    const size_t len = ate_reply_finish(&reply);
    check_sealed(buf, len, f[3]);
}

static void vector_err(char **f, size_t n)
{
    CHECK(n == 5);
    char buf[ATE_ERROR_LINE_MAX];
    const size_t len = ate_format_error(buf, sizeof(buf), (uint16_t)strtoul(f[1], NULL, 10),
                                        code_from_name(f[2]), f[3]);
    check_sealed(buf, len, f[4]);

    /* The same through a handler's path: fail() after fields were added. */
    char buf2[ATE_MAX_LINE + 1];
    ate_reply_t reply;
    ate_reply_init(&reply, buf2, sizeof(buf2), (uint16_t)strtoul(f[1], NULL, 10));
    ate_reply_uint(&reply, "discarded", 1);
    ate_reply_fail(&reply, code_from_name(f[2]), "%s", f[3]);
    const size_t len2 = ate_reply_finish(&reply);
    check_sealed(buf2, len2, f[4]);
}

static void vector_notice(char **f, size_t n)
{
    CHECK(n == 4);
    char buf[ATE_MAX_LINE + 1];
    ate_reply_t notice;
    ate_notice_init(&notice, buf, sizeof(buf), f[1]);
    add_fields(&notice, f[2]);
    const size_t len = ate_reply_finish(&notice);
    check_sealed(buf, len, f[3]);
}

static void vector_parse(char **f, size_t n)
{
    CHECK(n == 3);
    char line[ATE_MAX_LINE + 1];
    const size_t len = unescape(f[1], line, sizeof(line));
    ate_frame_t frame;
    const ate_frame_status_t st = ate_frame_parse(line, len, &frame);
    const char *got = "?";
    if (st == ATE_FRAME_NOT_REQUEST) {
        got = "noise";
    } else if (st == ATE_FRAME_NO_ID) {
        got = "noid";
    } else if (st == ATE_FRAME_BAD) {
        got = "eproto";
    } else {
        static char work[ATE_MAX_LINE + 1];
        ate_request_t req;
        const char *why;
        const ate_code_t code = ate_request_parse(&frame, work, sizeof(work), &req, &why);
        got = code == ATE_OK ? "ok" : code == ATE_EPROTO ? "eproto" : "earg";
    }
    CHECK_STR(got, f[2]);
}

static void run_vectors(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "FAIL cannot open %s\n", path);
        g_failed++;
        return;
    }
    static char line[ATE_MAX_LINE * 2];
    char context[128];
    int count = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') {
            continue;
        }
        snprintf(context, sizeof(context), "vector %.100s", line);
        g_context = context;
        char *f[MAX_FIELDS];
        const size_t n = split_tabs(line, f, MAX_FIELDS);
        if (strcmp(f[0], "crc") == 0) {
            vector_crc(f, n);
        } else if (strcmp(f[0], "request") == 0) {
            vector_request(f, n);
        } else if (strcmp(f[0], "ok") == 0) {
            vector_ok(f, n);
        } else if (strcmp(f[0], "err") == 0) {
            vector_err(f, n);
        } else if (strcmp(f[0], "notice") == 0) {
            vector_notice(f, n);
        } else if (strcmp(f[0], "parse") == 0) {
            vector_parse(f, n);
        } else {
            fprintf(stderr, "FAIL unknown vector kind %s\n", f[0]);
            g_failed++;
        }
        count++;
    }
    fclose(fp);
    g_context = "vectors";
    CHECK(count >= 40); /* the file was read, not silently empty */
}

/* ---- line reader ----------------------------------------------------------------------- */

static size_t feed_all(ate_line_reader_t *r, const char *bytes, size_t n, char out[][64],
                       size_t max_lines)
{
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) {
        ate_line_t line;
        if (ate_line_reader_feed(r, (uint8_t)bytes[i], &line) && lines < max_lines) {
            snprintf(out[lines++], 64, "%.*s", (int)line.len, line.text);
        }
    }
    return lines;
}

static void test_line_reader(void)
{
    g_context = "line reader";
    static ate_line_reader_t r;
    ate_line_reader_reset(&r);
    char lines[4][64];

    const char crlf[] = "!1 ping\r\n\n!2 info\n";
    CHECK(feed_all(&r, crlf, sizeof(crlf) - 1, lines, 4) == 3);
    CHECK_STR(lines[0], "!1 ping");
    CHECK_STR(lines[1], "");
    CHECK_STR(lines[2], "!2 info");

    /* A partial line waits for its newline. */
    CHECK(feed_all(&r, "!3 sys.", 7, lines, 4) == 0);
    CHECK(feed_all(&r, "uptime\n", 7, lines, 4) == 1);
    CHECK_STR(lines[0], "!3 sys.uptime");

    /* Exactly ATE_MAX_LINE bytes is a line; one more is noise up to its newline, and the
     * next line is read normally. */
    static char big[ATE_MAX_LINE + 2];
    memset(big, 'a', sizeof(big));
    ate_line_t line;
    bool done = false;
    for (size_t i = 0; i < ATE_MAX_LINE; i++) {
        done = ate_line_reader_feed(&r, (uint8_t)big[i], &line) || done;
    }
    CHECK(!done);
    CHECK(ate_line_reader_feed(&r, '\n', &line));
    CHECK(line.len == ATE_MAX_LINE);

    for (size_t i = 0; i < ATE_MAX_LINE + 1; i++) {
        done = ate_line_reader_feed(&r, (uint8_t)big[i], &line) || done;
    }
    CHECK(!done);
    CHECK(!ate_line_reader_feed(&r, '\n', &line)); /* the over-long one is dropped whole */
    CHECK(feed_all(&r, "!4 ping\n", 8, lines, 4) == 1);
    CHECK_STR(lines[0], "!4 ping");

    /* A run that never ends is dropped every ATE_MAX_LINE bytes; memory stays bounded. */
    for (size_t i = 0; i < 3 * ATE_MAX_LINE; i++) {
        done = ate_line_reader_feed(&r, 'z', &line) || done;
    }
    CHECK(!done);
    CHECK(r.len <= ATE_MAX_LINE);
    CHECK(!ate_line_reader_feed(&r, '\n', &line));

    /* NUL bytes from line noise do not end or truncate a line. */
    const char noisy[] = "\0\0!5 ping\n";
    CHECK(feed_all(&r, noisy, sizeof(noisy) - 1, lines, 4) == 1);
}

/* ---- helpers ----------------------------------------------------------------------------- */

static void test_crc(void)
{
    g_context = "crc";
    CHECK(ate_crc16("123456789", 9) == 0x29B1);
    CHECK(ate_crc16("", 0) == 0xFFFF);
    /* Split computation equals one pass. */
    const uint16_t a = ate_crc16_update(ATE_CRC16_INIT, "12345", 5);
    CHECK(ate_crc16_update(a, "6789", 4) == 0x29B1);
}

static void test_parse_helpers(void)
{
    g_context = "parse helpers";
    uint32_t v = 0;
    CHECK(ate_parse_uint("0", &v) && v == 0);
    CHECK(ate_parse_uint("4294967295", &v) && v == UINT32_MAX);
    CHECK(!ate_parse_uint("4294967296", &v));
    CHECK(ate_parse_uint("0x68", &v) && v == 0x68);
    CHECK(ate_parse_uint("0XfF", &v) && v == 0xff);
    CHECK(!ate_parse_uint("0x", &v));
    CHECK(!ate_parse_uint("", &v));
    CHECK(!ate_parse_uint("-1", &v));
    CHECK(!ate_parse_uint("12a", &v));
    CHECK(!ate_parse_uint("0x1_0", &v));
    CHECK(!ate_parse_uint("0x100000000", &v));

    uint8_t buf[4];
    size_t n = 0;
    CHECK(ate_parse_hex("9fef4017", buf, sizeof(buf), &n) && n == 4 && buf[0] == 0x9f &&
          buf[3] == 0x17);
    CHECK(ate_parse_hex("A5", buf, sizeof(buf), &n) && n == 1 && buf[0] == 0xa5);
    CHECK(!ate_parse_hex("9fef40170a", buf, sizeof(buf), &n)); /* too long */
    CHECK(!ate_parse_hex("abc", buf, sizeof(buf), &n));
    CHECK(!ate_parse_hex("", buf, sizeof(buf), &n));
    CHECK(!ate_parse_hex("0x12", buf, sizeof(buf), &n));

    uint64_t mask = 0;
    CHECK(ate_parse_uint_list("0,1, 3 ,19", &mask) && mask == 0x8000bu);
    CHECK(ate_parse_uint_list("", &mask) && mask == 0);
    CHECK(ate_parse_uint_list("63", &mask) && mask == ((uint64_t)1 << 63));
    CHECK(!ate_parse_uint_list("64", &mask));
    CHECK(!ate_parse_uint_list("1,,2", &mask));
    CHECK(!ate_parse_uint_list("1;2", &mask));
}

static void test_reply_writer(void)
{
    g_context = "reply writer";
    char buf[ATE_MAX_LINE + 1];
    ate_reply_t r;

    ate_reply_init(&r, buf, sizeof(buf), 5);
    ate_reply_fixed(&r, "a", -455, 1);
    ate_reply_fixed(&r, "b", 50, 2);
    ate_reply_fixed(&r, "c", -5, 2);
    ate_reply_fixed(&r, "d", INT32_MIN, 0);
    ate_reply_hex(&r, "id", 0xef4017, 6);
    ate_reply_int(&r, "e", -3);
    ate_reply_uint(&r, "f", UINT64_MAX);
    ate_reply_str(&r, "g", "has space*star");
    const uint8_t bytes[] = {0x00, 0xab};
    ate_reply_bytes(&r, "h", bytes, sizeof(bytes));
    ate_reply_finish(&r);
    char want[256];
    const char *body = "@5 OK a=-45.5 b=0.50 c=-0.05 d=-2147483648 id=0xef4017 e=-3 "
                       "f=18446744073709551615 g=has_space_star h=00ab";
    snprintf(want, sizeof(want), "%s*%04X\n", body, ate_crc16(body, strlen(body)));
    CHECK_STR(buf, want);

    /* A reply that cannot fit the protocol's line limit becomes an EARG, never a long or
     * truncated line. */
    ate_reply_init(&r, buf, sizeof(buf), 6);
    static uint8_t blob[3000];
    ate_reply_bytes(&r, "data", blob, sizeof(blob));
    const size_t len = ate_reply_finish(&r);
    CHECK(len <= ATE_MAX_LINE);
    CHECK(strncmp(buf, "@6 ERR EARG reply would exceed", 30) == 0);

    /* The biggest reply that fits ends exactly at the limit, "\n" included. */
    ate_reply_init(&r, buf, sizeof(buf), 65535);
    ate_reply_bytes(&r, "data", blob, (ATE_MAX_LINE - 6 - strlen("@65535 OK data=")) / 2);
    const size_t len2 = ate_reply_finish(&r);
    CHECK(len2 <= ATE_MAX_LINE && len2 >= ATE_MAX_LINE - 1);
    CHECK(buf[len2 - 1] == '\n' && buf[len2 - 6] == '*');

    /* The first failure wins; a failed reply drops its after-action. */
    ate_reply_init(&r, buf, sizeof(buf), 7);
    ate_reply_after(&r, (ate_after_fn)NULL, 0);
    ate_reply_fail(&r, ATE_EHW, "first");
    ate_reply_fail(&r, ATE_EARG, "second");
    ate_reply_finish(&r);
    CHECK(strncmp(buf, "@7 ERR EHW first*", 17) == 0);

    /* Error messages cannot break the line. */
    char err[ATE_ERROR_LINE_MAX];
    ate_format_error(err, sizeof(err), 8, ATE_EHW, "a*b\x01\nc");
    CHECK(strncmp(err, "@8 ERR EHW a?b? c*", 18) == 0);
    static char long_msg[1000];
    memset(long_msg, 'm', sizeof(long_msg) - 1);
    const size_t elen = ate_format_error(err, sizeof(err), 9, ATE_EHW, long_msg);
    CHECK(elen < sizeof(err) && err[elen - 1] == '\n');
}

/* ---- the session and the retransmission cache ------------------------------------------------ */

static int g_toggles;
static int g_after_calls;
static uint32_t g_after_arg;

static void after_hook(uint32_t arg)
{
    g_after_calls++;
    g_after_arg = arg;
}

static void h_ping(const ate_request_t *q, ate_reply_t *r)
{
    (void)q;
    (void)r;
}

static void h_toggle(const ate_request_t *q, ate_reply_t *r)
{
    uint32_t pin;
    if (!ate_arg_uint(q, r, 0, "pin", 0, 48, &pin)) {
        return;
    }
    g_toggles++;
    ate_reply_uint(r, "count", (uint64_t)g_toggles);
}

static void h_sleep(const ate_request_t *q, ate_reply_t *r)
{
    size_t mode;
    uint32_t hold;
    if (!ate_arg_choice(q, r, 0, "mode", "idle|light_sleep", &mode) ||
        !ate_option_uint(q, r, "hold_ms", 1000, 1, 600000, &hold)) {
        return;
    }
    if (mode == 1) {
        ate_reply_after(r, after_hook, hold);
    }
}

static void h_fail_after(const ate_request_t *q, ate_reply_t *r)
{
    (void)q;
    ate_reply_after(r, after_hook, 1);
    ate_reply_fail(r, ATE_EHW, "no");
}

static const ate_command_t k_commands[] = {
    {"ping", h_ping, 0, 0, NULL, "ping"},
    {"gpio.toggle", h_toggle, 1, 1, NULL, "gpio.toggle <pin>"},
    {"power.mode", h_sleep, 1, 1, "hold_ms", "power.mode <idle|light_sleep> [hold_ms=<n>]"},
    {"fail.after", h_fail_after, 0, 0, NULL, "fail.after"},
};

static ate_outcome_t send_line(ate_session_t *s, const char *line)
{
    return ate_session_handle_line(s, line, strlen(line));
}

/* Seal a request the way the host does, for lines built in the test. */
static const char *sealed(const char *body)
{
    static char buf[512];
    snprintf(buf, sizeof(buf), "%s*%04X", body, ate_crc16(body, strlen(body)));
    return buf;
}

static bool reply_is(const ate_outcome_t *o, const char *prefix)
{
    return o->reply != NULL && strncmp(o->reply, prefix, strlen(prefix)) == 0 &&
           o->reply[o->reply_len - 1] == '\n';
}

static void test_session(void)
{
    g_context = "session";
    static ate_session_t s;
    ate_session_init(&s, k_commands, sizeof(k_commands) / sizeof(k_commands[0]));
    ate_outcome_t o;

    /* Noise and blank lines get no answer. */
    o = send_line(&s, "");
    CHECK(o.reply == NULL && o.note == NULL);
    o = send_line(&s, "rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)");
    CHECK(o.reply == NULL);
    /* A request without a usable id is answered EPROTO under id 0, which no host uses. */
    o = send_line(&s, "!0 ping");
    CHECK(o.note != NULL && reply_is(&o, "@0 ERR EPROTO request id must be 1..65535*"));
    o = send_line(&s, "!7x ping");
    CHECK(reply_is(&o, "@0 ERR EPROTO request id is not a number*"));

    /* Exact reply bytes for ping equal the host codec's encode_reply(1). */
    o = send_line(&s, "!1 ping*362A");
    CHECK(o.reply != NULL && strcmp(o.reply, "@1 OK*38A2\n") == 0 && !o.from_cache);

    /* Rule 4: the same request again is answered from the cache, not executed. */
    g_toggles = 0;
    o = send_line(&s, sealed("!2 gpio.toggle 4"));
    CHECK(reply_is(&o, "@2 OK count=1*") && g_toggles == 1);
    o = send_line(&s, sealed("!2 gpio.toggle 4"));
    CHECK(reply_is(&o, "@2 OK count=1*") && g_toggles == 1 && o.from_cache);
    /* ... also when typed without the checksum (same body). */
    o = send_line(&s, "!2 gpio.toggle 4");
    CHECK(reply_is(&o, "@2 OK count=1*") && g_toggles == 1 && o.from_cache);
    /* A different request reusing the id executes. */
    o = send_line(&s, sealed("!2 gpio.toggle 5"));
    CHECK(reply_is(&o, "@2 OK count=2*") && g_toggles == 2 && !o.from_cache);
    /* A new id executes. */
    o = send_line(&s, sealed("!3 gpio.toggle 5"));
    CHECK(reply_is(&o, "@3 OK count=3*") && g_toggles == 3);

    /* A corrupted request is answered EPROTO and not cached: its good resend executes. */
    o = send_line(&s, "!4 gpio.toggle 5*0000");
    CHECK(reply_is(&o, "@4 ERR EPROTO checksum mismatch*") && g_toggles == 3);
    o = send_line(&s, sealed("!4 gpio.toggle 5"));
    CHECK(reply_is(&o, "@4 OK count=4*") && g_toggles == 4);
    /* ... and the EPROTO did not evict the cache entry before it. */
    o = send_line(&s, "!4 gpio.toggle 5*0000");
    o = send_line(&s, sealed("!4 gpio.toggle 5"));
    CHECK(o.from_cache && g_toggles == 4);

    /* Errors: unknown command, argument count, argument value, unknown option. */
    o = send_line(&s, sealed("!5 foo.bar"));
    CHECK(reply_is(&o, "@5 ERR EUNKNOWN no command foo.bar in this firmware*"));
    o = send_line(&s, sealed("!6 gpio.toggle"));
    CHECK(reply_is(&o, "@6 ERR EARG missing arguments; usage: gpio.toggle <pin>*"));
    o = send_line(&s, sealed("!7 gpio.toggle 4 5"));
    CHECK(reply_is(&o, "@7 ERR EARG too many arguments; usage: gpio.toggle <pin>*"));
    o = send_line(&s, sealed("!8 gpio.toggle 99"));
    CHECK(reply_is(&o, "@8 ERR EARG pin 99 out of range 0..48*"));
    o = send_line(&s, sealed("!9 gpio.toggle four"));
    CHECK(reply_is(&o, "@9 ERR EARG pin: expected a number (decimal or 0x hex), got 'four'*"));
    o = send_line(&s, sealed("!10 power.mode idle samples=3"));
    CHECK(reply_is(&o, "@10 ERR EARG unknown option samples;"));
    o = send_line(&s, sealed("!11 power.mode doze"));
    CHECK(reply_is(&o, "@11 ERR EARG mode: expected one of idle|light_sleep, got 'doze'*"));
    o = send_line(&s, sealed("!12 power.mode idle hold_ms=0"));
    CHECK(reply_is(&o, "@12 ERR EARG hold_ms 0 out of range 1..600000*"));
    o = send_line(&s, sealed("!13 ping 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17"));
    CHECK(reply_is(&o, "@13 ERR EARG too many arguments (at most 16)*"));
    o = send_line(&s, "!14 power.mode hold_ms=5 idle");
    CHECK(reply_is(&o, "@14 ERR EPROTO positional arguments must come before key=value*"));

    /* After-actions: returned with the reply, never replayed from the cache, dropped on
     * failure. */
    g_after_calls = 0;
    o = send_line(&s, sealed("!20 power.mode light_sleep hold_ms=1500"));
    CHECK(reply_is(&o, "@20 OK*") && o.after == after_hook && o.after_arg == 1500);
    o = send_line(&s, sealed("!20 power.mode light_sleep hold_ms=1500"));
    CHECK(o.from_cache && o.after == NULL);
    o = send_line(&s, sealed("!21 power.mode light_sleep"));
    CHECK(o.after == after_hook && o.after_arg == 1000);
    o = send_line(&s, sealed("!22 fail.after"));
    CHECK(reply_is(&o, "@22 ERR EHW no*") && o.after == NULL);

    /* Noise before the '!' on the same line. */
    o = send_line(&s, "\x1b[0m garbage !23 ping");
    CHECK(o.reply != NULL && strncmp(o.reply, "@23 OK*", 7) == 0);

    /* Restoring a saved entry (what the firmware does after sys.reboot) answers a resend
     * of that request from the cache. */
    uint16_t id;
    const char *body, *reply;
    size_t body_len, reply_len;
    CHECK(ate_session_last(&s, &id, &body, &body_len, &reply, &reply_len) && id == 23);
    char saved_body[64], saved_reply[64];
    memcpy(saved_body, body, body_len);
    memcpy(saved_reply, reply, reply_len);
    static ate_session_t fresh;
    ate_session_init(&fresh, k_commands, sizeof(k_commands) / sizeof(k_commands[0]));
    CHECK(!ate_session_last(&fresh, &id, &body, &body_len, &reply, &reply_len));
    CHECK(ate_session_restore(&fresh, 23, saved_body, body_len, saved_reply, reply_len));
    o = send_line(&fresh, "!23 ping");
    CHECK(o.from_cache && o.reply_len == reply_len && memcmp(o.reply, saved_reply, reply_len) == 0);
}

int main(int argc, char **argv)
{
    const char *vectors = argc > 1 ? argv[1] : "../test_vectors.txt";
    test_crc();
    test_parse_helpers();
    test_line_reader();
    test_reply_writer();
    test_session();
    run_vectors(vectors);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
