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

/* Whether this image brings up the Wi-Fi driver at all: for `active` or for rf.golden. */
#if SOC_WIFI_SUPPORTED && (CONFIG_ATE_ACTIVE_RADIO || CONFIG_ATE_RF_GOLDEN)
#define ATE_HAVE_WIFI 1
#else
#define ATE_HAVE_WIFI 0
#endif

/* Create the (parked) busy tasks and, with ATE_HAVE_WIFI, initialise Wi-Fi without starting
 * it, so that no power.mode pays for driver initialisation or allocates memory. */
esp_err_t power_init(void);

esp_err_t power_set_idle(void);
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
