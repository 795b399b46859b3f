/*
 * The protocol on UART0 (see protocol_io.h): UART driver, the single output path shared by
 * replies and ESP-IDF logs, the read loop, and the retransmission cache's trip across
 * self-inflicted restarts.
 */
#include "protocol_io.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "driver/uart.h"
#include "esp_attr.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "esp_system.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "sdkconfig.h"
#include "soc/soc_caps.h"

#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 3, 0)
#include "driver/uart_vfs.h"
#define ATE_VFS_USE_DRIVER(port) uart_vfs_dev_use_driver(port)
#else
#include "esp_vfs_dev.h"
#define ATE_VFS_USE_DRIVER(port) esp_vfs_dev_uart_use_driver(port)
#endif

static const char *TAG = "ate_io";

/* PROTOCOL.md fixes UART0: it is the port the ROM and the bootloader print on, so it is the
 * one a fixture wires to every DUT. */
#define ATE_UART UART_NUM_0

/* The receive ring holds a maximum-length request with room to spare; while a command runs
 * (an ADC average, an RF test) the host is waiting, so little else arrives. */
#define RX_RING_BYTES (ATE_MAX_LINE + 1024)
/* A transmit ring of two maximum-length lines: uart_write_bytes() then copies and returns
 * instead of blocking the writer (and so every task that logs) for the ~350 ms a 4 KB line
 * takes at 115200 baud. */
#define TX_RING_BYTES (2 * ATE_MAX_LINE)

/* How long the read loop waits for a byte before doing its housekeeping. */
#define READ_TICK_MS 50
/* A log line whose end has not arrived after this long is sent as it is, so a log call
 * without a trailing newline cannot hold back the next line forever. */
#define LOG_STALE_MS 100
/* A task that logs waits at most this long for the writer; the holder only ever copies a
 * line into the TX ring, so this is generous. On timeout the log line is dropped and
 * counted rather than risking a torn reply. */
#define LOG_LOCK_WAIT_MS 1000

/* ---- the single output path -------------------------------------------------------------- */

static SemaphoreHandle_t s_out_lock;
static StaticSemaphore_t s_out_lock_storage;
/* Who holds s_out_lock: lets the log hook notice that it was re-entered from inside the
 * writer (a driver logging an error) and drop that line instead of deadlocking. */
static TaskHandle_t volatile s_out_owner;

static vprintf_like_t s_prev_vprintf;
static char s_log_line[256];
static size_t s_log_len;
static TickType_t s_log_since;
static atomic_uint s_logs_dropped;

static void out_lock(void)
{
    xSemaphoreTake(s_out_lock, portMAX_DELAY);
    s_out_owner = xTaskGetCurrentTaskHandle();
}

static bool out_try_lock(TickType_t wait)
{
    if (xSemaphoreTake(s_out_lock, wait) != pdTRUE) {
        return false;
    }
    s_out_owner = xTaskGetCurrentTaskHandle();
    return true;
}

static void out_unlock(void)
{
    s_out_owner = NULL;
    xSemaphoreGive(s_out_lock);
}

static void uart_put(const char *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        const int n = uart_write_bytes(ATE_UART, data + done, len - done);
        if (n <= 0) {
            return; /* the driver is gone; nothing sensible to do from the output path */
        }
        done += (size_t)n;
    }
}

/* Send the buffered log text; with `terminate`, end it with a newline if it has none. Called
 * with the lock held. */
static void log_flush_locked(bool terminate)
{
    if (s_log_len == 0) {
        return;
    }
    if (terminate && s_log_line[s_log_len - 1] != '\n') {
        s_log_line[s_log_len++] = '\n'; /* room kept: see log_vprintf */
    }
    uart_put(s_log_line, s_log_len);
    s_log_len = 0;
}

/* ESP-IDF's log output function, replaced (esp_log_set_vprintf). Log text is collected until
 * its newline and then written whole under the output lock, so a log line and a reply can
 * only ever follow each other, never interleave. Collecting matters because ESP-IDF's newer
 * log implementation prints one log line in several vprintf calls (prefix, message, "\n"). */
static int log_vprintf(const char *fmt, va_list ap)
{
    if (xPortInIsrContext() || xTaskGetSchedulerState() != taskSCHEDULER_RUNNING) {
        /* Cannot block here; the default path is all there is. */
        return s_prev_vprintf != NULL ? s_prev_vprintf(fmt, ap) : vprintf(fmt, ap);
    }
    if (s_out_owner == xTaskGetCurrentTaskHandle()) {
        atomic_fetch_add(&s_logs_dropped, 1u); /* logged from inside the writer itself */
        return 0;
    }
    if (!out_try_lock(pdMS_TO_TICKS(LOG_LOCK_WAIT_MS))) {
        atomic_fetch_add(&s_logs_dropped, 1u);
        return 0;
    }
    /* One byte stays free for the newline log_flush_locked() may add. */
    const size_t room = sizeof(s_log_line) - 1 - s_log_len;
    const int n = vsnprintf(s_log_line + s_log_len, room, fmt, ap);
    if (n > 0) {
        const bool truncated = (size_t)n >= room;
        s_log_len += truncated ? room - 1 : (size_t)n;
        if (truncated) {
            log_flush_locked(true); /* an over-long log line is cut, not left open */
        } else if (s_log_line[s_log_len - 1] == '\n') {
            log_flush_locked(false);
        } else {
            s_log_since = xTaskGetTickCount();
        }
    }
    out_unlock();
    return n;
}

static void log_flush_stale(void)
{
    if (s_log_len == 0) { /* racy peek; the real check is under the lock */
        return;
    }
    if (!out_try_lock(0)) {
        return;
    }
    if (s_log_len > 0 && xTaskGetTickCount() - s_log_since >= pdMS_TO_TICKS(LOG_STALE_MS)) {
        log_flush_locked(true);
    }
    out_unlock();
}

void ate_io_write_line(const char *line, size_t len)
{
    out_lock();
    uart_put(line, len);
    out_unlock();
}

void ate_io_send_notice(ate_reply_t *notice)
{
    const size_t len = ate_reply_finish(notice);
    ate_io_write_line(notice->buf, len);
}

void ate_io_flush(uint32_t timeout_ms)
{
    uart_wait_tx_done(ATE_UART, pdMS_TO_TICKS(timeout_ms));
}

/* ---- the session and the read loop ---------------------------------------------------------- */

/* Static: a session holds ~12 KB of line buffers, too much for a task stack and never
 * worth a heap allocation. */
static ate_session_t s_session;
static ate_line_reader_t s_reader;
static bool s_discard_chunk;

void ate_io_discard_input(void)
{
    uart_flush_input(ATE_UART);
    ate_line_reader_reset(&s_reader);
    s_discard_chunk = true; /* bytes already read into the loop's chunk go too */
}

static void handle_line(const ate_line_t *line)
{
    const ate_outcome_t out = ate_session_handle_line(&s_session, line->text, line->len);
    if (out.note != NULL) {
        ESP_LOGW(TAG, "request without a usable id: %s", out.note);
    }
    if (out.reply == NULL) {
        return;
    }
    ate_io_write_line(out.reply, out.reply_len);
    if (out.from_cache) {
        ESP_LOGI(TAG, "resent the answer to a repeated request (not executed again)");
    }
    if (out.after != NULL) {
        /* "answered first, then entered": the whole reply leaves the UART before e.g. the
         * clocks stop for light sleep. */
        ate_io_flush(1000);
        out.after(out.after_arg);
    }
}

void ate_io_run(void)
{
    static uint8_t chunk[256];
    for (;;) {
        /* Wait for one byte, then take whatever else has arrived. Asking the driver for a
         * full chunk would make it wait out the whole timeout on every short request. */
        int n = uart_read_bytes(ATE_UART, chunk, 1, pdMS_TO_TICKS(READ_TICK_MS));
        if (n <= 0) {
            log_flush_stale();
            const unsigned dropped = atomic_exchange(&s_logs_dropped, 0u);
            if (dropped > 0) {
                ESP_LOGW(TAG, "%u log line(s) dropped to keep replies whole", dropped);
            }
            continue;
        }
        size_t more = 0;
        if (uart_get_buffered_data_len(ATE_UART, &more) == ESP_OK && more > 0) {
            if (more > sizeof(chunk) - 1) {
                more = sizeof(chunk) - 1;
            }
            const int m = uart_read_bytes(ATE_UART, chunk + 1, (uint32_t)more, 0);
            if (m > 0) {
                n += m;
            }
        }
        s_discard_chunk = false;
        for (int i = 0; i < n && !s_discard_chunk; i++) {
            ate_line_t line;
            if (ate_line_reader_feed(&s_reader, chunk[i], &line)) {
                handle_line(&line);
            }
        }
    }
}

/* ---- the cache across restarts the device causes itself ------------------------------------ */

/* sys.reboot and power.mode deep_sleep answer, then restart. If that answer is lost on the
 * wire the host resends the same request after the restart; rule 4 says it must get the
 * same answer, not a second reboot or a second sleep. RTC memory survives both a software
 * reset and deep sleep (not a power cycle, where there is nothing to remember). */
#define RTC_MAGIC 0x41544531u /* "ATE1" */
#define RTC_BODY_MAX 96
#define RTC_REPLY_MAX 64

typedef struct {
    uint32_t magic;
    uint16_t id;
    uint16_t body_len;
    uint16_t reply_len;
    uint16_t check;
    char body[RTC_BODY_MAX];
    char reply[RTC_REPLY_MAX];
} rtc_cache_t;

#if SOC_RTC_MEM_SUPPORTED
static RTC_NOINIT_ATTR rtc_cache_t s_rtc_cache;

static uint16_t rtc_check(const rtc_cache_t *c)
{
    const uint16_t head[3] = {c->id, c->body_len, c->reply_len};
    uint16_t crc = ate_crc16(head, sizeof(head));
    crc = ate_crc16_update(crc, c->body, c->body_len);
    return ate_crc16_update(crc, c->reply, c->reply_len);
}
#endif

void ate_io_prepare_restart(void)
{
#if SOC_RTC_MEM_SUPPORTED
    uint16_t id;
    const char *body;
    const char *reply;
    size_t body_len;
    size_t reply_len;
    s_rtc_cache.magic = 0;
    if (ate_session_last(&s_session, &id, &body, &body_len, &reply, &reply_len) &&
        body_len <= RTC_BODY_MAX && reply_len <= RTC_REPLY_MAX) {
        s_rtc_cache.id = id;
        s_rtc_cache.body_len = (uint16_t)body_len;
        s_rtc_cache.reply_len = (uint16_t)reply_len;
        memcpy(s_rtc_cache.body, body, body_len);
        memcpy(s_rtc_cache.reply, reply, reply_len);
        s_rtc_cache.check = rtc_check(&s_rtc_cache);
        s_rtc_cache.magic = RTC_MAGIC;
    }
#endif
    ate_io_flush(1000);
}

static void restore_cache(void)
{
#if SOC_RTC_MEM_SUPPORTED
    const esp_reset_reason_t why = esp_reset_reason();
    const bool self_inflicted = why == ESP_RST_SW || why == ESP_RST_DEEPSLEEP;
    if (self_inflicted && s_rtc_cache.magic == RTC_MAGIC &&
        s_rtc_cache.body_len <= RTC_BODY_MAX && s_rtc_cache.reply_len <= RTC_REPLY_MAX &&
        s_rtc_cache.check == rtc_check(&s_rtc_cache)) {
        if (ate_session_restore(&s_session, s_rtc_cache.id, s_rtc_cache.body,
                                s_rtc_cache.body_len, s_rtc_cache.reply,
                                s_rtc_cache.reply_len)) {
            ESP_LOGI(TAG, "kept the answer to request %u across the restart",
                     (unsigned)s_rtc_cache.id);
        }
    }
    s_rtc_cache.magic = 0; /* one restart only; after a power cycle it is noise anyway */
#endif
}

/* ---- init ---------------------------------------------------------------------------------- */

esp_err_t ate_io_init(const ate_command_t *commands, size_t command_count)
{
    ate_session_init(&s_session, commands, command_count);
    ate_line_reader_reset(&s_reader);

    s_out_lock = xSemaphoreCreateMutexStatic(&s_out_lock_storage);

    const uart_config_t config = {
#ifdef CONFIG_ESP_CONSOLE_UART_BAUDRATE
        .baud_rate = CONFIG_ESP_CONSOLE_UART_BAUDRATE,
#else
        .baud_rate = 115200,
#endif
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
        .source_clk = UART_SCLK_DEFAULT,
    };
    esp_err_t err = uart_driver_install(ATE_UART, RX_RING_BYTES, TX_RING_BYTES, 0, NULL, 0);
    if (err == ESP_OK) {
        err = uart_param_config(ATE_UART, &config);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "UART0 driver: %s", esp_err_to_name(err));
        return err;
    }
#if defined(CONFIG_ESP_CONSOLE_UART) && CONFIG_ESP_CONSOLE_UART_NUM == 0
    /* stdout (printf from any component) through the driver too: its writes then queue in
     * the same TX ring instead of poking the FIFO behind the driver's back. */
    ATE_VFS_USE_DRIVER(ATE_UART);
#endif
    s_prev_vprintf = esp_log_set_vprintf(log_vprintf);
    restore_cache();
    return ESP_OK;
}
