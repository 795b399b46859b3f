/*
 * The INA226 current/power monitor as the fixture uses it: a shunt per slot, current in
 * microamps. Pure arithmetic plus register access through the HAL, so the host test checks
 * the calibration and conversion against the datasheet's formulas (TI SBOS547, 7.5).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define INA226_REG_CONFIG 0x00
#define INA226_REG_SHUNT 0x01
#define INA226_REG_CURRENT 0x04
#define INA226_REG_CALIBRATION 0x05
#define INA226_REG_MANUFACTURER 0xFE /* reads 0x5449 ("TI") */

/* 100 mOhm shunt, 25 uA per current LSB: 0.82 A full scale, enough for an ESP32 at full
 * radio power (~500 mA peaks) with headroom. */
#define INA226_SHUNT_MILLIOHM 100u
#define INA226_CURRENT_LSB_UA 25u

/* CAL = 0.00512 / (current_LSB * R_shunt), with the LSB in A and R in ohms. */
uint16_t ina226_calibration(uint32_t current_lsb_ua, uint32_t shunt_milliohm);

/* The current register (signed) in microamps. */
int32_t ina226_current_ua(uint16_t current_register, uint32_t current_lsb_ua);

/* Configure (averaging 4, 1.1 ms conversions, shunt and bus continuous) and calibrate
 * the device at `address`; false if it does not answer or is not an INA226. */
bool ina226_setup(uint8_t address);

/* One current reading in microamps; false on an I2C error. */
bool ina226_read_ua(uint8_t address, int32_t *microamps);

#ifdef __cplusplus
}
#endif
