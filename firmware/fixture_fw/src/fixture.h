/*
 * The fixture controller: the ate line protocol's fixture commands (PROTOCOL.md, "Fixture
 * controller commands") over the board's HAL. Portable C: the protocol core is the test
 * firmware's (firmware/test_fw/main/protocol.c), linked as it is.
 *
 * A port calls fixture_init() once, fixture_rx_byte() for every byte from the host and
 * fixture_poll() from its main loop (at least every few milliseconds).
 */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FIXTURE_FW "ate-fixture/1.0.0"
/* The clamp must read the same for this long before a change is reported. */
#define FIXTURE_CLAMP_DEBOUNCE_MS 20u
/* EN held low, then IO0 held low after EN is released (esptool's classic timings). */
#define FIXTURE_RESET_MS 100u
#define FIXTURE_STRAP_MS 50u

void fixture_init(void);
void fixture_rx_byte(uint8_t byte);
/* `now_ms`: a free-running millisecond clock (wraps). */
void fixture_poll(uint32_t now_ms);

#ifdef __cplusplus
}
#endif
