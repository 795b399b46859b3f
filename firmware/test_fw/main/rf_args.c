/*
 * RF argument rules (see rf_args.h). Imports protocol.h and rf_frame.h only.
 */
#include "rf_args.h"

#include "rf_frame.h"

const char *ate_rf_role_name(ate_rf_role_t role)
{
    return role == ATE_RF_ROLE_GOLDEN ? "golden" : "dut";
}

/* The mode and channel both commands start with. */
static bool mode_and_channel(const ate_request_t *q, ate_reply_t *r, uint8_t *kind,
                             uint8_t *channel)
{
    size_t mode;
    if (!ate_arg_choice(q, r, 0, "mode", "wifi|ble", &mode)) {
        return false;
    }
    uint32_t ch;
    if (mode == 0) {
        *kind = ATE_RF_KIND_WIFI;
        if (!ate_arg_uint(q, r, 1, "channel", 1, 14, &ch)) {
            return false;
        }
    } else {
        *kind = ATE_RF_KIND_BLE;
        /* Advertising channels only: a test frame is an advertisement. */
        if (!ate_arg_uint(q, r, 1, "channel", 37, 39, &ch)) {
            return false;
        }
    }
    *channel = (uint8_t)ch;
    return true;
}

bool ate_rf_tx_args(const ate_request_t *q, ate_reply_t *r, ate_rf_tx_args_t *args)
{
    ate_rf_tx_args_t a = {0};
    uint32_t count;
    uint32_t power;
    if (!mode_and_channel(q, r, &a.kind, &a.channel) ||
        !ate_arg_uint(q, r, 2, "count", 1, ATE_RF_MAX_COUNT, &count)) {
        return false;
    }
    const bool ble = a.kind == ATE_RF_KIND_BLE;
    if (!ate_option_uint(q, r, "interval_us",
                         ble ? ATE_RF_BLE_INTERVAL_DEFAULT_US : ATE_RF_WIFI_INTERVAL_DEFAULT_US,
                         ble ? ATE_RF_BLE_INTERVAL_MIN_US : ATE_RF_INTERVAL_MIN_US,
                         ATE_RF_INTERVAL_MAX_US, &a.interval_us) ||
        !ate_option_uint(q, r, "power", ATE_RF_POWER_MAX_DBM, ATE_RF_POWER_MIN_DBM,
                         ATE_RF_POWER_MAX_DBM, &power)) {
        return false;
    }
    a.count = (uint16_t)count;
    a.power_dbm = (uint8_t)power;
    *args = a;
    return true;
}

bool ate_rf_rx_args(const ate_request_t *q, ate_reply_t *r, ate_rf_rx_args_t *args)
{
    ate_rf_rx_args_t a = {0};
    if (!mode_and_channel(q, r, &a.kind, &a.channel)) {
        return false;
    }
    const char *from = ate_option(q, "from");
    if (from != NULL) {
        if (!ate_rf_parse_mac(from, a.from)) {
            ate_reply_fail(r, ATE_EARG, "from: want a MAC aa:bb:cc:dd:ee:ff, got '%s'", from);
            return false;
        }
        a.from_given = true;
    }
    *args = a;
    return true;
}

bool ate_rf_role_args(const ate_request_t *q, ate_reply_t *r, bool *set, ate_rf_role_t *role)
{
    if (q->argc == 0) {
        *set = false;
        return true;
    }
    size_t choice;
    if (!ate_arg_choice(q, r, 0, "role", "dut|golden", &choice)) {
        return false;
    }
    *set = true;
    *role = choice == 1 ? ATE_RF_ROLE_GOLDEN : ATE_RF_ROLE_DUT;
    return true;
}
