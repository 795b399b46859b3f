/*
 * The RF test's BLE side (see rf.h), with the NimBLE host: test frames as non-connectable
 * legacy advertisements carrying the payload as manufacturer data (company 0x02E5), and a
 * passive scan that keeps duplicates, feeding rf_test_rx_submit().
 *
 * Built only with CONFIG_ATE_RF_BLE, which needs Bluetooth and NimBLE enabled. The
 * compile-check kit's trimmed ESP-IDF has no `bt` component, so this file has not been
 * compiled there (README, "RF test against a golden board").
 *
 * Limits of BLE as a test radio (PROTOCOL.md): the controller schedules each advertising
 * event itself (plus a 0-10 ms random delay the Core spec requires), and a scan report's
 * time is when the host task sees it, so BLE timestamps jitter by milliseconds and its cfo
 * is coarse; and a scanner hops over all three advertising channels, hearing a sender that
 * uses one of them for about a third of the time.
 */
#include "sdkconfig.h"

#if CONFIG_ATE_RF_BLE

#include <string.h>

#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "host/ble_gap.h"
#include "host/ble_hs.h"
#include "nimble/nimble_port.h"
#include "nimble/nimble_port_freertos.h"
#include "rf.h"

static const char *TAG = "ate_rf_ble";

#define BLE_SYNC_TIMEOUT_MS 3000
#define BLE_UNITS_PER_US 625u /* advertising and scan intervals are in 0.625 ms */
#define BLE_SCAN_ITVL 0x0030u /* 30 ms, with a window as long: the receiver always listens */

static StaticSemaphore_t s_synced_state;
static SemaphoreHandle_t s_synced;
static bool s_up;
static uint8_t s_own_addr_type;

static void on_sync(void) { xSemaphoreGive(s_synced); }

static void host_task(void *arg)
{
    (void)arg;
    nimble_port_run(); /* returns only after nimble_port_stop(), which nothing calls */
    nimble_port_freertos_deinit();
}

/* NimBLE is brought up on first use and then stays up (Wi-Fi and BLE share the radio
 * through the coexistence scheduler). */
static esp_err_t ble_up(void)
{
    if (s_up) {
        return ESP_OK;
    }
    if (s_synced == NULL) {
        s_synced = xSemaphoreCreateBinaryStatic(&s_synced_state);
    }
    esp_err_t err = nimble_port_init();
    if (err != ESP_OK) {
        return err;
    }
    ble_hs_cfg.sync_cb = on_sync;
    nimble_port_freertos_init(host_task);
    if (xSemaphoreTake(s_synced, pdMS_TO_TICKS(BLE_SYNC_TIMEOUT_MS)) != pdTRUE) {
        return ESP_ERR_TIMEOUT;
    }
    const int rc = ble_hs_id_infer_auto(0, &s_own_addr_type);
    if (rc != 0) {
        ESP_LOGE(TAG, "no BLE address: %d", rc);
        return ESP_FAIL;
    }
    s_up = true;
    return ESP_OK;
}

static int adv_event(struct ble_gap_event *event, void *arg)
{
    (void)event;
    (void)arg;
    return 0;
}

esp_err_t rf_test_ble_tx(const ate_rf_tx_args_t *a, const uint8_t mac[6], uint32_t *sent)
{
    esp_err_t err = ble_up();
    if (err != ESP_OK) {
        return err;
    }
    struct ble_gap_adv_params params;
    memset(&params, 0, sizeof(params));
    params.conn_mode = BLE_GAP_CONN_MODE_NON;
    params.disc_mode = BLE_GAP_DISC_MODE_NON;
    params.channel_map = (uint8_t)(1u << (a->channel - 37u)); /* bit 0: 37, 1: 38, 2: 39 */
    params.itvl_min = (uint16_t)(a->interval_us / BLE_UNITS_PER_US);
    params.itvl_max = params.itvl_min;
    /* Power: the controller's own setting (esp_ble_tx_power_set) is left alone; the
     * argument is validated for the protocol's sake and reported in the log. */
    ESP_LOGD(TAG, "power=%u dBm requested; BLE uses the controller's default", a->power_dbm);

    static uint8_t adv[ATE_RF_BLE_ADV_LEN];
    ate_rf_frame_t frame = {.kind = ATE_RF_KIND_BLE, .count = a->count};
    memcpy(frame.mac, mac, 6);
    const int64_t start = esp_timer_get_time();
    for (uint32_t seq = 0; seq < a->count; seq++) {
        rf_test_wait_until(start + (int64_t)seq * a->interval_us);
        if (seq > 0) {
            (void)ble_gap_adv_stop(); /* one advertising event per frame: stop, new data, start */
        }
        frame.seq = (uint16_t)seq;
        frame.timestamp_us = (uint32_t)esp_timer_get_time();
        const size_t len = ate_rf_ble_encode(&frame, adv, sizeof(adv));
        int rc = ble_gap_adv_set_data(adv, (int)len);
        if (rc == 0) {
            rc = ble_gap_adv_start(s_own_addr_type, NULL, BLE_HS_FOREVER, &params, adv_event, NULL);
        }
        if (rc != 0) {
            ESP_LOGE(TAG, "advertising frame %u: NimBLE error %d", (unsigned)seq, rc);
            err = ESP_FAIL;
            break;
        }
        (*sent)++;
    }
    rf_test_wait_until(start + (int64_t)a->count * a->interval_us); /* the last one's event */
    (void)ble_gap_adv_stop();
    return err;
}

static int disc_event(struct ble_gap_event *event, void *arg)
{
    (void)arg;
    if (event->type == BLE_GAP_EVENT_DISC) {
        const uint32_t now = (uint32_t)esp_timer_get_time();
        ate_rf_frame_t frame;
        if (ate_rf_ble_decode(event->disc.data, event->disc.length_data, &frame)) {
            rf_test_rx_submit(&frame, event->disc.rssi, now);
        }
    }
    return 0;
}

esp_err_t rf_test_ble_rx_start(uint8_t channel)
{
    /* The scan hops over 37, 38 and 39 by itself; the host API has no way to pin it to
     * `channel`, which the sender's channel map does instead. */
    (void)channel;
    esp_err_t err = ble_up();
    if (err != ESP_OK) {
        return err;
    }
    struct ble_gap_disc_params params;
    memset(&params, 0, sizeof(params));
    params.itvl = BLE_SCAN_ITVL;
    params.window = BLE_SCAN_ITVL;
    params.passive = 1;
    params.filter_duplicates = 0; /* every frame is a new seq; a repeat is counted once anyway */
    const int rc = ble_gap_disc(s_own_addr_type, BLE_HS_FOREVER, &params, disc_event, NULL);
    if (rc != 0) {
        ESP_LOGE(TAG, "scan: NimBLE error %d", rc);
        return ESP_FAIL;
    }
    return ESP_OK;
}

esp_err_t rf_test_ble_rx_stop(void)
{
    const int rc = ble_gap_disc_cancel();
    if (rc != 0 && rc != BLE_HS_EALREADY) {
        ESP_LOGE(TAG, "scan cancel: NimBLE error %d", rc);
        return ESP_FAIL;
    }
    return ESP_OK;
}

#endif /* CONFIG_ATE_RF_BLE */
