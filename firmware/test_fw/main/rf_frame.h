/*
 * The RF test frame (PROTOCOL.md, "RF test frames"): the 19-byte ate payload, and the two
 * ways it travels -- the body of a raw 802.11 data frame (Wi-Fi) and the manufacturer data
 * of a legacy BLE advertisement (company 0x02E5, Espressif).
 *
 * Pure C: no ESP-IDF headers, so test/host compiles it with gcc. Owns the byte layout only;
 * counting what was received is rf_stats.h's, the radios are rf.c's.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATE_RF_MAGIC "ATE1"
/* magic 4, kind 1, MAC 6, seq u16, count u16, timestamp u32 (little endian) */
#define ATE_RF_PAYLOAD_LEN 19u
/* The largest count a test may have (rf.tx count 1..10000); seq is 0..count-1. */
#define ATE_RF_MAX_COUNT 10000u

typedef enum {
    ATE_RF_KIND_WIFI = 1,
    ATE_RF_KIND_BLE = 2,
} ate_rf_kind_t;

typedef struct {
    uint8_t kind;          /* ate_rf_kind_t */
    uint8_t mac[6];        /* the sender's factory MAC */
    uint16_t seq;          /* 0..count-1 */
    uint16_t count;        /* 1..ATE_RF_MAX_COUNT */
    uint32_t timestamp_us; /* the sender's esp_timer, microseconds, wrapping */
} ate_rf_frame_t;

/* Writes ATE_RF_PAYLOAD_LEN bytes; returns that, or 0 if `cap` is too small or the frame
 * breaks the rules ate_rf_payload_decode() checks (nothing is sent that a receiver drops). */
size_t ate_rf_payload_encode(const ate_rf_frame_t *frame, uint8_t *out, size_t cap);

/* Reads the first ATE_RF_PAYLOAD_LEN bytes of `data` (later bytes, e.g. an FCS, are not
 * looked at). False for a short buffer, a wrong magic, an unknown kind, a count outside
 * 1..ATE_RF_MAX_COUNT or a seq >= count: anything else on the air is not ours. */
bool ate_rf_payload_decode(const uint8_t *data, size_t len, ate_rf_frame_t *frame);

/* ---- Wi-Fi: a non-QoS 802.11 data frame, broadcast, the payload as its body ------------- */

#define ATE_RF_WIFI_HEADER_LEN 24u
#define ATE_RF_WIFI_FRAME_LEN (ATE_RF_WIFI_HEADER_LEN + ATE_RF_PAYLOAD_LEN)

/* Frame control 0x0008 (data, to/from DS 0), addr1 broadcast, addr2 = addr3 = the sender's
 * MAC, sequence control 0 (the driver numbers frames itself). Returns the length or 0. */
size_t ate_rf_wifi_encode(const ate_rf_frame_t *frame, uint8_t *out, size_t cap);

/* A received 802.11 frame as the promiscuous callback sees it (the radio may append the
 * 4-byte FCS). True only for a data frame with to/from DS 0 whose body is an ate payload of
 * kind wifi. The sender is the payload's MAC: addr2 is not compared with it, since a driver
 * may put the interface MAC there, which a custom base MAC makes differ from the factory MAC
 * the host names in from=. */
bool ate_rf_wifi_decode(const uint8_t *data, size_t len, ate_rf_frame_t *frame);

/* ---- BLE: advertising data with one manufacturer-specific AD structure ------------------- */

#define ATE_RF_BLE_COMPANY_ID 0x02E5u
/* length byte, type 0xFF, company id (2, little endian), payload */
#define ATE_RF_BLE_ADV_LEN (4u + ATE_RF_PAYLOAD_LEN)

size_t ate_rf_ble_encode(const ate_rf_frame_t *frame, uint8_t *out, size_t cap);

/* Walks the AD structures of received advertising data (at most 31 bytes; a structure
 * running past the end ends the walk) and decodes the first manufacturer-specific one with
 * company 0x02E5 holding an ate payload of kind ble. */
bool ate_rf_ble_decode(const uint8_t *data, size_t len, ate_rf_frame_t *frame);

/* ---- MAC text ------------------------------------------------------------------------------ */

/* "aa:bb:cc:dd:ee:ff" exactly (either case); false for anything else. */
bool ate_rf_parse_mac(const char *text, uint8_t mac[6]);

#ifdef __cplusplus
}
#endif
