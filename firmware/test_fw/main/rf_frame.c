/*
 * The RF test frame's bytes (see rf_frame.h). Imports libc and protocol.h (its hex digits).
 */
#include "rf_frame.h"

#include "protocol.h"

#include <string.h>

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8u * i));
    }
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static bool frame_valid(const ate_rf_frame_t *f)
{
    return (f->kind == ATE_RF_KIND_WIFI || f->kind == ATE_RF_KIND_BLE) && f->count >= 1 &&
           f->count <= ATE_RF_MAX_COUNT && f->seq < f->count;
}

size_t ate_rf_payload_encode(const ate_rf_frame_t *frame, uint8_t *out, size_t cap)
{
    if (cap < ATE_RF_PAYLOAD_LEN || !frame_valid(frame)) {
        return 0;
    }
    memcpy(out, ATE_RF_MAGIC, 4);
    out[4] = frame->kind;
    memcpy(out + 5, frame->mac, 6);
    put_u16(out + 11, frame->seq);
    put_u16(out + 13, frame->count);
    put_u32(out + 15, frame->timestamp_us);
    return ATE_RF_PAYLOAD_LEN;
}

bool ate_rf_payload_decode(const uint8_t *data, size_t len, ate_rf_frame_t *frame)
{
    if (data == NULL || len < ATE_RF_PAYLOAD_LEN || memcmp(data, ATE_RF_MAGIC, 4) != 0) {
        return false;
    }
    ate_rf_frame_t f;
    f.kind = data[4];
    memcpy(f.mac, data + 5, 6);
    f.seq = get_u16(data + 11);
    f.count = get_u16(data + 13);
    f.timestamp_us = get_u32(data + 15);
    if (!frame_valid(&f)) {
        return false;
    }
    *frame = f;
    return true;
}

/* ---- Wi-Fi ------------------------------------------------------------------------------------ */

/* Frame control, first byte: protocol 0, type 2 (data), subtype 0 (plain data). */
#define FC0_DATA 0x08u
/* Second byte: to/from DS, more fragments, retry, power, more data, protected, order.
 * Only the retry bit (0x08) may be set on what we accept: a retried frame is still ours. */
#define FC1_RETRY 0x08u

size_t ate_rf_wifi_encode(const ate_rf_frame_t *frame, uint8_t *out, size_t cap)
{
    if (cap < ATE_RF_WIFI_FRAME_LEN || frame->kind != ATE_RF_KIND_WIFI) {
        return 0;
    }
    memset(out, 0, ATE_RF_WIFI_HEADER_LEN);
    out[0] = FC0_DATA;
    memset(out + 4, 0xFF, 6);       /* addr1: receiver, broadcast */
    memcpy(out + 10, frame->mac, 6); /* addr2: transmitter (the receiver trusts the payload's) */
    memcpy(out + 16, frame->mac, 6); /* addr3: BSSID, no network: the sender itself */
    if (ate_rf_payload_encode(frame, out + ATE_RF_WIFI_HEADER_LEN,
                              cap - ATE_RF_WIFI_HEADER_LEN) == 0) {
        return 0;
    }
    return ATE_RF_WIFI_FRAME_LEN;
}

bool ate_rf_wifi_decode(const uint8_t *data, size_t len, ate_rf_frame_t *frame)
{
    if (data == NULL || len < ATE_RF_WIFI_FRAME_LEN || data[0] != FC0_DATA ||
        (data[1] & (uint8_t)~FC1_RETRY) != 0) {
        return false;
    }
    ate_rf_frame_t f;
    if (!ate_rf_payload_decode(data + ATE_RF_WIFI_HEADER_LEN, len - ATE_RF_WIFI_HEADER_LEN, &f) ||
        f.kind != ATE_RF_KIND_WIFI) {
        return false;
    }
    *frame = f;
    return true;
}

/* ---- BLE -------------------------------------------------------------------------------------- */

#define AD_MANUFACTURER 0xFFu
#define BLE_ADV_DATA_MAX 31u

size_t ate_rf_ble_encode(const ate_rf_frame_t *frame, uint8_t *out, size_t cap)
{
    if (cap < ATE_RF_BLE_ADV_LEN || frame->kind != ATE_RF_KIND_BLE) {
        return 0;
    }
    out[0] = (uint8_t)(ATE_RF_BLE_ADV_LEN - 1u); /* the length byte counts what follows it */
    out[1] = AD_MANUFACTURER;
    put_u16(out + 2, ATE_RF_BLE_COMPANY_ID);
    if (ate_rf_payload_encode(frame, out + 4, cap - 4) == 0) {
        return 0;
    }
    return ATE_RF_BLE_ADV_LEN;
}

bool ate_rf_ble_decode(const uint8_t *data, size_t len, ate_rf_frame_t *frame)
{
    if (data == NULL || len > BLE_ADV_DATA_MAX) {
        return false;
    }
    size_t at = 0;
    while (at < len) {
        const size_t field = data[at]; /* bytes after the length byte */
        if (field == 0) {
            break; /* early end of significant data (Core spec, vol 3 part C, 11) */
        }
        if (at + 1 + field > len) {
            return false; /* runs past the end: garbled */
        }
        const uint8_t *ad = data + at + 1;
        if (ad[0] == AD_MANUFACTURER && field >= 3 && get_u16(ad + 1) == ATE_RF_BLE_COMPANY_ID) {
            ate_rf_frame_t f;
            if (ate_rf_payload_decode(ad + 3, field - 3, &f) && f.kind == ATE_RF_KIND_BLE) {
                *frame = f;
                return true;
            }
            return false;
        }
        at += 1 + field;
    }
    return false;
}

/* ---- MAC --------------------------------------------------------------------------------------- */

bool ate_rf_parse_mac(const char *text, uint8_t mac[6])
{
    if (text == NULL || strlen(text) != 17) {
        return false;
    }
    uint8_t out[6];
    for (unsigned i = 0; i < 6; i++) {
        const char *p = text + 3 * i;
        const int hi = ate_hex_value(p[0]);
        const int lo = ate_hex_value(p[1]);
        if (hi < 0 || lo < 0 || (i < 5 && p[2] != ':')) {
            return false;
        }
        out[i] = (uint8_t)(hi * 16 + lo);
    }
    memcpy(mac, out, 6);
    return true;
}
