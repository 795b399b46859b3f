/*
 * The ate line protocol, device side (firmware/test_fw/PROTOCOL.md).
 *
 * This header and protocol.c are the pure part of the firmware: CRC, line assembly,
 * request parsing, reply formatting, the retransmission cache and the dispatcher. They
 * include nothing from ESP-IDF, so test/host/ compiles them with plain gcc and checks
 * them against vectors produced by the host's codec (ate/protocol/lines.py). Everything
 * that touches the UART, FreeRTOS or the log system lives in protocol_io.c.
 *
 * Nothing here allocates: every buffer is owned by the caller (in the firmware, statics).
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATE_PROTO_VERSION 1

/* Longest line, in bytes before the '\n', in either direction (PROTOCOL.md: "At most
 * 4096 bytes"). Replies are kept within it including their "*XXXX\n" tail. */
#define ATE_MAX_LINE 4096

/* Arguments plus key=value options after the command name. The longest command in the
 * table takes four; the slack is for people typing at a terminal. */
#define ATE_MAX_TOKENS 16

/* Longest free-text message in an ERR reply. Messages are for people; keep them short. */
#define ATE_MSG_MAX 160

/* Size of a buffer that holds any ERR reply line (id, code, message, checksum, '\n'). */
#define ATE_ERROR_LINE_MAX (ATE_MSG_MAX + 40)

#if defined(__GNUC__)
#define ATE_PRINTF(fmt_idx, first_arg) __attribute__((format(printf, fmt_idx, first_arg)))
#else
#define ATE_PRINTF(fmt_idx, first_arg)
#endif

/* ---- error codes --------------------------------------------------------------------- */

typedef enum {
    ATE_OK = 0,
    ATE_EPROTO,   /* malformed request or wrong checksum */
    ATE_EUNKNOWN, /* no such command in this firmware */
    ATE_EARG,     /* an argument is missing, malformed or out of range */
    ATE_EHW,      /* the hardware did not do it */
    ATE_EBUSY,    /* the device cannot do it now */
    ATE_EVERSION, /* the request needs a newer protocol version */
    ATE_EPERM,    /* never allowed on this device (prov.* on a golden board) */
} ate_code_t;

/* "EPROTO", "EARG", ...; "OK" for ATE_OK. */
const char *ate_code_name(ate_code_t code);

/* ---- CRC-16/CCITT-FALSE ------------------------------------------------------------------ */

#define ATE_CRC16_INIT 0xFFFFu

/* poly 0x1021, init 0xFFFF, no reflection, no final xor. check("123456789") == 0x29B1. */
uint16_t ate_crc16(const void *data, size_t len);
/* Continue a CRC over more bytes (start from ATE_CRC16_INIT). */
uint16_t ate_crc16_update(uint16_t crc, const void *data, size_t len);

/* ---- line assembly ----------------------------------------------------------------------- */

/* Bytes in, lines out. A run longer than ATE_MAX_LINE without a newline is noise: it is
 * dropped up to and including its newline, never buffered forever and never half-parsed. */
typedef struct {
    size_t len;
    bool dropping;
    char buf[ATE_MAX_LINE + 1];
} ate_line_reader_t;

typedef struct {
    const char *text; /* NUL-terminated; may also contain NUL bytes from line noise */
    size_t len;       /* bytes before the newline, a trailing '\r' removed */
} ate_line_t;

void ate_line_reader_reset(ate_line_reader_t *reader);

/* Feed one received byte. Returns true when it completed a line, described by *line. The
 * line stays valid until the next call. */
bool ate_line_reader_feed(ate_line_reader_t *reader, uint8_t byte, ate_line_t *line);

/* ---- requests ------------------------------------------------------------------------------- */

typedef struct {
    const char *key;
    const char *value;
} ate_option_t;

/* A parsed request. All strings point into the caller's work buffer. */
typedef struct {
    uint16_t id;
    const char *command;
    size_t argc;
    const char *argv[ATE_MAX_TOKENS];
    size_t optc;
    ate_option_t optv[ATE_MAX_TOKENS];
} ate_request_t;

typedef enum {
    ATE_FRAME_OK,          /* a request with a usable id and a good (or no) checksum */
    ATE_FRAME_NOT_REQUEST, /* no "!<digit>" anywhere: a blank line or noise, ignore it */
    ATE_FRAME_NO_ID,       /* starts like a request but its id is unusable: EPROTO under id 0 */
    ATE_FRAME_BAD,         /* usable id, but the checksum is wrong: answer ERR EPROTO */
} ate_frame_status_t;

/* A request line located and unsealed, not yet tokenised. */
typedef struct {
    const char *body; /* "!<id> <command> ..." inside the line, without "*XXXX" */
    size_t body_len;  /* trailing whitespace removed */
    uint16_t id;
    bool had_checksum;
    const char *error; /* why, for NO_ID and BAD */
} ate_frame_t;

/* Find the request in a received line (noise may precede the '!'), check its checksum
 * when it has one and read its id. */
ate_frame_status_t ate_frame_parse(const char *line, size_t len, ate_frame_t *frame);

/* Tokenise a frame's body, copied into `work` (at least body_len + 1 bytes). Returns
 * ATE_OK, ATE_EPROTO (grammar) or ATE_EARG (more tokens than ATE_MAX_TOKENS); on failure
 * *error says why. */
ate_code_t ate_request_parse(const ate_frame_t *frame, char *work, size_t work_size,
                             ate_request_t *request, const char **error);

/* ---- replies ------------------------------------------------------------------------------ */

/* Runs after a reply has been sent: the reply to power.mode light_sleep must be on the wire
 * before the device sleeps, and sys.reboot answers before it restarts. */
typedef void (*ate_after_fn)(uint32_t arg);

/* Builds one reply (or notice) line in a caller-owned buffer. Handlers add fields, or
 * call ate_reply_fail(), which replaces whatever fields were added with an ERR line. */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    uint16_t id;
    bool overflow;
    ate_code_t code;
    char msg[ATE_MSG_MAX];
    ate_after_fn after;
    uint32_t after_arg;
} ate_reply_t;

/* "@<id> OK"; buf must hold at least ATE_ERROR_LINE_MAX bytes. */
void ate_reply_init(ate_reply_t *reply, char *buf, size_t cap, uint16_t id);
/* "@* <NAME>" for an unsolicited notice (READY, AWAKE). */
void ate_notice_init(ate_reply_t *reply, char *buf, size_t cap, const char *name);

/* " key=value". Whitespace, '*' and non-printable bytes in a value become '_' so that no
 * value can break the line's grammar. */
void ate_reply_str(ate_reply_t *reply, const char *key, const char *value);
void ate_reply_uint(ate_reply_t *reply, const char *key, uint64_t value);
void ate_reply_int(ate_reply_t *reply, const char *key, int64_t value);
/* " key=0x%0<digits>x" (lowercase, like every hex value in the protocol). */
void ate_reply_hex(ate_reply_t *reply, const char *key, uint32_t value, unsigned digits);
/* " key=<lowercase hex bytes>". */
void ate_reply_bytes(ate_reply_t *reply, const char *key, const uint8_t *data, size_t len);
/* Fixed point without floats: (-455, 1) -> "-45.5", (50, 2) -> "0.50". */
void ate_reply_fixed(ate_reply_t *reply, const char *key, int32_t value, unsigned decimals);

/* Turn the reply into "ERR <code> <message>". The first failure wins. */
void ate_reply_fail(ate_reply_t *reply, ate_code_t code, const char *fmt, ...) ATE_PRINTF(3, 4);
void ate_reply_vfail(ate_reply_t *reply, ate_code_t code, const char *fmt, va_list ap)
    ATE_PRINTF(3, 0);
bool ate_reply_failed(const ate_reply_t *reply);

/* Ask for `fn(arg)` to run once the reply is on the wire (dropped if the reply fails). */
void ate_reply_after(ate_reply_t *reply, ate_after_fn fn, uint32_t arg);

/* Seal the line: append "*XXXX\n". Returns its length (the buffer is also NUL-terminated). */
size_t ate_reply_finish(ate_reply_t *reply);

/* "@<id> ERR <CODE> <message>*XXXX\n" in one go. The message is tidied like the host's
 * encode_error(): whitespace runs become one space, an empty message becomes "-". */
size_t ate_format_error(char *buf, size_t cap, uint16_t id, ate_code_t code, const char *msg);

/* ---- argument helpers for handlers ----------------------------------------------------- */

/* Decimal, or hex with 0x; no sign, no overflow, nothing trailing. */
/* The value of one hex digit (either case), or -1. */
int ate_hex_value(char c);

bool ate_parse_uint(const char *text, uint32_t *value);
/* Hex bytes without separators, even length, at least one byte, at most `cap`. Upper case
 * digits are accepted from people; the protocol itself writes lower case. */
bool ate_parse_hex(const char *text, uint8_t *out, size_t cap, size_t *len);
/* "1, 3,7" -> bits 1, 3 and 7. Used for Kconfig lists; values must be < 64. */
bool ate_parse_uint_list(const char *text, uint64_t *mask);

/* The last value given for `key` (like the host's dict), or NULL. */
const char *ate_option(const ate_request_t *request, const char *key);

/* Each of these validates one argument and, if it is bad, fails the reply with EARG and
 * a message naming the argument, then returns false. */
bool ate_arg_uint(const ate_request_t *request, ate_reply_t *reply, size_t index,
                  const char *name, uint32_t min, uint32_t max, uint32_t *value);
bool ate_option_uint(const ate_request_t *request, ate_reply_t *reply, const char *key,
                     uint32_t fallback, uint32_t min, uint32_t max, uint32_t *value);
/* choices: "in|out|in_pullup"; *index is the position of the match. */
bool ate_arg_choice(const ate_request_t *request, ate_reply_t *reply, size_t index,
                    const char *name, const char *choices, size_t *choice);
bool ate_arg_hex(const ate_request_t *request, ate_reply_t *reply, size_t index,
                 const char *name, uint8_t *out, size_t cap, size_t *len);

/* ---- commands and the session ------------------------------------------------------------- */

typedef void (*ate_handler_fn)(const ate_request_t *request, ate_reply_t *reply);

typedef struct {
    const char *name;      /* "gpio.set" */
    ate_handler_fn handler;
    uint8_t min_args;      /* positional arguments, checked before the handler runs */
    uint8_t max_args;
    const char *options;   /* allowed keys, space separated ("samples"), or NULL */
    const char *usage;     /* shown with EARG: "gpio.set <pin> <0|1>" */
} ate_command_t;

/* One connection's state: the command table and the retransmission cache (rule 4: a
 * request repeating the last one answered is answered from here, not executed again). */
typedef struct {
    const ate_command_t *commands;
    size_t command_count;

    bool cached;
    uint16_t cached_id;
    size_t cached_body_len;
    size_t cached_reply_len;
    char cached_body[ATE_MAX_LINE];
    char cached_reply[ATE_MAX_LINE + 1]; /* replies are built here directly */

    char error_reply[ATE_ERROR_LINE_MAX]; /* EPROTO answers: never cached */
    char work[ATE_MAX_LINE + 1];          /* the request being tokenised */
} ate_session_t;

typedef struct {
    const char *reply; /* line to send, or NULL */
    size_t reply_len;
    bool from_cache;   /* a retransmission: answered without executing */
    ate_after_fn after;
    uint32_t after_arg;
    const char *note;  /* why a request-looking line could not be answered under its id */
} ate_outcome_t;

void ate_session_init(ate_session_t *session, const ate_command_t *commands, size_t count);

/* Handle one received line: parse, answer from the cache or dispatch. */
ate_outcome_t ate_session_handle_line(ate_session_t *session, const char *line, size_t len);

/* The last answered request, to carry the cache across a restart the device causes itself
 * (sys.reboot, deep sleep). Returns false when there is none. */
bool ate_session_last(const ate_session_t *session, uint16_t *id, const char **body,
                      size_t *body_len, const char **reply, size_t *reply_len);
/* Put such a saved entry back after the restart. Returns false if it does not fit. */
bool ate_session_restore(ate_session_t *session, uint16_t id, const char *body, size_t body_len,
                         const char *reply, size_t reply_len);

#ifdef __cplusplus
}
#endif
