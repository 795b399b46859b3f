/*
 * The receive accumulator (see rf_stats.h). Imports protocol.h for the reply writer only.
 */
#include "rf_stats.h"

#include <math.h>
#include <string.h>

#define MIN_FRAMES_FOR_CFO 3u
#define CFO_LIMIT_PPM 1000000.0

void ate_rf_stats_reset(ate_rf_stats_t *stats) { memset(stats, 0, sizeof(*stats)); }

ate_rf_add_t ate_rf_stats_add(ate_rf_stats_t *stats, uint16_t seq, uint16_t count,
                              int32_t rssi_dbm, uint32_t sender_us, uint32_t receiver_us)
{
    if (count == 0 || count > ATE_RF_MAX_COUNT || seq >= count) {
        return ATE_RF_ADD_INVALID;
    }
    const uint8_t bit = (uint8_t)(1u << (seq % 8u));
    if (stats->seen[seq / 8u] & bit) {
        return ATE_RF_ADD_DUPLICATE;
    }
    stats->seen[seq / 8u] |= bit;

    if (stats->frames == 0) {
        stats->tx_us = 0;
        stats->rx_us = 0;
    } else {
        /* The signed 32-bit difference is the true step across a wrap, and negative for a
         * frame stamped before the previous one (reordered), which is fine for the fit. */
        stats->tx_us += (int32_t)(sender_us - stats->last_tx_us);
        stats->rx_us += (int32_t)(receiver_us - stats->last_rx_us);
    }
    stats->last_tx_us = sender_us;
    stats->last_rx_us = receiver_us;
    stats->frames++;
    stats->rssi_sum += rssi_dbm;

    const double x = (double)stats->rx_us;
    const double d = (double)(stats->tx_us - stats->rx_us);
    const double n = (double)stats->frames;
    const double dx = x - stats->mean_x;
    stats->mean_x += dx / n;
    stats->mean_d += (d - stats->mean_d) / n;
    stats->co_xd += dx * (d - stats->mean_d);
    stats->m2_x += dx * (x - stats->mean_x);
    return ATE_RF_ADD_COUNTED;
}

bool ate_rf_stats_rssi_x10(const ate_rf_stats_t *stats, int32_t *rssi_dbm_x10)
{
    if (stats->frames == 0) {
        return false;
    }
    const int64_t n = stats->frames;
    const int64_t tenfold = stats->rssi_sum * 10;
    /* C division truncates toward zero; add half the divisor away from zero first. */
    const int64_t rounded = tenfold >= 0 ? (tenfold + n / 2) / n : (tenfold - n / 2) / n;
    *rssi_dbm_x10 = (int32_t)rounded;
    return true;
}

bool ate_rf_stats_cfo_x100(const ate_rf_stats_t *stats, int32_t *cfo_ppm_x100)
{
    if (stats->frames < MIN_FRAMES_FOR_CFO || !(stats->m2_x > 0.0)) {
        return false;
    }
    const double ppm = stats->co_xd / stats->m2_x * 1e6;
    if (!isfinite(ppm) || fabs(ppm) >= CFO_LIMIT_PPM) {
        return false;
    }
    *cfo_ppm_x100 = (int32_t)lround(ppm * 100.0);
    return true;
}

void ate_rf_stats_reply(const ate_rf_stats_t *stats, ate_reply_t *reply)
{
    ate_reply_uint(reply, "frames", stats->frames);
    int32_t rssi;
    if (ate_rf_stats_rssi_x10(stats, &rssi)) {
        ate_reply_fixed(reply, "rssi", rssi, 1);
    }
    int32_t cfo;
    if (ate_rf_stats_cfo_x100(stats, &cfo)) {
        ate_reply_fixed(reply, "cfo", cfo, 2);
    }
}
