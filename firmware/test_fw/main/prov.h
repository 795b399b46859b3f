/*
 * prov.key, prov.csr, prov.sign: the device side of provisioning (PROTOCOL.md,
 * "Provisioning"; PROVISIONING.md for the dev_key record and the subject rules).
 *
 * The device key is an EC P-256 key made on the unit by the unit and kept in the dev_key
 * partition (data, subtype 0x40). Its private part never leaves the chip and is never
 * printed: the host gets the public point, a CSR signed with it and proof signatures over
 * "ate-proof/1:" + challenge.
 */
#pragma once

#include "protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Seed the random number generator the three commands use, with the SAR-ADC entropy
 * source on for the moment it takes. Call once at boot, before the ADC and the radio are
 * brought up (bootloader_random_enable() may not run alongside either). A failure is
 * logged here and makes the commands answer EHW. */
void prov_init(void);

/* Command handlers for the table in commands.c. */
void cmd_prov_key(const ate_request_t *request, ate_reply_t *reply);
void cmd_prov_csr(const ate_request_t *request, ate_reply_t *reply);
void cmd_prov_sign(const ate_request_t *request, ate_reply_t *reply);

#ifdef __cplusplus
}
#endif
