/*
 * power.mode: the DUT's power states for supply-current steps (PROTOCOL.md, Power modes).
 *
 *   idle         CPUs idle (the idle tasks wait for interrupts), radio off
 *   active       CPUs busy, radio receiving; holds until the next power.mode
 *   light_sleep  answered first, then light sleep for hold_ms, then "@* AWAKE"
 *   deep_sleep   answered first, then deep sleep for hold_ms, then a boot and "@* READY"
 *
 * Both sleep modes leave `active` first: the radio is stopped and the CPUs parked.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "esp_err.h"
#include "sdkconfig.h"
#include "soc/soc_caps.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether this image brings up the Wi-Fi driver at all: on every chip with Wi-Fi, since
 * rf.tx and rf.rx.start need it (and `active` and rf.golden may). */
#if SOC_WIFI_SUPPORTED
#define ATE_HAVE_WIFI 1
#else
#define ATE_HAVE_WIFI 0
#endif

/* Create the (parked) busy tasks and, with ATE_HAVE_WIFI, initialise Wi-Fi without starting
 * it, so that no power.mode pays for driver initialisation or allocates memory. */
esp_err_t power_init(void);

esp_err_t power_set_idle(void);

/* Wi-Fi started as an unconnected station with power save off, for an RF test (rf.c), and
 * stopped again. ESP_ERR_NOT_SUPPORTED on chips without Wi-Fi, ESP_ERR_INVALID_STATE if
 * the driver failed to initialise at boot. Callers make sure `active` is not holding the
 * radio (power_is_active()). */
esp_err_t power_wifi_start(void);
esp_err_t power_wifi_stop(void);
esp_err_t power_set_active(void);
bool power_is_active(void);

/* Arm the wake-up timer; called by the handler so a bad hold_ms fails before the answer. */
esp_err_t power_arm_timer(uint32_t hold_ms);

/* After-actions (ate_after_fn): run once the OK is on the wire. */
void power_light_sleep(uint32_t hold_ms);
void power_deep_sleep(uint32_t hold_ms);

#ifdef __cplusplus
}
#endif
