/*
 * The fixture firmware as a host process, for the interoperability test
 * (tests/drivers/test_fixture_fw.py): the line protocol on stdin/stdout (a pty in the
 * test), a fake board of two slots with an INA226 on slot 1 reading 87.5 mA, and the
 * clamp switch toggled by SIGUSR1, so the host's LineFixtureController is checked against
 * the real firmware code, not only against the simulated twin.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "fixture_hal.h"
#include "ina226.h"

static volatile sig_atomic_t toggles;
static bool clamp = true;

static void on_usr1(int sig)
{
    (void)sig;
    toggles++;
}

unsigned hal_slot_count(void) { return 2; }
void hal_power(unsigned slot, bool on) { (void)slot; (void)on; }
void hal_en(unsigned slot, bool asserted) { (void)slot; (void)asserted; }
void hal_io0(unsigned slot, bool asserted) { (void)slot; (void)asserted; }
bool hal_present(unsigned slot) { return slot == 1; }
bool hal_clamp_closed(void) { return clamp; }
void hal_led(unsigned slot, fixture_led_t state) { (void)slot; (void)state; }
bool hal_buzzer(fixture_buzz_t pattern) { (void)pattern; return true; }
uint8_t hal_ina226_address(unsigned slot) { return slot == 1 ? 0x41 : 0; }

void hal_delay_ms(uint32_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

bool hal_i2c_read16(uint8_t address, uint8_t reg, uint16_t *value)
{
    if (address != 0x41) return false;
    if (reg == INA226_REG_MANUFACTURER) { *value = 0x5449; return true; }
    if (reg == INA226_REG_CURRENT) { *value = 3500; return true; } /* 87.5 mA */
    return false;
}

bool hal_i2c_write16(uint8_t address, uint8_t reg, uint16_t value)
{
    (void)reg;
    (void)value;
    return address == 0x41;
}

void hal_uart_write(const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, data, len);
        if (n <= 0) return;
        data += n;
        len -= (size_t)n;
    }
}

static uint32_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

int main(void)
{
    signal(SIGUSR1, on_usr1);
    fixture_init();
    sig_atomic_t seen = 0;
    for (;;) {
        if (toggles != seen) {
            seen = toggles;
            clamp = !clamp;
        }
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        int ready = poll(&pfd, 1, 2);
        if (ready > 0) {
            unsigned char buf[256];
            ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            if (n <= 0) return 0; /* the host closed the line */
            for (ssize_t i = 0; i < n; i++) fixture_rx_byte(buf[i]);
        }
        fixture_poll(now_ms());
    }
}
