/*
 * The protocol on UART0: the ESP-IDF seam around the pure core in protocol.c.
 *
 * One UART carries three kinds of output: protocol lines (replies and notices), ESP-IDF
 * log lines, and whatever the ROM prints. Every protocol line and every log line goes
 * out through one writer under one mutex, whole, so a log line can never land in the
 * middle of a reply (PROTOCOL.md rule 1 relies on lines staying intact).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Install the UART driver on UART0, route ESP-IDF logging through the shared writer, and
 * restore the retransmission cache if the device restarted itself (sys.reboot, deep sleep)
 * with an answered request in it. Call once, first thing in app_main. */
esp_err_t ate_io_init(const ate_command_t *commands, size_t command_count);

/* Write one complete protocol line (ending in '\n') atomically. */
void ate_io_write_line(const char *line, size_t len);

/* Build and send "@* <NAME> ..." from a notice the caller filled in with ate_notice_init()
 * and the ate_reply_* field functions. */
void ate_io_send_notice(ate_reply_t *notice);

/* Block until everything written so far has left the UART (bounded by timeout_ms). */
void ate_io_flush(uint32_t timeout_ms);

/* Forget received bytes and any half-received line: after light sleep, where the UART was
 * not listening and what arrived meanwhile is partial (PROTOCOL.md: "While it sleeps the
 * device reads nothing"). */
void ate_io_discard_input(void);

/* Before a restart the device causes itself: save the last answer so a resend of the
 * request that caused the restart is answered, not executed twice (rule 4), and drain
 * the UART so the answer is on the wire. */
void ate_io_prepare_restart(void);

/* The command loop: read lines, answer them, run after-actions. Never returns. */
void ate_io_run(void);

#ifdef __cplusplus
}
#endif
