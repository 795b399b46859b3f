/*
 * Host unit test for the portable RF test code: main/rf_frame.c (the payload and its
 * Wi-Fi and BLE carriers), main/rf_stats.c (distinct frames, mean RSSI, the clock-offset
 * fit) and main/rf_args.c (the rf.* argument rules), with plain gcc.
 *
 *     make -C firmware/test_fw/test/host
 *
 * Randomness is a fixed-seed xorshift, so every run sees the same numbers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "rf_args.h"
#include "rf_frame.h"
#include "rf_stats.h"

#include "check.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15u;

static uint32_t rng_u32(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 32);
}

/* Uniform in [-1, 1]. */
static double rng_unit(void) { return (double)rng_u32() / 2147483647.5 - 1.0; }

static const uint8_t k_mac[6] = {0x24, 0x0a, 0xc4, 0x00, 0x00, 0x01};

static ate_rf_frame_t frame_of(uint8_t kind, uint16_t seq, uint16_t count, uint32_t ts)
{
    ate_rf_frame_t f;
    f.kind = kind;
    memcpy(f.mac, k_mac, 6);
    f.seq = seq;
    f.count = count;
    f.timestamp_us = ts;
    return f;
}

/* ---- the payload ------------------------------------------------------------------------------ */

static void test_payload(void)
{
    g_context = "payload";
    uint8_t buf[64];
    const ate_rf_frame_t f = frame_of(ATE_RF_KIND_WIFI, 0x1234, 10000, 0xA1B2C3D4u);
    CHECK(ate_rf_payload_encode(&f, buf, sizeof(buf)) == ATE_RF_PAYLOAD_LEN);
    static const uint8_t want[ATE_RF_PAYLOAD_LEN] = {
        'A', 'T', 'E', '1', 1, 0x24, 0x0a, 0xc4, 0x00, 0x00, 0x01, /* magic, kind, MAC */
        0x34, 0x12, 0x10, 0x27,                                   /* seq, count 10000 */
        0xD4, 0xC3, 0xB2, 0xA1};                                  /* timestamp */
    CHECK(memcmp(buf, want, sizeof(want)) == 0);

    ate_rf_frame_t got;
    CHECK(ate_rf_payload_decode(buf, ATE_RF_PAYLOAD_LEN, &got));
    CHECK(got.kind == 1 && got.seq == 0x1234 && got.count == 10000 &&
          got.timestamp_us == 0xA1B2C3D4u && memcmp(got.mac, k_mac, 6) == 0);
    /* Trailing bytes (an FCS) are not looked at. */
    CHECK(ate_rf_payload_decode(buf, ATE_RF_PAYLOAD_LEN + 4, &got));

    /* Short, garbled, and out-of-rule frames are not ours. */
    for (size_t len = 0; len < ATE_RF_PAYLOAD_LEN; len++) {
        CHECK(!ate_rf_payload_decode(buf, len, &got));
    }
    CHECK(!ate_rf_payload_decode(NULL, 40, &got));
    for (size_t i = 0; i < 5; i++) { /* every magic byte and the kind */
        uint8_t bad[ATE_RF_PAYLOAD_LEN];
        memcpy(bad, buf, sizeof(bad));
        bad[i] ^= 0x40;
        CHECK(!ate_rf_payload_decode(bad, sizeof(bad), &got));
    }
    uint8_t bad[ATE_RF_PAYLOAD_LEN];
    memcpy(bad, buf, sizeof(bad));
    bad[4] = 3; /* unknown kind */
    CHECK(!ate_rf_payload_decode(bad, sizeof(bad), &got));
    bad[4] = 0;
    CHECK(!ate_rf_payload_decode(bad, sizeof(bad), &got));
    memcpy(bad, buf, sizeof(bad));
    bad[13] = 0x11; /* count 10001 */
    CHECK(!ate_rf_payload_decode(bad, sizeof(bad), &got));
    bad[13] = 0;
    bad[14] = 0; /* count 0 */
    CHECK(!ate_rf_payload_decode(bad, sizeof(bad), &got));
    memcpy(bad, buf, sizeof(bad));
    bad[11] = 0x10; /* seq 10000 == count: out of range */
    bad[12] = 0x27;
    CHECK(!ate_rf_payload_decode(bad, sizeof(bad), &got));
    bad[11] = 0x0F; /* seq 9999: the last one */
    CHECK(ate_rf_payload_decode(bad, sizeof(bad), &got) && got.seq == 9999);

    /* The encoder refuses what the decoder would drop, and a short buffer. */
    ate_rf_frame_t e = frame_of(ATE_RF_KIND_WIFI, 5, 5, 0);
    CHECK(ate_rf_payload_encode(&e, buf, sizeof(buf)) == 0);
    e = frame_of(ATE_RF_KIND_WIFI, 0, 1, 0);
    CHECK(ate_rf_payload_encode(&e, buf, ATE_RF_PAYLOAD_LEN - 1) == 0);
    e.kind = 7;
    CHECK(ate_rf_payload_encode(&e, buf, sizeof(buf)) == 0);

    /* Random bytes: never a crash; a success only when the rules hold. */
    for (int i = 0; i < 20000; i++) {
        uint8_t noise[ATE_RF_PAYLOAD_LEN];
        for (size_t k = 0; k < sizeof(noise); k++) {
            noise[k] = (uint8_t)rng_u32();
        }
        if (i % 2 == 0) {
            memcpy(noise, ATE_RF_MAGIC, 4); /* get past the magic half the time */
        }
        if (ate_rf_payload_decode(noise, sizeof(noise), &got)) {
            CHECK(got.seq < got.count && got.count <= ATE_RF_MAX_COUNT &&
                  (got.kind == 1 || got.kind == 2));
        }
    }
}

static void test_wifi_frame(void)
{
    g_context = "wifi frame";
    uint8_t buf[80];
    const ate_rf_frame_t f = frame_of(ATE_RF_KIND_WIFI, 7, 100, 123456u);
    const size_t n = ate_rf_wifi_encode(&f, buf, sizeof(buf));
    CHECK(n == ATE_RF_WIFI_FRAME_LEN && n == 43);
    CHECK(buf[0] == 0x08 && buf[1] == 0x00);
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK(memcmp(buf + 4, bcast, 6) == 0 && memcmp(buf + 10, k_mac, 6) == 0);

    ate_rf_frame_t got;
    CHECK(ate_rf_wifi_decode(buf, n, &got) && got.seq == 7 && got.timestamp_us == 123456u);
    /* With the FCS the radio appends, and with the retry bit set. */
    CHECK(ate_rf_wifi_decode(buf, n + 4, &got));
    buf[1] = 0x08;
    CHECK(ate_rf_wifi_decode(buf, n, &got));
    buf[1] = 0x01; /* to DS: not ours */
    CHECK(!ate_rf_wifi_decode(buf, n, &got));
    buf[1] = 0x00;
    buf[0] = 0x88; /* QoS data */
    CHECK(!ate_rf_wifi_decode(buf, n, &got));
    buf[0] = 0x08;
    CHECK(!ate_rf_wifi_decode(buf, n - 1, &got)); /* short */
    buf[12] ^= 1; /* addr2 is not looked at: the payload names the sender */
    CHECK(ate_rf_wifi_decode(buf, n, &got) && memcmp(got.mac, k_mac, 6) == 0);
    buf[ATE_RF_WIFI_HEADER_LEN] = 'B'; /* but the payload's magic is */
    CHECK(!ate_rf_wifi_decode(buf, n, &got));
    buf[ATE_RF_WIFI_HEADER_LEN] = 'A';
    CHECK(ate_rf_wifi_decode(buf, n, &got));

    /* A BLE payload inside a Wi-Fi frame is not a Wi-Fi test frame, and the encoder only
     * carries its own kind. */
    ate_rf_frame_t b = frame_of(ATE_RF_KIND_BLE, 0, 1, 0);
    CHECK(ate_rf_wifi_encode(&b, buf, sizeof(buf)) == 0);
    buf[ATE_RF_WIFI_HEADER_LEN + 4] = ATE_RF_KIND_BLE;
    CHECK(!ate_rf_wifi_decode(buf, n, &got));
}

static void test_ble_adv(void)
{
    g_context = "ble adv";
    uint8_t adv[31];
    const ate_rf_frame_t f = frame_of(ATE_RF_KIND_BLE, 3, 50, 99u);
    const size_t n = ate_rf_ble_encode(&f, adv, sizeof(adv));
    CHECK(n == ATE_RF_BLE_ADV_LEN && n == 23);
    CHECK(adv[0] == 22 && adv[1] == 0xFF && adv[2] == 0xE5 && adv[3] == 0x02);
    ate_rf_frame_t got;
    CHECK(ate_rf_ble_decode(adv, n, &got) && got.seq == 3 && got.kind == ATE_RF_KIND_BLE);

    /* After a flags structure, as other advertisers send. */
    uint8_t two[31] = {2, 0x01, 0x06};
    memcpy(two + 3, adv, n);
    CHECK(ate_rf_ble_decode(two, n + 3, &got) && got.seq == 3);
    /* Zero padding after the data ends the walk. */
    memset(two + 3 + n, 0, sizeof(two) - 3 - n);
    CHECK(ate_rf_ble_decode(two, sizeof(two), &got));
    /* A structure running past the end, another company, too long a buffer, short data. */
    CHECK(!ate_rf_ble_decode(adv, n - 1, &got));
    adv[2] = 0x4C; /* Apple */
    CHECK(!ate_rf_ble_decode(adv, n, &got));
    adv[2] = 0xE5;
    uint8_t big[40] = {0};
    memcpy(big, adv, n);
    CHECK(!ate_rf_ble_decode(big, sizeof(big), &got));
    uint8_t tiny[] = {3, 0xFF, 0xE5, 0x02};
    CHECK(!ate_rf_ble_decode(tiny, sizeof(tiny), &got));
    /* A Wi-Fi payload in an advertisement is not a BLE test frame. */
    adv[4 + 4] = ATE_RF_KIND_WIFI;
    CHECK(!ate_rf_ble_decode(adv, n, &got));

    /* Random advertising data: never a crash, never an out-of-bounds read (ASan). */
    for (int i = 0; i < 20000; i++) {
        uint8_t noise[31];
        const size_t len = rng_u32() % 32u;
        for (size_t k = 0; k < len; k++) {
            noise[k] = (uint8_t)rng_u32();
        }
        uint8_t *heap = malloc(len + 1); /* exact size: ASan sees any overread */
        memcpy(heap, noise, len);
        (void)ate_rf_ble_decode(heap, len, &got);
        (void)ate_rf_wifi_decode(heap, len, &got);
        free(heap);
    }
}

static void test_mac(void)
{
    g_context = "mac";
    uint8_t mac[6] = {0};
    CHECK(ate_rf_parse_mac("24:0a:c4:00:00:01", mac) && memcmp(mac, k_mac, 6) == 0);
    CHECK(ate_rf_parse_mac("24:0A:C4:00:00:01", mac) && memcmp(mac, k_mac, 6) == 0);
    const char *bad[] = {"", "24:0a:c4:00:00", "24:0a:c4:00:00:01:", "24-0a-c4-00-00-01",
                         "24:0a:c4:00:00:0g", "240ac4000001", " 24:0a:c4:00:00:01",
                         "24:0a:c4:00:00:1", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        CHECK(!ate_rf_parse_mac(bad[i], mac));
    }
    CHECK(!ate_rf_parse_mac(NULL, mac));
}

/* ---- the accumulator ------------------------------------------------------------------------ */

static char g_line[ATE_MAX_LINE + 1];

static const char *stop_reply(const ate_rf_stats_t *s)
{
    ate_reply_t r;
    ate_reply_init(&r, g_line, sizeof(g_line), 9);
    ate_rf_stats_reply(s, &r);
    ate_reply_finish(&r);
    return g_line;
}

static ate_rf_stats_t g_stats;

static void test_stats_counting(void)
{
    g_context = "stats counting";
    ate_rf_stats_t *s = &g_stats;
    ate_rf_stats_reset(s);
    CHECK_PREFIX(stop_reply(s), "@9 OK frames=0*");

    CHECK(ate_rf_stats_add(s, 0, 10, -40, 1000, 5000) == ATE_RF_ADD_COUNTED);
    CHECK_PREFIX(stop_reply(s), "@9 OK frames=1 rssi=-40.0*");
    /* A duplicate changes nothing, not even the RSSI. */
    CHECK(ate_rf_stats_add(s, 0, 10, -90, 1000, 5000) == ATE_RF_ADD_DUPLICATE);
    CHECK(ate_rf_stats_add(s, 1, 10, -41, 2000, 6000) == ATE_RF_ADD_COUNTED);
    CHECK_PREFIX(stop_reply(s), "@9 OK frames=2 rssi=-40.5*"); /* fewer than 3: no cfo */
    /* Out-of-range seq and count are ignored. */
    CHECK(ate_rf_stats_add(s, 10, 10, -41, 3000, 7000) == ATE_RF_ADD_INVALID);
    CHECK(ate_rf_stats_add(s, 0, 0, -41, 3000, 7000) == ATE_RF_ADD_INVALID);
    CHECK(ate_rf_stats_add(s, 10000, 10001, -41, 3000, 7000) == ATE_RF_ADD_INVALID);
    CHECK(s->frames == 2);
    CHECK(ate_rf_stats_add(s, 2, 10, -42, 3000, 7000) == ATE_RF_ADD_COUNTED);
    /* Exact timestamps one ms apart on both clocks: zero offset. */
    CHECK_PREFIX(stop_reply(s), "@9 OK frames=3 rssi=-41.0 cfo=0.00*");

    /* Every seq of a 10000-frame test, each twice: 10000 distinct, the bitmap's edges. */
    ate_rf_stats_reset(s);
    for (uint32_t round = 0; round < 2; round++) {
        for (uint32_t seq = 0; seq < ATE_RF_MAX_COUNT; seq++) {
            const ate_rf_add_t got = ate_rf_stats_add(s, (uint16_t)seq, ATE_RF_MAX_COUNT, -50,
                                                      seq * 1000u, seq * 1000u);
            CHECK(got == (round == 0 ? ATE_RF_ADD_COUNTED : ATE_RF_ADD_DUPLICATE));
        }
    }
    CHECK(s->frames == ATE_RF_MAX_COUNT);

    /* Mean RSSI rounds half away from zero: -40, -41 -> -40.5; -40,-40,-41 -> -40.3. */
    ate_rf_stats_reset(s);
    ate_rf_stats_add(s, 0, 3, -40, 0, 0);
    ate_rf_stats_add(s, 1, 3, -40, 0, 0);
    ate_rf_stats_add(s, 2, 3, -41, 0, 0);
    int32_t rssi = 0;
    CHECK(ate_rf_stats_rssi_x10(s, &rssi) && rssi == -403);
    /* All receive times equal: no slope, so no cfo (rather than a division by zero). */
    int32_t cfo = 0;
    CHECK(!ate_rf_stats_cfo_x100(s, &cfo));
    CHECK_PREFIX(stop_reply(s), "@9 OK frames=3 rssi=-40.3*");
    ate_rf_stats_reset(s);
    ate_rf_stats_add(s, 0, 2, -1, 0, 0);
    ate_rf_stats_add(s, 1, 2, 0, 0, 0);
    CHECK_PREFIX(stop_reply(s), "@9 OK frames=2 rssi=-0.5*");
}

/* Feed a synthetic test: `n` frames sent every `interval` us of the receiver's clock from
 * receiver time rx0 and sender time tx0, the sender's clock fast by `ppm`, the receive time
 * of each frame off by up to +-jitter us, every `drop`-th frame lost, every `dup`-th sent
 * twice. Returns the estimate in ppm (NAN when none). */
static double fit(double ppm, uint32_t n, uint32_t interval, uint32_t tx0, uint32_t rx0,
                  double jitter, uint32_t drop, uint32_t dup)
{
    ate_rf_stats_t *s = &g_stats;
    ate_rf_stats_reset(s);
    for (uint32_t seq = 0; seq < n; seq++) {
        if (drop != 0 && seq % drop == drop - 1) {
            continue;
        }
        const double t = (double)seq * interval; /* true receiver-clock time of sending */
        const uint32_t tx = tx0 + (uint32_t)llround(t * (1.0 + ppm * 1e-6));
        const uint32_t rx = rx0 + (uint32_t)llround(t + 300.0 + jitter * rng_unit());
        const unsigned copies = dup != 0 && seq % dup == 0 ? 2 : 1;
        for (unsigned c = 0; c < copies; c++) {
            ate_rf_stats_add(s, (uint16_t)seq, (uint16_t)n, -60, tx, rx);
        }
    }
    int32_t cfo;
    if (!ate_rf_stats_cfo_x100(s, &cfo)) {
        return NAN;
    }
    return cfo / 100.0;
}

static void test_stats_cfo(void)
{
    g_context = "cfo";
    /* Exact timestamps (but for their 1 us steps) over 100 s: recovered to the reply's
     * resolution. Over 0.1 s the steps alone would make about 1 ppm of noise. */
    CHECK(fabs(fit(12.5, 1000, 100000, 0, 0, 0.0, 0, 0) - 12.5) < 0.011);
    CHECK(fabs(fit(-37.25, 1000, 100000, 777, 5, 0.0, 0, 0) + 37.25) < 0.011);

    /* The brief's case: a known offset within 0.1 ppm from timestamps with jitter, both
     * clocks wrapping mid-test, with losses and duplicates. 10000 frames 1 ms apart and
     * +-5 us of jitter give a standard error of about 0.01 ppm (PROTOCOL.md: resolution). */
    for (int trial = 0; trial < 5; trial++) {
        const double ppm = 40.0 * rng_unit();
        const double got = fit(ppm, 10000, 1000, 0xFFFFFFFFu - 4000000u, 0xFFFFFFFFu - 123u, 5.0,
                               97, 13);
        CHECK(fabs(got - ppm) < 0.1);
    }
    /* A slow sender: negative; a fast one: positive. */
    CHECK(fit(-20.0, 3000, 1000, 0, 0, 1.0, 0, 0) < -19.9);
    CHECK(fit(20.0, 3000, 1000, 0, 0, 1.0, 0, 0) > 19.9);

    /* Wrap of the sender's clock only, then of the receiver's only, at the slowest pace
     * (100 ms apart, 1000 s in all). */
    CHECK(fabs(fit(3.0, 10000, 100000, 0xF0000000u, 0, 0.0, 0, 0) - 3.0) < 0.011);
    CHECK(fabs(fit(3.0, 10000, 100000, 0, 0xF0000000u, 0.0, 0, 0) - 3.0) < 0.011);

    /* Three frames is the least for a cfo. */
    CHECK(isnan(fit(10.0, 2, 1000, 0, 0, 0.0, 0, 0)));
    CHECK(!isnan(fit(10.0, 3, 1000, 0, 0, 0.0, 0, 0)));

    /* A sender that rebooted mid-test (its clock jumped back): beyond any crystal, so no cfo
     * rather than a number that would be judged. */
    ate_rf_stats_t *s = &g_stats;
    ate_rf_stats_reset(s);
    ate_rf_stats_add(s, 0, 4, -50, 900000000u, 0);
    ate_rf_stats_add(s, 1, 4, -50, 900001000u, 1000);
    ate_rf_stats_add(s, 2, 4, -50, 10u, 2000);
    ate_rf_stats_add(s, 3, 4, -50, 1010u, 3000);
    int32_t cfo;
    CHECK(!ate_rf_stats_cfo_x100(s, &cfo));
    CHECK_PREFIX(stop_reply(s), "@9 OK frames=4 rssi=-50.0*");
}

/* ---- arguments ---------------------------------------------------------------------------- */

static char g_work[ATE_MAX_LINE + 1];
static ate_request_t g_request;

/* Parse "!1 <line>" into g_request (the dispatcher's own parser). */
static const ate_request_t *request(const char *text)
{
    static char line[512];
    snprintf(line, sizeof(line), "!1 %s", text);
    ate_frame_t frame;
    const char *error = NULL;
    if (ate_frame_parse(line, strlen(line), &frame) != ATE_FRAME_OK ||
        ate_request_parse(&frame, g_work, sizeof(g_work), &g_request, &error) != ATE_OK) {
        fprintf(stderr, "cannot parse test request %s\n", text);
        exit(2);
    }
    return &g_request;
}

static ate_rf_tx_args_t g_tx;
static ate_rf_rx_args_t g_rx;

/* Run a validator; returns "OK" or the ERR line without its id and checksum. */
static const char *tx(const char *text)
{
    ate_reply_t r;
    ate_reply_init(&r, g_line, sizeof(g_line), 1);
    memset(&g_tx, 0xAA, sizeof(g_tx));
    const bool ok = ate_rf_tx_args(request(text), &r, &g_tx);
    ate_reply_finish(&r);
    CHECK(ok == !ate_reply_failed(&r));
    return g_line + 3; /* after "@1 " */
}

static const char *rx(const char *text)
{
    ate_reply_t r;
    ate_reply_init(&r, g_line, sizeof(g_line), 1);
    memset(&g_rx, 0xAA, sizeof(g_rx));
    const bool ok = ate_rf_rx_args(request(text), &r, &g_rx);
    ate_reply_finish(&r);
    CHECK(ok == !ate_reply_failed(&r));
    return g_line + 3;
}

static void test_args(void)
{
    g_context = "rf.tx args";
    CHECK_PREFIX(tx("rf.tx wifi 6 100"), "OK*");
    CHECK(g_tx.kind == ATE_RF_KIND_WIFI && g_tx.channel == 6 && g_tx.count == 100 &&
          g_tx.interval_us == 1000 && g_tx.power_dbm == 20);
    CHECK_PREFIX(tx("rf.tx ble 37 10"), "OK*");
    CHECK(g_tx.kind == ATE_RF_KIND_BLE && g_tx.channel == 37 && g_tx.interval_us == 20000);
    CHECK_PREFIX(tx("rf.tx wifi 14 10000 interval_us=500 power=2"), "OK*");
    CHECK(g_tx.channel == 14 && g_tx.count == 10000 && g_tx.interval_us == 500 &&
          g_tx.power_dbm == 2);
    CHECK_PREFIX(tx("rf.tx wifi 1 1 interval_us=100000"), "OK*");
    CHECK_PREFIX(tx("rf.tx ble 39 1 interval_us=100000 power=9"), "OK*");
    CHECK(g_tx.channel == 39 && g_tx.power_dbm == 9);

    const char *bad[] = {
        "rf.tx zigbee 6 100",   "rf.tx WIFI 6 100",      "rf.tx wifi 0 100",
        "rf.tx wifi 15 100",    "rf.tx wifi x 100",      "rf.tx ble 36 10",
        "rf.tx ble 40 10",      "rf.tx ble 6 10",        "rf.tx wifi 37 10",
        "rf.tx wifi 6 0",       "rf.tx wifi 6 10001",    "rf.tx wifi 6 -1",
        "rf.tx wifi 6 100 interval_us=499", "rf.tx wifi 6 100 interval_us=100001",
        "rf.tx ble 38 10 interval_us=19999", "rf.tx wifi 6 100 power=1",
        "rf.tx wifi 6 100 power=21", "rf.tx wifi 6 100 power=-3",
        "rf.tx wifi 6 100 power=12.5", "rf.tx wifi 6", "rf.tx", NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        g_context = bad[i];
        CHECK_PREFIX(tx(bad[i]), "ERR EARG ");
    }

    g_context = "rf.rx.start args";
    CHECK_PREFIX(rx("rf.rx.start wifi 11"), "OK*");
    CHECK(g_rx.kind == ATE_RF_KIND_WIFI && g_rx.channel == 11 && !g_rx.from_given);
    CHECK_PREFIX(rx("rf.rx.start ble 38 from=24:0A:c4:00:00:01"), "OK*");
    CHECK(g_rx.kind == ATE_RF_KIND_BLE && g_rx.from_given && memcmp(g_rx.from, k_mac, 6) == 0);
    const char *bad_rx[] = {"rf.rx.start wifi 0",        "rf.rx.start ble 1",
                            "rf.rx.start wifi 6 from=",  "rf.rx.start wifi 6 from=24:0a",
                            "rf.rx.start wifi 6 from=zz:0a:c4:00:00:01", "rf.rx.start", NULL};
    for (size_t i = 0; bad_rx[i] != NULL; i++) {
        g_context = bad_rx[i];
        CHECK_PREFIX(rx(bad_rx[i]), "ERR EARG ");
    }

    g_context = "rf.role args";
    bool set = true;
    ate_rf_role_t role = ATE_RF_ROLE_GOLDEN;
    ate_reply_t r;
    ate_reply_init(&r, g_line, sizeof(g_line), 1);
    CHECK(ate_rf_role_args(request("rf.role"), &r, &set, &role) && !set);
    CHECK(ate_rf_role_args(request("rf.role golden"), &r, &set, &role) && set &&
          role == ATE_RF_ROLE_GOLDEN);
    CHECK(ate_rf_role_args(request("rf.role dut"), &r, &set, &role) && set &&
          role == ATE_RF_ROLE_DUT);
    CHECK(!ate_rf_role_args(request("rf.role gold"), &r, &set, &role));
    ate_reply_finish(&r);
    CHECK_PREFIX(g_line, "@1 ERR EARG role: ");
    CHECK(strcmp(ate_rf_role_name(ATE_RF_ROLE_GOLDEN), "golden") == 0 &&
          strcmp(ate_rf_role_name(ATE_RF_ROLE_DUT), "dut") == 0);
    CHECK(strcmp(ate_code_name(ATE_EPERM), "EPERM") == 0);
}

int main(void)
{
    test_payload();
    test_wifi_frame();
    test_ble_adv();
    test_mac();
    test_stats_counting();
    test_stats_cfo();
    test_args();
    printf("rf: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
