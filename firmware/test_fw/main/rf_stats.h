/*
 * What a receiver made of an RF test (rf.rx.start .. rf.rx.stop; PROTOCOL.md, "RF test"):
 * distinct sequence numbers, their mean RSSI, and the sender's clock offset in ppm.
 *
 * Pure C (libc and math only), compiled by test/host. Owns the arithmetic; rf.c owns the
 * radios and feeds this from one task only (it is not safe to call concurrently).
 *
 * The clock offset is the slope of a least-squares line through (receive time, sender
 * time) pairs: a sender whose crystal runs fast by p ppm stamps (1 + p*1e-6) us for each
 * us of the receiver's. Both timestamp series are u32 microseconds that wrap every
 * 71.6 minutes; each is unwrapped against its previous sample (a gap below 2^31 us, 35
 * minutes, which any test of at most 10000 frames 100 ms apart stays well inside).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"
#include "rf_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    ATE_RF_ADD_COUNTED,   /* a new sequence number */
    ATE_RF_ADD_DUPLICATE, /* seen before: ignored (not in rssi or cfo either) */
    ATE_RF_ADD_INVALID,   /* seq >= count, count outside 1..ATE_RF_MAX_COUNT: ignored */
} ate_rf_add_t;

typedef struct {
    uint8_t seen[(ATE_RF_MAX_COUNT + 7u) / 8u];
    uint32_t frames;
    int64_t rssi_sum; /* dBm */

    /* Unwrapped timestamps relative to the first counted frame, and a running (Welford)
     * least-squares fit of d = sender - receiver against the receiver's time x. Fitting
     * the difference keeps the numbers small; the slope of d is the offset itself. */
    uint32_t last_tx_us;
    uint32_t last_rx_us;
    int64_t tx_us; /* unwrapped, from the first frame */
    int64_t rx_us;
    double mean_x;
    double mean_d;
    double co_xd; /* sum of (x - mean_x)(d - mean_d) */
    double m2_x;  /* sum of (x - mean_x)^2 */
} ate_rf_stats_t;

void ate_rf_stats_reset(ate_rf_stats_t *stats);

ate_rf_add_t ate_rf_stats_add(ate_rf_stats_t *stats, uint16_t seq, uint16_t count,
                              int32_t rssi_dbm, uint32_t sender_us, uint32_t receiver_us);

/* Mean RSSI in 0.1 dBm, rounded half away from zero. False with no frames. */
bool ate_rf_stats_rssi_x10(const ate_rf_stats_t *stats, int32_t *rssi_dbm_x10);

/* The sender's clock offset in 0.01 ppm (positive: the sender runs fast), rounded. False
 * with fewer than 3 frames, when all receive times are equal (no slope), or when the fit
 * is beyond +-1,000,000 ppm, which no crystal is (a sender that rebooted mid-test). */
bool ate_rf_stats_cfo_x100(const ate_rf_stats_t *stats, int32_t *cfo_ppm_x100);

/* The rf.rx.stop reply fields: "frames=<n>", then " rssi=<x.x>" when n > 0, then
 * " cfo=<x.xx>" when the offset is defined. */
void ate_rf_stats_reply(const ate_rf_stats_t *stats, ate_reply_t *reply);

#ifdef __cplusplus
}
#endif
