/*
 * rf.golden: the signal-board RF test, as a plug-in.
 *
 * The test exchanges packets with the fixture's golden board (a known-good unit running
 * its companion firmware, held by the sequence step with `uses: [golden]`) and reports
 * what the DUT's radio achieved. How it does that -- ESP-NOW, raw 802.11 frames, or
 * Espressif's RF test library -- belongs to the RF engineers' component, not to the test
 * firmware, which only validates arguments, guards the radio and formats the reply.
 *
 * Build it in with CONFIG_ATE_RF_GOLDEN=y and a component named `ate_rf_golden` that
 * REQUIRES ate_rf_golden_api and defines ate_rf_golden_run() (README: "RF test").
 */
#pragma once

#include <stdint.h>

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fixed point, so the firmware needs no float formatting and the values are exact. */
typedef struct {
    int32_t rssi_dbm_x10;         /* mean RSSI of the golden board's packets, 0.1 dBm */
    int32_t freq_offset_ppm_x100; /* DUT carrier offset against the golden board, 0.01 ppm */
    uint32_t per_x100;            /* packet error rate, 0.01 % (0..10000) */
} ate_rf_golden_result_t;

/*
 * Run the test on Wi-Fi `channel` (1..14) with `packets` packets (1..10000), returning
 * within `timeout_ms`.
 *
 * Called from the command task, with the radio stopped: on chips with Wi-Fi the firmware
 * has already run esp_netif_init(), esp_event_loop_create_default() and esp_wifi_init()
 * (STA mode, RAM storage) and nothing is started. The implementation may start the radio
 * and must stop it again before returning.
 *
 * Returns:
 *   ESP_OK                 *result filled in
 *   ESP_ERR_INVALID_STATE  cannot run now (reported as EBUSY)
 *   ESP_ERR_TIMEOUT        the golden board did not answer (EHW)
 *   ESP_ERR_NOT_SUPPORTED  channel or packet count unsupported by this implementation (EARG)
 *   anything else          EHW, with esp_err_to_name() in the message
 */
esp_err_t ate_rf_golden_run(uint8_t channel, uint32_t packets, uint32_t timeout_ms,
                            ate_rf_golden_result_t *result);

#ifdef __cplusplus
}
#endif
