/*
 * Host test of the fixture controller firmware with a fake board: command lines in,
 * reply lines out (checked up to their checksum, which the protocol core's own test
 * covers), the strap order on EN/IO0, the safe state, the clamp's debounced notice, the
 * INA226 set-up and arithmetic, and bad arguments answered EARG, not acted on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "fixture_hal.h"
#include "ina226.h"

/* ---- the fake board -------------------------------------------------------------------- */

#define SLOTS 2
static bool power[SLOTS + 1], en[SLOTS + 1], io0[SLOTS + 1], present[SLOTS + 1];
static fixture_led_t led[SLOTS + 1];
static bool clamp;
static bool has_buzzer;
static fixture_buzz_t buzzed;
static char events[4096]; /* "EN1+ IO01+ ..." in the order the pins moved */
static char out[8192];
static size_t out_len;
static uint16_t ina_current = 0x0FA0; /* 4000 LSB = 100 mA at 25 uA */
static uint16_t ina_config, ina_cal;
static bool ina_fitted = true;

static void event(const char *what, unsigned slot, bool on)
{
    char item[32];
    snprintf(item, sizeof item, "%s%u%c ", what, slot, on ? '+' : '-');
    strncat(events, item, sizeof events - strlen(events) - 1);
}

unsigned hal_slot_count(void) { return SLOTS; }
void hal_power(unsigned slot, bool on) { power[slot] = on; event("P", slot, on); }
void hal_en(unsigned slot, bool asserted) { en[slot] = asserted; event("EN", slot, asserted); }
void hal_io0(unsigned slot, bool asserted) { io0[slot] = asserted; event("IO0_", slot, asserted); }
bool hal_present(unsigned slot) { return present[slot]; }
bool hal_clamp_closed(void) { return clamp; }
void hal_led(unsigned slot, fixture_led_t state) { led[slot] = state; }
bool hal_buzzer(fixture_buzz_t pattern) { buzzed = pattern; return has_buzzer; }
void hal_delay_ms(uint32_t ms) { (void)ms; strncat(events, "| ", sizeof events - strlen(events) - 1); }
uint8_t hal_ina226_address(unsigned slot) { return (uint8_t)(0x40 + slot); }

bool hal_i2c_read16(uint8_t address, uint8_t reg, uint16_t *value)
{
    if (!ina_fitted || address != 0x41) return false;
    if (reg == INA226_REG_MANUFACTURER) { *value = 0x5449; return true; }
    if (reg == INA226_REG_CURRENT) { *value = ina_current; return true; }
    return false;
}

bool hal_i2c_write16(uint8_t address, uint8_t reg, uint16_t value)
{
    if (!ina_fitted || address != 0x41) return false;
    if (reg == INA226_REG_CONFIG) ina_config = value;
    if (reg == INA226_REG_CALIBRATION) ina_cal = value;
    return true;
}

void hal_uart_write(const char *data, size_t len)
{
    if (out_len + len < sizeof out) {
        memcpy(out + out_len, data, len);
        out_len += len;
        out[out_len] = '\0';
    }
}

/* ---- helpers --------------------------------------------------------------------------- */

static int failures;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

/* Send one request line; return the reply up to (not including) its "*XXXX\n". */
static const char *ask(const char *line)
{
    static char reply[1024];
    out_len = 0;
    out[0] = '\0';
    for (const char *p = line; *p; p++) fixture_rx_byte((uint8_t)*p);
    fixture_rx_byte('\n');
    const char *star = strrchr(out, '*');
    size_t n = star ? (size_t)(star - out) : strlen(out);
    if (n >= sizeof reply) n = sizeof reply - 1;
    memcpy(reply, out, n);
    reply[n] = '\0';
    return reply;
}

#define EXPECT_REPLY(line, want)                                              \
    do {                                                                      \
        const char *got_ = ask(line);                                         \
        CHECK(strcmp(got_, (want)) == 0, "%s -> '%s', wanted '%s'", line, got_, want); \
    } while (0)

static void test_safe_state_and_info(void)
{
    events[0] = '\0';
    fixture_init();
    for (unsigned s = 1; s <= SLOTS; s++) {
        CHECK(!power[s] && !en[s] && !io0[s] && led[s] == LED_OFF, "slot %u not safe", s);
    }
    EXPECT_REPLY("!1 info", "@1 OK proto=1 fw=ate-fixture/1.0.0 slots=2");
    EXPECT_REPLY("!2 frobnicate", "@2 ERR EUNKNOWN no command frobnicate in this firmware");
}

static void test_power_and_strap_order(void)
{
    EXPECT_REPLY("!3 power.set 1 1", "@3 OK");
    CHECK(power[1] && !power[2], "power");
    events[0] = '\0';
    EXPECT_REPLY("!4 strap 1 boot", "@4 OK");
    /* IO0 low first, EN low, wait, EN released while IO0 is low, wait, IO0 released. */
    CHECK(strcmp(events, "IO0_1+ EN1+ | EN1- | IO0_1- ") == 0, "boot strap: %s", events);
    events[0] = '\0';
    EXPECT_REPLY("!5 strap 2 run", "@5 OK");
    CHECK(strcmp(events, "IO0_2- EN2+ | EN2- | IO0_2- ") == 0, "run strap: %s", events);
    events[0] = '\0';
    const char *bad = ask("!6 strap 3 boot");
    CHECK(strncmp(bad, "@6 ERR EARG", 11) == 0, "slot 3: %s", bad);
    bad = ask("!7 strap 1 sideways");
    CHECK(strncmp(bad, "@7 ERR EARG", 11) == 0, "mode: %s", bad);
    bad = ask("!8 power.set 1 2");
    CHECK(strncmp(bad, "@8 ERR EARG", 11) == 0, "state 2: %s", bad);
    CHECK(events[0] == '\0', "a refused request moved pins: %s", events);
}

static void test_present_leds_buzzer(void)
{
    present[2] = true;
    EXPECT_REPLY("!9 present.get 2", "@9 OK present=1");
    EXPECT_REPLY("!10 present.get 1", "@10 OK present=0");
    EXPECT_REPLY("!11 led.set 2 fail", "@11 OK");
    CHECK(led[2] == LED_FAIL, "led");
    has_buzzer = false;
    EXPECT_REPLY("!12 buzzer.set pass", "@12 ERR EUNKNOWN this fixture has no buzzer");
    has_buzzer = true;
    EXPECT_REPLY("!13 buzzer.set fail", "@13 OK");
    CHECK(buzzed == BUZZ_FAIL, "buzzer");
}

static void test_ina226(void)
{
    /* TI's formula: CAL = 0.00512 / (25e-6 A * 0.1 ohm) = 2048. */
    CHECK(ina226_calibration(25, 100) == 2048, "cal %u", ina226_calibration(25, 100));
    CHECK(ina226_calibration(1, 1) == 0x7FFF, "cal clamps to 15 bits");
    CHECK(ina226_current_ua(0x0FA0, 25) == 100000, "4000 LSB");
    CHECK(ina226_current_ua(0xFFFF, 25) == -25, "negative current");
    ina_current = 0x0FA0;
    EXPECT_REPLY("!14 isense.read 1 samples=4", "@14 OK ma=100.000 min=100.000 max=100.000");
    CHECK(ina_cal == 2048 && (ina_config & 7u) == 7u, "setup cal=%u config=%04x", ina_cal, ina_config);
    ina_current = 0x0001;
    EXPECT_REPLY("!15 isense.read 1", "@15 OK ma=0.025 min=0.025 max=0.025");
    const char *none = ask("!16 isense.read 2");
    CHECK(strncmp(none, "@16 ERR EHW slot 2: no INA226", 29) == 0, "%s", none);
    const char *many = ask("!17 isense.read 1 samples=5000");
    CHECK(strncmp(many, "@17 ERR EARG", 12) == 0, "%s", many);
    ina_fitted = false;
    const char *gone = ask("!18 isense.read 1");
    CHECK(strncmp(gone, "@18 ERR EHW slot 1: INA226 stopped answering", 44) == 0, "%s", gone);
    ina_fitted = true;
    EXPECT_REPLY("!19 isense.read 1", "@19 OK ma=0.025 min=0.025 max=0.025");
    EXPECT_REPLY("!20 dmm.read 1 3v3", "@20 ERR EUNKNOWN this board has no DMM mux");
}

static void test_clamp_debounce(void)
{
    clamp = false;
    fixture_init();
    out_len = 0;
    out[0] = '\0';
    EXPECT_REPLY("!21 clamp.get", "@21 OK closed=0");
    out_len = 0;
    out[0] = '\0';
    uint32_t t = 1000;
    fixture_poll(t);
    clamp = true; /* closes, bounces open at 5 ms, settles closed at 8 ms */
    fixture_poll(t += 1);
    clamp = false;
    fixture_poll(t += 4);
    clamp = true;
    fixture_poll(t += 3);
    fixture_poll(t += 10);
    CHECK(out_len == 0, "reported before it settled: %s", out);
    fixture_poll(t += 11);
    CHECK(strncmp(out, "@* CLAMP closed=1*", 18) == 0, "notice: '%s'", out);
    out_len = 0;
    out[0] = '\0';
    fixture_poll(t += 50);
    CHECK(out_len == 0, "reported twice: %s", out);
    clamp = false;
    fixture_poll(t += 1);
    fixture_poll(t += 25);
    CHECK(strncmp(out, "@* CLAMP closed=0*", 18) == 0, "open notice: '%s'", out);
}

int main(void)
{
    test_safe_state_and_info();
    test_power_and_strap_order();
    test_present_leds_buzzer();
    test_ina226();
    test_clamp_debounce();
    if (failures) {
        fprintf(stderr, "fixture_fw host test: %d failure(s)\n", failures);
        return 1;
    }
    printf("fixture_fw host test: all passed\n");
    return 0;
}
