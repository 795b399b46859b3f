/*
 * The RF test's ESP-IDF side (see rf.h): the role in NVS, Wi-Fi test frames sent with
 * esp_wifi_80211_tx and counted from the promiscuous receive callback, and the pipeline
 * that carries received frames to the accumulator.
 *
 * Threads: handlers run on the command task. Received frames arrive on the Wi-Fi task
 * (promiscuous callback) or the NimBLE host task (rf_ble.c); rf_test_rx_submit() only filters
 * them and puts a 16-byte record on a queue. One receive task owns the accumulator
 * (rf_stats.c, whose double arithmetic is too slow for the Wi-Fi task on a chip without an
 * FPU) and takes the records, a reset and a sync marker off that queue in order; so the
 * command task reads the accumulator only after a sync, when nothing else touches it.
 */
#include "rf.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#include "esp_log.h"
#include "esp_mac.h"
#include "esp_partition.h"
#include "esp_rom_sys.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "power.h"
#include "rf_stats.h"
#include "sdkconfig.h"

#if ATE_HAVE_WIFI
#include "esp_wifi.h"
#endif

static const char *TAG = "ate_rf";

/* ---- role -------------------------------------------------------------------------------------- */

#define ROLE_NAMESPACE "ate_rf"
#define ROLE_KEY "role"
#define NVS_PAGE_BYTES 4096u

static ate_rf_role_t s_role = ATE_RF_ROLE_DUT;

/* An NVS partition never written (every page header erased) holds no role, and reading it
 * must not format it: nvs_flash_init() would write page headers into a DUT's NVS, which
 * the test firmware otherwise leaves alone (sdkconfig.defaults). */
static bool nvs_never_written(void)
{
    const esp_partition_t *part = esp_partition_find_first(
        ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_DATA_NVS, NVS_DEFAULT_PART_NAME);
    if (part == NULL) {
        return true;
    }
    for (uint32_t offset = 0; offset + NVS_PAGE_BYTES <= part->size; offset += NVS_PAGE_BYTES) {
        uint8_t header[32];
        if (esp_partition_read(part, offset, header, sizeof(header)) != ESP_OK) {
            return false; /* unreadable: let nvs_flash_init() report it */
        }
        for (size_t i = 0; i < sizeof(header); i++) {
            if (header[i] != 0xFF) {
                return false;
            }
        }
    }
    return true;
}

static void role_load(void)
{
    if (nvs_never_written()) {
        return; /* dut */
    }
    esp_err_t err = nvs_flash_init();
    if (err != ESP_OK) {
        /* Never erased here: the DUT's NVS may hold what the line must not lose. */
        ESP_LOGW(TAG, "NVS: %s; role dut", esp_err_to_name(err));
        return;
    }
    nvs_handle_t handle;
    err = nvs_open(ROLE_NAMESPACE, NVS_READONLY, &handle);
    if (err != ESP_OK) {
        return; /* ESP_ERR_NVS_NOT_FOUND: no role was ever stored */
    }
    uint8_t value = 0;
    err = nvs_get_u8(handle, ROLE_KEY, &value);
    nvs_close(handle);
    if (err == ESP_OK && value == ATE_RF_ROLE_GOLDEN) {
        s_role = ATE_RF_ROLE_GOLDEN;
    }
}

static esp_err_t role_store(ate_rf_role_t role)
{
    esp_err_t err = nvs_flash_init(); /* ESP_OK again when it is up already */
    if (err != ESP_OK) {
        return err; /* e.g. ESP_ERR_NVS_NO_FREE_PAGES: the partition needs erasing by hand */
    }
    nvs_handle_t handle;
    err = nvs_open(ROLE_NAMESPACE, NVS_READWRITE, &handle);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_set_u8(handle, ROLE_KEY, (uint8_t)role);
    if (err == ESP_OK) {
        err = nvs_commit(handle);
    }
    nvs_close(handle);
    return err;
}

ate_rf_role_t rf_test_role(void) { return s_role; }

void cmd_rf_role(const ate_request_t *q, ate_reply_t *r)
{
    bool set = false;
    ate_rf_role_t role = s_role;
    if (!ate_rf_role_args(q, r, &set, &role)) {
        return;
    }
    if (set && role != s_role) {
        const esp_err_t err = role_store(role);
        if (err != ESP_OK) {
            ate_reply_fail(r, ATE_EHW, "storing the role in NVS: %s", esp_err_to_name(err));
            return;
        }
        ESP_LOGI(TAG, "role %s (stored)", ate_rf_role_name(role));
        s_role = role;
    }
    ate_reply_str(r, "role", ate_rf_role_name(s_role));
}

/* ---- the receive pipeline ------------------------------------------------------------------- */

enum { MSG_FRAME, MSG_RESET, MSG_SYNC };

typedef struct {
    uint8_t op;
    int8_t rssi_dbm;
    uint16_t seq;
    uint16_t count;
    uint32_t sender_us;
    uint32_t receiver_us;
} rx_msg_t;

#define RX_QUEUE_DEPTH 64            /* 64 ms of frames at the fastest rate, 1 KiB */
#define RX_TASK_PRIORITY 6           /* above the command task (5), below Wi-Fi and NimBLE */
#define RX_TASK_STACK_BYTES 3072
#define RX_SYNC_TIMEOUT_MS 1000

static StaticQueue_t s_rx_queue_state;
static uint8_t s_rx_queue_storage[RX_QUEUE_DEPTH * sizeof(rx_msg_t)];
static QueueHandle_t s_rx_queue;
static StaticSemaphore_t s_rx_synced_state;
static SemaphoreHandle_t s_rx_synced;
static StaticTask_t s_rx_tcb;
static StackType_t s_rx_stack[RX_TASK_STACK_BYTES];

static ate_rf_stats_t s_stats;    /* the receive task's alone */
static ate_rf_stats_t s_snapshot; /* s_stats as of the last sync; the command task reads it */

/* What the callbacks accept. Written by the command task only while s_rx_open is false
 * and the radio delivers nothing (promiscuous off, scan cancelled). */
static atomic_bool s_rx_open;
static uint8_t s_rx_kind;
static bool s_rx_from_given;
static uint8_t s_rx_from[6];
static atomic_uint s_rx_overflow; /* frames the full queue refused: reported in the log */

static bool s_rx_running; /* command task only */

static void rx_task(void *arg)
{
    (void)arg;
    for (;;) {
        rx_msg_t m;
        if (xQueueReceive(s_rx_queue, &m, portMAX_DELAY) != pdTRUE) {
            continue;
        }
        switch (m.op) {
        case MSG_FRAME:
            (void)ate_rf_stats_add(&s_stats, m.seq, m.count, m.rssi_dbm, m.sender_us,
                                   m.receiver_us);
            break;
        case MSG_RESET:
            ate_rf_stats_reset(&s_stats);
            break;
        case MSG_SYNC:
            /* A copy, so that a frame a callback queued just before the radio went quiet
             * can only ever reach s_stats, never the numbers being replied. */
            s_snapshot = s_stats;
            xSemaphoreGive(s_rx_synced);
            break;
        default:
            break;
        }
    }
}

/* Queue a control message behind every frame already queued; with MSG_SYNC, wait until the
 * receive task has taken it, i.e. has counted everything before it. */
static bool rx_control(uint8_t op)
{
    const rx_msg_t m = {.op = op};
    if (xQueueSend(s_rx_queue, &m, pdMS_TO_TICKS(RX_SYNC_TIMEOUT_MS)) != pdTRUE) {
        return false;
    }
    return op != MSG_SYNC ||
           xSemaphoreTake(s_rx_synced, pdMS_TO_TICKS(RX_SYNC_TIMEOUT_MS)) == pdTRUE;
}

void rf_test_rx_submit(const ate_rf_frame_t *frame, int32_t rssi_dbm, uint32_t receiver_us)
{
    if (!atomic_load_explicit(&s_rx_open, memory_order_acquire) || frame->kind != s_rx_kind ||
        (s_rx_from_given && memcmp(frame->mac, s_rx_from, 6) != 0)) {
        return;
    }
    const int32_t rssi = rssi_dbm < INT8_MIN ? INT8_MIN : rssi_dbm > INT8_MAX ? INT8_MAX : rssi_dbm;
    const rx_msg_t m = {
        .op = MSG_FRAME,
        .rssi_dbm = (int8_t)rssi,
        .seq = frame->seq,
        .count = frame->count,
        .sender_us = frame->timestamp_us,
        .receiver_us = receiver_us,
    };
    if (xQueueSend(s_rx_queue, &m, 0) != pdTRUE) {
        atomic_fetch_add(&s_rx_overflow, 1u);
    }
}

bool rf_test_rx_running(void) { return s_rx_running; }

void rf_test_wait_until(int64_t due_us)
{
    for (;;) {
        const int64_t left = due_us - esp_timer_get_time();
        if (left <= 0) {
            return;
        }
        if (left > 2000) {
            vTaskDelay(pdMS_TO_TICKS((uint32_t)((left - 1000) / 1000)));
        } else {
            esp_rom_delay_us((uint32_t)left);
        }
    }
}

/* ---- Wi-Fi ----------------------------------------------------------------------------------- */

#if ATE_HAVE_WIFI
/* After the last frame is handed to the driver, before the radio stops: the driver's queue
 * drains in well under this. */
#define WIFI_TX_DRAIN_MS 20
/* How long one frame may wait for a free transmit buffer (ESP_ERR_NO_MEM) before it is
 * given up and not counted in sent=. */
#define WIFI_TX_RETRY_US 5000
#define WIFI_TX_RETRY_STEP_US 100

/* Channels 1..14 as the protocol says; the driver's default country allows 1..13. */
static esp_err_t wifi_allow_all_channels(void)
{
    static const wifi_country_t country = {
        .cc = "01", .schan = 1, .nchan = 14, .max_tx_power = 20,
        .policy = WIFI_COUNTRY_POLICY_MANUAL};
    return esp_wifi_set_country(&country);
}

static esp_err_t wifi_tx(const ate_rf_tx_args_t *a, const uint8_t mac[6], uint32_t *sent)
{
    esp_err_t err = power_wifi_start();
    if (err == ESP_OK) {
        err = wifi_allow_all_channels();
    }
    if (err == ESP_OK) {
        err = esp_wifi_set_channel(a->channel, WIFI_SECOND_CHAN_NONE);
    }
    if (err == ESP_OK) {
        /* 0.25 dBm steps; 2..20 dBm is the driver's range [8, 84] less its top step. */
        err = esp_wifi_set_max_tx_power((int8_t)(a->power_dbm * 4u));
    }
    if (err != ESP_OK) {
        power_wifi_stop();
        return err;
    }
    static uint8_t buf[ATE_RF_WIFI_FRAME_LEN];
    ate_rf_frame_t frame = {.kind = ATE_RF_KIND_WIFI, .count = a->count};
    memcpy(frame.mac, mac, 6);
    const int64_t start = esp_timer_get_time();
    for (uint32_t seq = 0; seq < a->count && err == ESP_OK; seq++) {
        rf_test_wait_until(start + (int64_t)seq * a->interval_us);
        frame.seq = (uint16_t)seq;
        /* Stamped as late as possible: the receiver fits its receive times against these. */
        frame.timestamp_us = (uint32_t)esp_timer_get_time();
        const size_t len = ate_rf_wifi_encode(&frame, buf, sizeof(buf));
        uint32_t waited = 0;
        for (;;) {
            err = esp_wifi_80211_tx(WIFI_IF_STA, buf, (int)len, true);
            if (err != ESP_ERR_NO_MEM || waited >= WIFI_TX_RETRY_US) {
                break;
            }
            esp_rom_delay_us(WIFI_TX_RETRY_STEP_US);
            waited += WIFI_TX_RETRY_STEP_US;
        }
        if (err == ESP_OK) {
            (*sent)++;
        } else if (err == ESP_ERR_NO_MEM) {
            err = ESP_OK; /* this frame is lost; the receiver's count shows it */
        }
    }
    vTaskDelay(pdMS_TO_TICKS(WIFI_TX_DRAIN_MS));
    const esp_err_t stop = power_wifi_stop();
    return err != ESP_OK ? err : stop;
}

/* The Wi-Fi task calls this for every data frame heard while promiscuous. */
static void wifi_rx_cb(void *buf, wifi_promiscuous_pkt_type_t type)
{
    if (type != WIFI_PKT_DATA) {
        return;
    }
    const wifi_promiscuous_pkt_t *pkt = (const wifi_promiscuous_pkt_t *)buf;
    ate_rf_frame_t frame;
    if (ate_rf_wifi_decode(pkt->payload, pkt->rx_ctrl.sig_len, &frame)) {
        /* rx_ctrl.timestamp: the MAC's microsecond clock, from the same crystal as the
         * chip's esp_timer, so its rate is the receiver's crystal. */
        rf_test_rx_submit(&frame, pkt->rx_ctrl.rssi, (uint32_t)pkt->rx_ctrl.timestamp);
    }
}

static esp_err_t wifi_rx_start(uint8_t channel)
{
    const wifi_promiscuous_filter_t filter = {.filter_mask = WIFI_PROMIS_FILTER_MASK_DATA};
    esp_err_t err = power_wifi_start();
    if (err == ESP_OK) {
        err = wifi_allow_all_channels();
    }
    if (err == ESP_OK) {
        err = esp_wifi_set_promiscuous_filter(&filter);
    }
    if (err == ESP_OK) {
        err = esp_wifi_set_promiscuous_rx_cb(wifi_rx_cb);
    }
    if (err == ESP_OK) {
        err = esp_wifi_set_promiscuous(true);
    }
    if (err == ESP_OK) {
        err = esp_wifi_set_channel(channel, WIFI_SECOND_CHAN_NONE);
    }
    if (err != ESP_OK) {
        esp_wifi_set_promiscuous(false);
        power_wifi_stop();
    }
    return err;
}

static esp_err_t wifi_rx_stop(void)
{
    /* Returns once the Wi-Fi task has taken it: no callback runs after this. */
    const esp_err_t err = esp_wifi_set_promiscuous(false);
    const esp_err_t stop = power_wifi_stop();
    return err != ESP_OK ? err : stop;
}
#endif /* ATE_HAVE_WIFI */

/* ---- the commands ------------------------------------------------------------------------------ */

/* What the host learns when this image or chip lacks a radio: EUNKNOWN, since retrying can
 * never help (as rf.golden without its plug-in). */
static bool radio_built_in(uint8_t kind, ate_reply_t *r)
{
#if !CONFIG_ATE_RF_BLE
    if (kind == ATE_RF_KIND_BLE) {
        ate_reply_fail(r, ATE_EUNKNOWN, "ble is not built into this image");
        return false;
    }
#endif
#if !ATE_HAVE_WIFI
    if (kind == ATE_RF_KIND_WIFI) {
        ate_reply_fail(r, ATE_EUNKNOWN, "this chip has no Wi-Fi");
        return false;
    }
#endif
    (void)kind;
    (void)r;
    return true;
}

static bool radio_free(ate_reply_t *r)
{
    if (power_is_active()) {
        ate_reply_fail(r, ATE_EBUSY, "the radio is held by power.mode active; send power.mode idle");
        return false;
    }
    return true;
}

/* Stop hearing frames and wait until everything heard is counted. */
static esp_err_t rx_close(void)
{
    atomic_store_explicit(&s_rx_open, false, memory_order_release);
    esp_err_t err = ESP_OK;
#if ATE_HAVE_WIFI
    if (s_rx_kind == ATE_RF_KIND_WIFI) {
        err = wifi_rx_stop();
    }
#endif
#if CONFIG_ATE_RF_BLE
    if (s_rx_kind == ATE_RF_KIND_BLE) {
        err = rf_test_ble_rx_stop();
    }
#endif
    s_rx_running = false;
    if (!rx_control(MSG_SYNC) && err == ESP_OK) {
        err = ESP_ERR_TIMEOUT;
    }
    return err;
}

void cmd_rf_tx(const ate_request_t *q, ate_reply_t *r)
{
    ate_rf_tx_args_t a;
    if (!ate_rf_tx_args(q, r, &a) || !radio_built_in(a.kind, r) || !radio_free(r)) {
        return;
    }
    if (s_rx_running) {
        ate_reply_fail(r, ATE_EBUSY, "rf.rx is running on this board; send rf.rx.stop first");
        return;
    }
    uint8_t mac[6] = {0};
    esp_err_t err = esp_efuse_mac_get_default(mac); /* the MAC `info` reports */
    uint32_t sent = 0;
    if (err == ESP_OK) {
#if ATE_HAVE_WIFI
        if (a.kind == ATE_RF_KIND_WIFI) {
            err = wifi_tx(&a, mac, &sent);
        }
#endif
#if CONFIG_ATE_RF_BLE
        if (a.kind == ATE_RF_KIND_BLE) {
            err = rf_test_ble_tx(&a, mac, &sent);
        }
#endif
    }
    if (err != ESP_OK) {
        ate_reply_fail(r, ATE_EHW, "rf.tx %s: %s (%" PRIu32 " sent)", q->argv[0],
                       esp_err_to_name(err), sent);
        return;
    }
    ate_reply_uint(r, "sent", sent);
}

void cmd_rf_rx_start(const ate_request_t *q, ate_reply_t *r)
{
    ate_rf_rx_args_t a;
    if (!ate_rf_rx_args(q, r, &a) || !radio_built_in(a.kind, r) || !radio_free(r)) {
        return;
    }
    if (s_rx_running) {
        (void)rx_close(); /* a second start restarts the count */
    }
    s_rx_kind = a.kind;
    s_rx_from_given = a.from_given;
    memcpy(s_rx_from, a.from, sizeof(s_rx_from));
    if (!rx_control(MSG_RESET)) { /* frames queued before it are counted, then forgotten */
        ate_reply_fail(r, ATE_EHW, "rf receive task does not answer");
        return;
    }
    atomic_store(&s_rx_overflow, 0u);
    atomic_store_explicit(&s_rx_open, true, memory_order_release);
    esp_err_t err = ESP_OK;
#if ATE_HAVE_WIFI
    if (a.kind == ATE_RF_KIND_WIFI) {
        err = wifi_rx_start(a.channel);
    }
#endif
#if CONFIG_ATE_RF_BLE
    if (a.kind == ATE_RF_KIND_BLE) {
        err = rf_test_ble_rx_start(a.channel);
    }
#endif
    if (err != ESP_OK) {
        atomic_store_explicit(&s_rx_open, false, memory_order_release);
        ate_reply_fail(r, ATE_EHW, "rf.rx.start %s: %s", q->argv[0], esp_err_to_name(err));
        return;
    }
    s_rx_running = true;
}

void cmd_rf_rx_stop(const ate_request_t *q, ate_reply_t *r)
{
    (void)q;
    if (!s_rx_running) {
        ate_reply_fail(r, ATE_EARG, "no rf.rx.start");
        return;
    }
    const esp_err_t err = rx_close();
    if (err != ESP_OK) {
        ate_reply_fail(r, ATE_EHW, "rf.rx.stop: %s", esp_err_to_name(err));
        return;
    }
    const unsigned overflow = atomic_load(&s_rx_overflow);
    if (overflow != 0) {
        ESP_LOGW(TAG, "%u frames heard but not counted (receive queue full)", overflow);
    }
    ate_rf_stats_reply(&s_snapshot, r);
}

void rf_test_init(void)
{
    role_load();
    ESP_LOGI(TAG, "role %s", ate_rf_role_name(s_role));
    atomic_store(&s_rx_open, false);
    s_rx_queue = xQueueCreateStatic(RX_QUEUE_DEPTH, sizeof(rx_msg_t), s_rx_queue_storage,
                                    &s_rx_queue_state);
    s_rx_synced = xSemaphoreCreateBinaryStatic(&s_rx_synced_state);
    xTaskCreateStatic(rx_task, "ate_rf_rx", RX_TASK_STACK_BYTES, NULL, RX_TASK_PRIORITY,
                      s_rx_stack, &s_rx_tcb);
}
