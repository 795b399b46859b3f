/*
 * Argument rules of rf.tx, rf.rx.start and rf.role (PROTOCOL.md, "RF test"). Pure C on
 * protocol.h's helpers, so test/host checks every limit; rf.c calls these before it
 * touches a radio. A bad argument fails the reply with EARG naming it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ATE_RF_INTERVAL_MIN_US 500u
#define ATE_RF_INTERVAL_MAX_US 100000u
#define ATE_RF_WIFI_INTERVAL_DEFAULT_US 1000u
#define ATE_RF_BLE_INTERVAL_DEFAULT_US 20000u
/* The shortest advertising interval legacy non-connectable advertising allows (20 ms,
 * Core spec 5.x): a shorter BLE interval is refused rather than silently stretched. */
#define ATE_RF_BLE_INTERVAL_MIN_US 20000u
#define ATE_RF_POWER_MIN_DBM 2u
#define ATE_RF_POWER_MAX_DBM 20u

typedef struct {
    uint8_t kind;    /* ate_rf_kind_t */
    uint8_t channel; /* wifi 1..14, ble 37..39 */
    uint16_t count;  /* 1..ATE_RF_MAX_COUNT */
    uint32_t interval_us;
    uint8_t power_dbm;
} ate_rf_tx_args_t;

typedef struct {
    uint8_t kind;
    uint8_t channel;
    bool from_given;
    uint8_t from[6];
} ate_rf_rx_args_t;

typedef enum {
    ATE_RF_ROLE_DUT = 0,
    ATE_RF_ROLE_GOLDEN = 1,
} ate_rf_role_t;

/* "dut" / "golden" */
const char *ate_rf_role_name(ate_rf_role_t role);

/* rf.tx <wifi|ble> <channel> <count> [interval_us=<n>] [power=<dBm>] */
bool ate_rf_tx_args(const ate_request_t *request, ate_reply_t *reply, ate_rf_tx_args_t *args);

/* rf.rx.start <wifi|ble> <channel> [from=<aa:bb:cc:dd:ee:ff>] */
bool ate_rf_rx_args(const ate_request_t *request, ate_reply_t *reply, ate_rf_rx_args_t *args);

/* rf.role [dut|golden]: *set is false for the query form. */
bool ate_rf_role_args(const ate_request_t *request, ate_reply_t *reply, bool *set,
                      ate_rf_role_t *role);

/* The command table's rows for these commands (argument counts and allowed options), so
 * the firmware and the host test dispatch them the same way. */
#define ATE_RF_TX_USAGE "rf.tx <wifi|ble> <channel> <count> [interval_us=<n>] [power=<dBm>]"
#define ATE_RF_RX_START_USAGE "rf.rx.start <wifi|ble> <channel> [from=<mac>]"

#ifdef __cplusplus
}
#endif
