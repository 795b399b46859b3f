/*
 * The test firmware's commands (PROTOCOL.md, "Test firmware commands") and the hardware
 * they drive. All handlers run on the one command task, one at a time, so no handler
 * needs a lock against another; each one is bounded in time (I2C and SPI transfers have
 * timeouts or fixed lengths, ADC averaging and RF tests have capped counts).
 */
#pragma once

#include <stddef.h>

#include "protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the DUT says about itself, in READY and in `info`. */
typedef struct {
    char fw[48];  /* "ate-testfw/1.0.0" */
    char chip[16]; /* "esp32s3" */
    char mac[18]; /* factory (base) MAC, "24:0a:c4:00:00:01" */
    char idf[32]; /* "v5.3.1" */
} ate_identity_t;

/* Bring up GPIO bookkeeping, the I2C and SPI buses, the ADC channels and the power modes.
 * A bus or channel that fails is logged here and answers EHW when used, rather than
 * keeping the whole image from reaching READY. */
void commands_init(void);

const ate_command_t *commands_table(size_t *count);
const ate_identity_t *commands_identity(void);

#ifdef __cplusplus
}
#endif
