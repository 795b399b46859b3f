/*
 * prov.key, prov.csr, prov.sign (see prov.h, PROTOCOL.md "Provisioning", PROVISIONING.md).
 *
 * The dev_key record, at the start of the dev_key partition:
 *
 *   "ATEK" | u8 version = 1 | u8 curve = 1 (P-256) | u16 LE n = 32 | d (n bytes, big-endian)
 *          | SHA-256 of everything before it (32 bytes)
 *
 * Anything else there (erased flash, a write cut short by a power loss, a bad hash, a scalar
 * out of range) means "no key". prov.key writes the record only when there is none: erase,
 * write, read back; it answers only after the key reads back. The key in use is always the
 * one parsed from what the partition holds, never a copy kept in RAM.
 *
 * Secrets: the scalar exists in RAM only inside one handler call, in buffers that are wiped
 * before the handler returns; nothing here logs or prints it.
 *
 * Randomness: a CTR_DRBG seeded once at boot (prov_init) from esp_fill_random() while the
 * SAR-ADC entropy source is on, before the ADC driver and Wi-Fi start. Without the radio
 * or that source the hardware RNG is only pseudo-random (ESP-IDF, "Random Number
 * Generation"), so later seeding would not do. The DRBG's reseed interval (10000 requests)
 * is never reached by a provisioning run.
 */
#include "prov.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bootloader_random.h"
#include "esp_err.h"
#include "esp_log.h"
#include "esp_partition.h"
#include "esp_random.h"
#include "mbedtls/bignum.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/ecp.h"
#include "mbedtls/pk.h"
#include "mbedtls/platform_util.h"
#include "mbedtls/sha256.h"
#include "mbedtls/x509_csr.h"

static const char *TAG = "ate_prov";

/* ---- the partition and the record (partitions.csv, PROVISIONING.md) ------------------ */

#define DEV_KEY_LABEL "dev_key"
#define DEV_KEY_SUBTYPE 0x40

#define REC_MAGIC "ATEK"
#define REC_VERSION 1
#define REC_CURVE_P256 1
#define REC_HEADER 8  /* magic, version, curve, u16 length */
#define REC_SCALAR 32 /* P-256 private scalar, big-endian */
#define REC_HASH 32   /* SHA-256 */
#define REC_SIZE (REC_HEADER + REC_SCALAR + REC_HASH)

#define POINT_LEN 65 /* X9.62 uncompressed P-256 point: 04 | X | Y */

/* ---- prov.csr and prov.sign limits (the same as the host's) ---------------------------- */

#define SUBJECT_MAX 512 /* UTF-8 bytes of the whole subject text */
/* RFC 5280 bounds CN, O, OU and serialNumber at 64 characters; the host's CA counts a CN in
 * UTF-8 bytes, so every value is held to 64 bytes here (and far below mbedTLS's own cap). */
#define VALUE_MAX_BYTES 64
#define CSR_MAX 800 /* DER; the largest valid subject gives about 510 */
#define CHALLENGE_MIN 16
#define CHALLENGE_MAX 64

static const char k_proof_prefix[] = "ate-proof/1:"; /* signed before the challenge */

/* ---- randomness ------------------------------------------------------------------------ */

static mbedtls_ctr_drbg_context s_drbg;
static int s_drbg_status = -1; /* 0 once seeded; else the mbedTLS error (or -1: not yet) */

static int hw_entropy(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    esp_fill_random(out, len);
    return 0;
}

void prov_init(void)
{
    static const unsigned char personal[] = "ate-testfw prov";
    mbedtls_ctr_drbg_init(&s_drbg);
    bootloader_random_enable();
    s_drbg_status = mbedtls_ctr_drbg_seed(&s_drbg, hw_entropy, NULL, personal,
                                          sizeof(personal) - 1);
    bootloader_random_disable();
    if (s_drbg_status != 0) {
        ESP_LOGE(TAG, "random number generator: mbedtls -0x%04x; prov.* will answer EHW",
                 (unsigned)-s_drbg_status);
    }
}

static bool rng_ready(ate_reply_t *r)
{
    if (s_drbg_status != 0) {
        ate_reply_fail(r, ATE_EHW, "the random number generator did not start (mbedtls -0x%04x)",
                       (unsigned)-s_drbg_status);
        return false;
    }
    return true;
}

/* ---- the record ---------------------------------------------------------------------- */

static const esp_partition_t *dev_key_partition(ate_reply_t *r)
{
    const esp_partition_t *part = esp_partition_find_first(
        ESP_PARTITION_TYPE_DATA, (esp_partition_subtype_t)DEV_KEY_SUBTYPE, DEV_KEY_LABEL);
    if (part == NULL) {
        ate_reply_fail(r, ATE_EHW,
                       "no dev_key partition (data, 0x40) in this unit's partition table");
        return NULL;
    }
    if (part->size < REC_SIZE) {
        ate_reply_fail(r, ATE_EHW, "the dev_key partition is too small (%u bytes)",
                       (unsigned)part->size);
        return NULL;
    }
    return part;
}

static int record_encode(const uint8_t d[REC_SCALAR], uint8_t out[REC_SIZE])
{
    memcpy(out, REC_MAGIC, 4);
    out[4] = REC_VERSION;
    out[5] = REC_CURVE_P256;
    out[6] = REC_SCALAR; /* u16 little-endian */
    out[7] = 0;
    memcpy(out + REC_HEADER, d, REC_SCALAR);
    return mbedtls_sha256(out, REC_HEADER + REC_SCALAR, out + REC_HEADER + REC_SCALAR, 0);
}

/* The scalar of an intact record (its range is checked when the key is parsed). */
static bool record_decode(const uint8_t raw[REC_SIZE], uint8_t d[REC_SCALAR])
{
    if (memcmp(raw, REC_MAGIC, 4) != 0 || raw[4] != REC_VERSION || raw[5] != REC_CURVE_P256 ||
        raw[6] != REC_SCALAR || raw[7] != 0) {
        return false;
    }
    uint8_t hash[REC_HASH];
    if (mbedtls_sha256(raw, REC_HEADER + REC_SCALAR, hash, 0) != 0 ||
        memcmp(hash, raw + REC_HEADER + REC_SCALAR, REC_HASH) != 0) {
        return false;
    }
    memcpy(d, raw + REC_HEADER, REC_SCALAR);
    return true;
}

/* An SEC1 ECPrivateKey for `d` on prime256v1, without the optional public key: mbedTLS
 * derives it while parsing. Parsing (rather than filling an ecp_keypair) keeps to the pk
 * API, which works whether or not mbedTLS keeps EC keys in PSA. */
#define SEC1_LEN 51
static void sec1_der(const uint8_t d[REC_SCALAR], uint8_t out[SEC1_LEN])
{
    static const uint8_t head[] = {0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20};
    static const uint8_t tail[] = {0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                   0xce, 0x3d, 0x03, 0x01, 0x07};
    memcpy(out, head, sizeof(head));
    memcpy(out + sizeof(head), d, REC_SCALAR);
    memcpy(out + sizeof(head) + REC_SCALAR, tail, sizeof(tail));
}

typedef enum {
    KEY_LOADED,
    KEY_NONE,  /* nothing valid stored */
    KEY_ERROR, /* the reply has failed already */
} key_status_t;

/* The key stored in `part`, parsed into `pk` (initialised by the caller). */
static key_status_t key_load(const esp_partition_t *part, mbedtls_pk_context *pk, ate_reply_t *r)
{
    uint8_t raw[REC_SIZE];
    uint8_t d[REC_SCALAR];
    uint8_t der[SEC1_LEN];
    key_status_t status = KEY_NONE;

    const esp_err_t err = esp_partition_read(part, 0, raw, sizeof(raw));
    if (err != ESP_OK) {
        ate_reply_fail(r, ATE_EHW, "dev_key partition: read failed: %s", esp_err_to_name(err));
        status = KEY_ERROR;
    } else if (record_decode(raw, d)) {
        sec1_der(d, der);
        /* Fails for a scalar of 0 or >= n: like a bad hash, that is no key. */
        if (mbedtls_pk_parse_key(pk, der, sizeof(der), NULL, 0, mbedtls_ctr_drbg_random,
                                 &s_drbg) == 0) {
            status = KEY_LOADED;
        }
    }
    mbedtls_platform_zeroize(raw, sizeof(raw));
    mbedtls_platform_zeroize(d, sizeof(d));
    mbedtls_platform_zeroize(der, sizeof(der));
    return status;
}

/* Make a new key and store it. The record is complete in flash or the key is lost with
 * the power: erased or half-written flash reads as "no key" next time. */
static bool key_create(const esp_partition_t *part, ate_reply_t *r)
{
    mbedtls_ecp_group grp;
    mbedtls_mpi d;
    uint8_t scalar[REC_SCALAR];
    uint8_t record[REC_SIZE];
    bool ok = false;

    mbedtls_ecp_group_init(&grp);
    mbedtls_mpi_init(&d);
    int ret = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
    if (ret == 0) {
        ret = mbedtls_ecp_gen_privkey(&grp, &d, mbedtls_ctr_drbg_random, &s_drbg);
    }
    if (ret == 0) {
        ret = mbedtls_mpi_write_binary(&d, scalar, sizeof(scalar));
    }
    if (ret == 0) {
        ret = record_encode(scalar, record);
    }
    if (ret != 0) {
        ate_reply_fail(r, ATE_EHW, "key generation failed (mbedtls -0x%04x)", (unsigned)-ret);
    } else {
        esp_err_t err = esp_partition_erase_range(part, 0, part->size);
        if (err == ESP_OK) {
            err = esp_partition_write(part, 0, record, sizeof(record));
        }
        if (err != ESP_OK) {
            ate_reply_fail(r, ATE_EHW, "dev_key partition: write failed: %s",
                           esp_err_to_name(err));
        } else {
            ESP_LOGI(TAG, "device key generated and stored in the dev_key partition");
            ok = true;
        }
    }
    mbedtls_platform_zeroize(scalar, sizeof(scalar));
    mbedtls_platform_zeroize(record, sizeof(record));
    mbedtls_mpi_free(&d); /* wipes the limbs */
    mbedtls_ecp_group_free(&grp);
    return ok;
}

static bool public_point(const mbedtls_pk_context *pk, uint8_t out[POINT_LEN])
{
    unsigned char buf[POINT_LEN + 16];
    unsigned char *p = buf + sizeof(buf);
    /* Writes backwards from the end: the bare point for an EC key. */
    const int len = mbedtls_pk_write_pubkey(&p, buf, pk);
    if (len != POINT_LEN || p[0] != 0x04) {
        return false;
    }
    memcpy(out, p, POINT_LEN);
    return true;
}

/* The stored key for prov.csr and prov.sign; EARG if there is none. */
static bool stored_key(mbedtls_pk_context *pk, ate_reply_t *r)
{
    const esp_partition_t *part = dev_key_partition(r);
    if (part == NULL) {
        return false;
    }
    switch (key_load(part, pk, r)) {
    case KEY_LOADED:
        return true;
    case KEY_NONE:
        ate_reply_fail(r, ATE_EARG, "no device key: send prov.key first");
        return false;
    default:
        return false;
    }
}

/* ---- prov.key ------------------------------------------------------------------------ */

void cmd_prov_key(const ate_request_t *q, ate_reply_t *r)
{
    (void)q;
    if (!rng_ready(r)) {
        return;
    }
    const esp_partition_t *part = dev_key_partition(r);
    if (part == NULL) {
        return;
    }
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    bool created = false;
    key_status_t status = key_load(part, &pk, r);
    if (status == KEY_NONE) {
        if (key_create(part, r)) {
            created = true;
            /* Answer with what the flash now holds, not with what was meant to go there. */
            mbedtls_pk_free(&pk);
            mbedtls_pk_init(&pk);
            status = key_load(part, &pk, r);
            if (status == KEY_NONE) {
                ate_reply_fail(r, ATE_EHW, "dev_key partition: the stored key does not read back");
            }
        }
    }
    uint8_t point[POINT_LEN];
    if (status == KEY_LOADED) {
        if (public_point(&pk, point)) {
            ate_reply_bytes(r, "pub", point, sizeof(point));
            ate_reply_uint(r, "new", created ? 1u : 0u);
        } else {
            ate_reply_fail(r, ATE_EHW, "the device key's public point could not be written");
        }
    }
    mbedtls_pk_free(&pk);
}

/* ---- prov.csr ------------------------------------------------------------------------ */

typedef enum {
    VALUE_TEXT,      /* UTF8String */
    VALUE_COUNTRY,   /* PrintableString, two capital letters */
    VALUE_PRINTABLE, /* PrintableString */
} value_kind_t;

typedef struct {
    const char *name; /* as mbedTLS's name parser spells it */
    value_kind_t kind;
} subject_attr_t;

static const subject_attr_t k_attrs[] = {
    {"CN", VALUE_TEXT},
    {"O", VALUE_TEXT},
    {"OU", VALUE_TEXT},
    {"C", VALUE_COUNTRY},
    {"serialNumber", VALUE_PRINTABLE},
};
#define ATTR_COUNT (sizeof(k_attrs) / sizeof(k_attrs[0]))

/* RFC 4514 (and mbedTLS's parser) give these a meaning; no value may contain them, so the
 * text means the same to the host, to mbedTLS and to anyone reading it. */
static const char k_special[] = ",+=\"\\<>;#";
/* What PrintableString allows, less k_special. */
static const char k_printable_extra[] = " '()-./:?";

/* One UTF-8 sequence at s (n > 0 bytes left): its code point and length, or -1 for a
 * malformed one (truncated, overlong, a surrogate, beyond U+10FFFF). */
static int32_t utf8_next(const uint8_t *s, size_t n, size_t *used)
{
    const uint8_t b0 = s[0];
    size_t len;
    uint32_t cp;
    uint32_t min;
    if (b0 < 0x80) {
        *used = 1;
        return (int32_t)b0;
    } else if ((b0 & 0xE0) == 0xC0) {
        len = 2;
        cp = b0 & 0x1Fu;
        min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3;
        cp = b0 & 0x0Fu;
        min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4;
        cp = b0 & 0x07u;
        min = 0x10000;
    } else {
        return -1;
    }
    if (n < len) {
        return -1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return -1;
        }
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return -1;
    }
    *used = len;
    return (int32_t)cp;
}

static bool value_ok(const subject_attr_t *attr, const uint8_t *v, size_t n, ate_reply_t *r)
{
    const char *name = attr->name;
    if (n == 0) {
        ate_reply_fail(r, ATE_EARG, "subject: %s is empty", name);
        return false;
    }
    if (n > VALUE_MAX_BYTES) {
        ate_reply_fail(r, ATE_EARG, "subject: %s is longer than %d bytes of UTF-8", name,
                       VALUE_MAX_BYTES);
        return false;
    }
    if (v[0] == ' ' || v[n - 1] == ' ') {
        ate_reply_fail(r, ATE_EARG, "subject: %s starts or ends with a space", name);
        return false;
    }
    size_t chars = 0;
    for (size_t i = 0; i < n;) {
        size_t used = 0;
        const int32_t cp = utf8_next(v + i, n - i, &used);
        if (cp < 0) {
            ate_reply_fail(r, ATE_EARG, "subject: %s is not UTF-8 text", name);
            return false;
        }
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            ate_reply_fail(r, ATE_EARG, "subject: %s contains a control character", name);
            return false;
        }
        if (cp < 0x80 && strchr(k_special, (int)cp) != NULL) {
            ate_reply_fail(r, ATE_EARG, "subject: %s contains '%c', which no value may contain",
                           name, (char)cp);
            return false;
        }
        if (attr->kind == VALUE_COUNTRY && !(cp >= 'A' && cp <= 'Z')) {
            ate_reply_fail(r, ATE_EARG,
                           "subject: C must be two capital letters (an ISO 3166 country code)");
            return false;
        }
        if (attr->kind == VALUE_PRINTABLE &&
            !((cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') ||
              (cp < 0x80 && strchr(k_printable_extra, (int)cp) != NULL))) {
            ate_reply_fail(r, ATE_EARG,
                           "subject: serialNumber may hold only letters, digits, space and "
                           "'()-./:?");
            return false;
        }
        chars++;
        i += used;
    }
    if (attr->kind == VALUE_COUNTRY && chars != 2) {
        ate_reply_fail(r, ATE_EARG,
                       "subject: C must be two capital letters (an ISO 3166 country code)");
        return false;
    }
    return true;
}

/* `CN=...,O=...`: only k_attrs, each at most once, every value valid (PROVISIONING.md). */
static bool subject_ok(const uint8_t *text, size_t len, ate_reply_t *r)
{
    bool seen[ATTR_COUNT] = {false};
    size_t pos = 0;
    for (;;) {
        size_t end = pos;
        while (end < len && text[end] != ',') {
            end++;
        }
        const uint8_t *eq = memchr(text + pos, '=', end - pos);
        if (eq == NULL) {
            ate_reply_fail(r, ATE_EARG, "subject: every attribute is name=value");
            return false;
        }
        const size_t name_len = (size_t)(eq - (text + pos));
        size_t which = ATTR_COUNT;
        for (size_t i = 0; i < ATTR_COUNT; i++) {
            if (strlen(k_attrs[i].name) == name_len &&
                memcmp(k_attrs[i].name, text + pos, name_len) == 0) {
                which = i;
            }
        }
        if (which == ATTR_COUNT) {
            ate_reply_fail(r, ATE_EARG,
                           "subject: an attribute is not allowed; allowed: CN, O, OU, C, "
                           "serialNumber");
            return false;
        }
        if (seen[which]) {
            ate_reply_fail(r, ATE_EARG, "subject: %s appears twice", k_attrs[which].name);
            return false;
        }
        seen[which] = true;
        const uint8_t *value = eq + 1;
        if (!value_ok(&k_attrs[which], value, (size_t)(text + end - value), r)) {
            return false;
        }
        if (end == len) {
            return true;
        }
        pos = end + 1; /* a trailing comma leaves an empty part: not name=value */
    }
}

void cmd_prov_csr(const ate_request_t *q, ate_reply_t *r)
{
    static uint8_t subject[SUBJECT_MAX + 1];
    static unsigned char der[CSR_MAX];

    const char *hex = ate_option(q, "subject");
    if (hex == NULL) {
        ate_reply_fail(r, ATE_EARG, "prov.csr needs subject=<hex of the subject text>");
        return;
    }
    size_t len = 0;
    if (!ate_parse_hex(hex, subject, SUBJECT_MAX, &len)) {
        ate_reply_fail(r, ATE_EARG, "subject must be hex bytes, at most %d", SUBJECT_MAX);
        return;
    }
    subject[len] = '\0'; /* no NUL inside: control characters are refused */
    if (!subject_ok(subject, len, r) || !rng_ready(r)) {
        return;
    }
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    if (!stored_key(&pk, r)) {
        mbedtls_pk_free(&pk);
        return;
    }
    mbedtls_x509write_csr csr;
    mbedtls_x509write_csr_init(&csr);
    mbedtls_x509write_csr_set_md_alg(&csr, MBEDTLS_MD_SHA256);
    mbedtls_x509write_csr_set_key(&csr, &pk);
    /* The checks above leave nothing for mbedTLS's parser to interpret: the attributes go
     * into the request in the order given, one per RDN, no extensions. */
    int ret = mbedtls_x509write_csr_set_subject_name(&csr, (const char *)subject);
    if (ret == 0) {
        ret = mbedtls_x509write_csr_der(&csr, der, sizeof(der), mbedtls_ctr_drbg_random, &s_drbg);
    }
    if (ret < 0) {
        ate_reply_fail(r, ATE_EHW, "CSR could not be made (mbedtls -0x%04x)", (unsigned)-ret);
    } else {
        /* mbedTLS writes DER backwards: the request ends at the end of the buffer. */
        ate_reply_bytes(r, "csr", der + sizeof(der) - (size_t)ret, (size_t)ret);
    }
    mbedtls_x509write_csr_free(&csr);
    mbedtls_pk_free(&pk);
}

/* ---- prov.sign ----------------------------------------------------------------------- */

void cmd_prov_sign(const ate_request_t *q, ate_reply_t *r)
{
    static uint8_t message[sizeof(k_proof_prefix) - 1 + CHALLENGE_MAX];
    static unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];

    const size_t prefix = sizeof(k_proof_prefix) - 1;
    size_t len = 0;
    if (!ate_arg_hex(q, r, 0, "challenge", message + prefix, CHALLENGE_MAX, &len)) {
        return;
    }
    if (len < CHALLENGE_MIN) {
        ate_reply_fail(r, ATE_EARG, "challenge: %d..%d bytes, got %u", CHALLENGE_MIN,
                       CHALLENGE_MAX, (unsigned)len);
        return;
    }
    if (!rng_ready(r)) {
        return;
    }
    mbedtls_pk_context pk;
    mbedtls_pk_init(&pk);
    if (!stored_key(&pk, r)) {
        mbedtls_pk_free(&pk);
        return;
    }
    /* A domain prefix, so the device key never signs bytes the host chose entirely. */
    memcpy(message, k_proof_prefix, prefix);
    uint8_t hash[32];
    size_t sig_len = 0;
    int ret = mbedtls_sha256(message, prefix + len, hash, 0);
    if (ret == 0) {
        ret = mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, sizeof(sig),
                              &sig_len, mbedtls_ctr_drbg_random, &s_drbg);
    }
    if (ret != 0) {
        ate_reply_fail(r, ATE_EHW, "signing failed (mbedtls -0x%04x)", (unsigned)-ret);
    } else {
        ate_reply_bytes(r, "sig", sig, sig_len); /* DER ECDSA-Sig-Value */
    }
    mbedtls_pk_free(&pk);
}
