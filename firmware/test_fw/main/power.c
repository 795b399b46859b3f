/*
 * power.mode (see power.h).
 *
 * `active` keeps every CPU busy with one spinning task per core at priority 1: above the
 * idle tasks (so the cores never wait for interrupts) and below the command task (so
 * requests are still answered at once). The spinners starve the idle tasks by design,
 * which is why sdkconfig.defaults turns off the task watchdog's idle-task check.
 */
#include "power.h"

#include <stdatomic.h>

#include "esp_log.h"
#include "esp_sleep.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "protocol.h"
#include "protocol_io.h"

#if ATE_HAVE_WIFI
#include "esp_event.h"
#include "esp_netif.h"
#include "esp_wifi.h"
#endif

static const char *TAG = "ate_power";

#define BUSY_PRIORITY (tskIDLE_PRIORITY + 1)
#define BUSY_STACK_BYTES 2048 /* ESP-IDF's FreeRTOS counts stack depth in bytes */

static StaticTask_t s_busy_tcb[portNUM_PROCESSORS];
static StackType_t s_busy_stack[portNUM_PROCESSORS][BUSY_STACK_BYTES];
static TaskHandle_t s_busy_task[portNUM_PROCESSORS];
static atomic_bool s_busy;
static bool s_active;

static void busy_task(void *arg)
{
    (void)arg;
    volatile uint32_t sink = 1; /* volatile: the work must not be optimised away */
    for (;;) {
        ulTaskNotifyTake(pdTRUE, portMAX_DELAY); /* parked until `active` */
        while (atomic_load_explicit(&s_busy, memory_order_relaxed)) {
            for (int i = 0; i < 1000; i++) {
                sink = sink * 1664525u + 1013904223u; /* integer ALU work, no memory traffic */
            }
        }
    }
}

#if ATE_HAVE_WIFI
static bool s_wifi_ready;
static bool s_wifi_started;

static esp_err_t wifi_prepare(void)
{
    esp_err_t err = esp_netif_init();
    if (err != ESP_OK) {
        return err;
    }
    err = esp_event_loop_create_default();
    if (err != ESP_OK && err != ESP_ERR_INVALID_STATE) { /* INVALID_STATE: exists already */
        return err;
    }
    wifi_init_config_t config = WIFI_INIT_CONFIG_DEFAULT();
    config.nvs_enable = 0; /* the test firmware keeps no Wi-Fi state in the DUT's flash */
    err = esp_wifi_init(&config);
    if (err == ESP_OK) {
        err = esp_wifi_set_storage(WIFI_STORAGE_RAM);
    }
    if (err == ESP_OK) {
        err = esp_wifi_set_mode(WIFI_MODE_STA);
    }
    return err;
}
#endif

#if ATE_HAVE_WIFI
static esp_err_t wifi_start(void)
{
    if (!s_wifi_ready) {
        return ESP_ERR_INVALID_STATE;
    }
    if (!s_wifi_started) {
        esp_err_t err = esp_wifi_start();
        if (err != ESP_OK) {
            return err;
        }
        s_wifi_started = true;
    }
    /* A started, unconnected station with power save off keeps its receiver on: "radio
     * receive" without needing an access point in the fixture. */
    return esp_wifi_set_ps(WIFI_PS_NONE);
}
#endif

static esp_err_t radio_on(void)
{
#if ATE_HAVE_WIFI && CONFIG_ATE_ACTIVE_RADIO
    return wifi_start();
#else
    return ESP_OK;
#endif
}

static esp_err_t radio_off(void)
{
#if ATE_HAVE_WIFI
    if (s_wifi_started) {
        const esp_err_t err = esp_wifi_stop();
        if (err != ESP_OK) {
            return err;
        }
        s_wifi_started = false;
    }
#endif
    return ESP_OK;
}

esp_err_t power_init(void)
{
    atomic_store(&s_busy, false);
    for (int core = 0; core < portNUM_PROCESSORS; core++) {
        s_busy_task[core] = xTaskCreateStaticPinnedToCore(
            busy_task, "ate_busy", BUSY_STACK_BYTES, NULL, BUSY_PRIORITY, s_busy_stack[core],
            &s_busy_tcb[core], core);
    }
#if ATE_HAVE_WIFI
    const esp_err_t err = wifi_prepare();
    s_wifi_ready = err == ESP_OK;
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Wi-Fi init: %s (power.mode active will answer EHW)", esp_err_to_name(err));
        return err;
    }
#endif
    return ESP_OK;
}

bool power_is_active(void) { return s_active; }

esp_err_t power_set_idle(void)
{
    atomic_store(&s_busy, false); /* the spinners see it within one inner loop and park */
    s_active = false;
    return radio_off();
}

esp_err_t power_wifi_start(void)
{
#if ATE_HAVE_WIFI
    const esp_err_t err = wifi_start();
    if (err != ESP_OK) {
        radio_off();
    }
    return err;
#else
    return ESP_ERR_NOT_SUPPORTED;
#endif
}

esp_err_t power_wifi_stop(void) { return radio_off(); }

esp_err_t power_set_active(void)
{
    const esp_err_t err = radio_on();
    if (err != ESP_OK) {
        radio_off();
        return err;
    }
    if (!atomic_exchange(&s_busy, true)) {
        for (int core = 0; core < portNUM_PROCESSORS; core++) {
            xTaskNotifyGive(s_busy_task[core]);
        }
    }
    s_active = true;
    return ESP_OK;
}

esp_err_t power_arm_timer(uint32_t hold_ms)
{
    return esp_sleep_enable_timer_wakeup((uint64_t)hold_ms * 1000u);
}

void power_light_sleep(uint32_t hold_ms)
{
    const esp_err_t off = power_set_idle();
    if (off != ESP_OK) {
        ESP_LOGW(TAG, "radio off before light sleep: %s", esp_err_to_name(off));
    }
    ESP_LOGI(TAG, "light sleep for %u ms", (unsigned)hold_ms);
    ate_io_flush(1000); /* that log line too, before the UART stops */

    const esp_err_t err = esp_light_sleep_start(); /* returns on the timer (or on error) */
    esp_sleep_disable_wakeup_source(ESP_SLEEP_WAKEUP_TIMER);

    /* Whatever the UART caught while the clocks were gated is fragments at best. */
    ate_io_discard_input();
    if (err != ESP_OK) {
        /* The OK is already sent, so the failure can only go to the log. AWAKE still follows:
         * the host is waiting for it, and the supply-current step will see the wrong current. */
        ESP_LOGE(TAG, "light sleep did not happen: %s", esp_err_to_name(err));
    }
    char line[32];
    ate_reply_t notice;
    ate_notice_init(&notice, line, sizeof(line), "AWAKE");
    ate_io_send_notice(&notice);
}

void power_deep_sleep(uint32_t hold_ms)
{
    const esp_err_t off = power_set_idle();
    if (off != ESP_OK) {
        ESP_LOGW(TAG, "radio off before deep sleep: %s", esp_err_to_name(off));
    }
    ESP_LOGI(TAG, "deep sleep for %u ms; the DUT boots again afterwards", (unsigned)hold_ms);
    ate_io_prepare_restart(); /* keeps the answer for a resend, drains the UART */
    esp_deep_sleep_start();   /* does not return: the wake-up is a boot, then READY */
}
