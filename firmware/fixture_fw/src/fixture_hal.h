/*
 * What the fixture controller firmware needs from its board: one small interface, so the
 * same command code runs on any MCU (an RP2040, an STM32, an ESP32-C3) and on the host in
 * test/host with a fake board. A port implements these for its pins (README.md).
 *
 * Levels are logical: `asserted` means "doing its job" (EN held low, IO0 held low, the
 * load switch on) whatever the board's polarity is; the port maps them to pin levels.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FIXTURE_SLOTS_MAX 4

typedef enum { LED_OFF, LED_BUSY, LED_PASS, LED_FAIL, LED_ERROR } fixture_led_t;
typedef enum { BUZZ_OFF, BUZZ_PASS, BUZZ_FAIL } fixture_buzz_t;

/* Slots are numbered from 1, as in the fixture file; the port knows how many it has. */
unsigned hal_slot_count(void);

void hal_power(unsigned slot, bool on);        /* the slot's load switch / relay */
void hal_en(unsigned slot, bool asserted);     /* EN (CHIP_PU) held low: chip in reset */
void hal_io0(unsigned slot, bool asserted);    /* IO0 (GPIO0/GPIO9) held low */
bool hal_present(unsigned slot);               /* a board-present contact */
bool hal_clamp_closed(void);                   /* the clamp switch, raw (not debounced) */
void hal_led(unsigned slot, fixture_led_t led);
bool hal_buzzer(fixture_buzz_t pattern);       /* false: this board has no buzzer */
void hal_delay_ms(uint32_t ms);

/* INA226 on I2C, one per slot at the address the port says (0 = none fitted). Registers
 * are 16-bit, big-endian on the wire; return false on a NACK. */
uint8_t hal_ina226_address(unsigned slot);
bool hal_i2c_read16(uint8_t address, uint8_t reg, uint16_t *value);
bool hal_i2c_write16(uint8_t address, uint8_t reg, uint16_t value);

/* The host link (USB CDC or a UART): write a whole line. */
void hal_uart_write(const char *data, size_t len);

#ifdef __cplusplus
}
#endif
