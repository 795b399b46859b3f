/*
 * The RF test against a golden board (PROTOCOL.md, "RF test"): the board's role (rf.role,
 * kept in NVS), test frames sent (rf.tx) and counted (rf.rx.start, rf.rx.stop) on Wi-Fi
 * and, when built in, BLE.
 *
 * rf.c owns the role, the Wi-Fi side and the receive pipeline; rf_ble.c owns NimBLE. The
 * bytes of a frame are rf_frame.c's, the counting rf_stats.c's, the argument rules
 * rf_args.c's: those three are plain C, tested on the host.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "esp_err.h"
#include "protocol.h"
#include "rf_args.h"
#include "rf_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Read the role from NVS (dut when nothing is stored; the DUT's NVS is not written) and
 * create the receive task. Call once at boot, after power_init(). */
void rf_test_init(void);

ate_rf_role_t rf_test_role(void);

/* True between rf.rx.start and rf.rx.stop: the radio is the test's, and power.mode and
 * rf.golden answer EBUSY meanwhile. */
bool rf_test_rx_running(void);

/* Command handlers for the table in commands.c. */
void cmd_rf_role(const ate_request_t *request, ate_reply_t *reply);
void cmd_rf_tx(const ate_request_t *request, ate_reply_t *reply);
void cmd_rf_rx_start(const ate_request_t *request, ate_reply_t *reply);
void cmd_rf_rx_stop(const ate_request_t *request, ate_reply_t *reply);

/* ---- between rf.c and rf_ble.c ------------------------------------------------------------- */

/* Hand a received test frame to the counter: from any task (the Wi-Fi task, the NimBLE
 * host task), never from an ISR. Frames of the wrong kind or sender are dropped here. */
void rf_test_rx_submit(const ate_rf_frame_t *frame, int32_t rssi_dbm, uint32_t receiver_us);

/* Wait until `due` (esp_timer microseconds): sleeps while more than 2 ms remain, then
 * spins, so intervals down to 500 us hold. */
void rf_test_wait_until(int64_t due_us);

#if CONFIG_ATE_RF_BLE
/* rf_ble.c: the BLE side. Each returns ESP_OK or the NimBLE/ESP-IDF failure. */
esp_err_t rf_test_ble_tx(const ate_rf_tx_args_t *args, const uint8_t mac[6], uint32_t *sent);
esp_err_t rf_test_ble_rx_start(uint8_t channel);
esp_err_t rf_test_ble_rx_stop(void);
#endif

#ifdef __cplusplus
}
#endif
