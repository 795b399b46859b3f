#include "fixture.h"

#include <stdbool.h>
#include <string.h>

#include "fixture_hal.h"
#include "ina226.h"
#include "protocol.h"

static ate_session_t s_session;
static ate_line_reader_t s_reader;
static bool s_clamp_reported;
static bool s_clamp_seen;
static uint32_t s_clamp_since;
static bool s_clamp_started;
static bool s_ina_ready[FIXTURE_SLOTS_MAX + 1];

static bool slot_arg(const ate_request_t *request, ate_reply_t *reply, uint32_t *slot)
{
    return ate_arg_uint(request, reply, 0, "slot", 1, hal_slot_count(), slot);
}

static void cmd_info(const ate_request_t *request, ate_reply_t *reply)
{
    (void)request;
    ate_reply_uint(reply, "proto", ATE_PROTO_VERSION);
    ate_reply_str(reply, "fw", FIXTURE_FW);
    ate_reply_uint(reply, "slots", hal_slot_count());
}

static void cmd_power(const ate_request_t *request, ate_reply_t *reply)
{
    uint32_t slot, on;
    if (!slot_arg(request, reply, &slot) || !ate_arg_uint(request, reply, 1, "state", 0, 1, &on)) {
        return;
    }
    hal_power(slot, on != 0);
}

static void cmd_strap(const ate_request_t *request, ate_reply_t *reply)
{
    uint32_t slot;
    size_t mode;
    if (!slot_arg(request, reply, &slot) ||
        !ate_arg_choice(request, reply, 1, "mode", "run|boot", &mode)) {
        return;
    }
    /* IO0 is set before EN falls and held until after EN has risen: the ROM samples it
     * as EN rises. */
    hal_io0(slot, mode == 1);
    hal_en(slot, true);
    hal_delay_ms(FIXTURE_RESET_MS);
    hal_en(slot, false);
    hal_delay_ms(FIXTURE_STRAP_MS);
    hal_io0(slot, false);
}

static void cmd_present(const ate_request_t *request, ate_reply_t *reply)
{
    uint32_t slot;
    if (slot_arg(request, reply, &slot)) {
        ate_reply_uint(reply, "present", hal_present(slot) ? 1u : 0u);
    }
}

static void cmd_clamp(const ate_request_t *request, ate_reply_t *reply)
{
    (void)request;
    ate_reply_uint(reply, "closed", hal_clamp_closed() ? 1u : 0u);
}

static void cmd_led(const ate_request_t *request, ate_reply_t *reply)
{
    uint32_t slot;
    size_t state;
    if (slot_arg(request, reply, &slot) &&
        ate_arg_choice(request, reply, 1, "state", "off|busy|pass|fail|error", &state)) {
        hal_led(slot, (fixture_led_t)state);
    }
}

static void cmd_buzzer(const ate_request_t *request, ate_reply_t *reply)
{
    size_t pattern;
    if (ate_arg_choice(request, reply, 0, "pattern", "off|pass|fail", &pattern) &&
        !hal_buzzer((fixture_buzz_t)pattern)) {
        ate_reply_fail(reply, ATE_EUNKNOWN, "this fixture has no buzzer");
    }
}

static void cmd_isense(const ate_request_t *request, ate_reply_t *reply)
{
    uint32_t slot, samples;
    if (!slot_arg(request, reply, &slot) ||
        !ate_option_uint(request, reply, "samples", 1, 1, 1000, &samples)) {
        return;
    }
    uint8_t address = hal_ina226_address(slot);
    if (!s_ina_ready[slot]) {
        s_ina_ready[slot] = ina226_setup(address);
        if (!s_ina_ready[slot]) {
            ate_reply_fail(reply, ATE_EHW, "slot %u: no INA226 answers at 0x%02x",
                           (unsigned)slot, address);
            return;
        }
    }
    int64_t sum = 0;
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (uint32_t i = 0; i < samples; i++) {
        int32_t ua;
        if (!ina226_read_ua(address, &ua)) {
            s_ina_ready[slot] = false; /* set it up again next time */
            ate_reply_fail(reply, ATE_EHW, "slot %u: INA226 stopped answering", (unsigned)slot);
            return;
        }
        sum += ua;
        lo = ua < lo ? ua : lo;
        hi = ua > hi ? ua : hi;
        if (i + 1 < samples) {
            hal_delay_ms(2); /* a new conversion every ~2 ms at AVG=4, 1.1 ms */
        }
    }
    /* microamps as milliamps with three decimals, without floats */
    ate_reply_fixed(reply, "ma", (int32_t)(sum / (int64_t)samples), 3);
    ate_reply_fixed(reply, "min", lo, 3);
    ate_reply_fixed(reply, "max", hi, 3);
}

static void cmd_dmm(const ate_request_t *request, ate_reply_t *reply)
{
    (void)request;
    ate_reply_fail(reply, ATE_EUNKNOWN, "this board has no DMM mux");
}

static const ate_command_t COMMANDS[] = {
    {"ping", cmd_info, 0, 0, NULL, "ping"},
    {"info", cmd_info, 0, 0, NULL, "info"},
    {"power.set", cmd_power, 2, 2, NULL, "power.set <slot> <0|1>"},
    {"strap", cmd_strap, 2, 2, NULL, "strap <slot> <run|boot>"},
    {"present.get", cmd_present, 1, 1, NULL, "present.get <slot>"},
    {"clamp.get", cmd_clamp, 0, 0, NULL, "clamp.get"},
    {"led.set", cmd_led, 2, 2, NULL, "led.set <slot> <off|busy|pass|fail|error>"},
    {"buzzer.set", cmd_buzzer, 1, 1, NULL, "buzzer.set <off|pass|fail>"},
    {"isense.read", cmd_isense, 1, 1, "samples", "isense.read <slot> [samples=<n>]"},
    {"dmm.read", cmd_dmm, 2, 2, NULL, "dmm.read <slot> <rail>"},
};

void fixture_init(void)
{
    ate_session_init(&s_session, COMMANDS, sizeof COMMANDS / sizeof COMMANDS[0]);
    ate_line_reader_reset(&s_reader);
    memset(s_ina_ready, 0, sizeof s_ina_ready);
    for (unsigned slot = 1; slot <= hal_slot_count(); slot++) {
        hal_power(slot, false); /* the safe state: nothing powered, EN and IO0 released */
        hal_en(slot, false);
        hal_io0(slot, false);
        hal_led(slot, LED_OFF);
    }
    s_clamp_reported = hal_clamp_closed();
    s_clamp_seen = s_clamp_reported;
    s_clamp_started = false;
}

void fixture_rx_byte(uint8_t byte)
{
    ate_line_t line;
    if (!ate_line_reader_feed(&s_reader, byte, &line)) {
        return;
    }
    ate_outcome_t out = ate_session_handle_line(&s_session, line.text, line.len);
    if (out.reply != NULL) {
        hal_uart_write(out.reply, out.reply_len);
        if (out.after != NULL) {
            out.after(out.after_arg);
        }
    }
}

void fixture_poll(uint32_t now_ms)
{
    bool closed = hal_clamp_closed();
    if (!s_clamp_started || closed != s_clamp_seen) {
        s_clamp_seen = closed; /* a bounce restarts the wait */
        s_clamp_since = now_ms;
        s_clamp_started = true;
        return;
    }
    if (closed != s_clamp_reported && (uint32_t)(now_ms - s_clamp_since) >= FIXTURE_CLAMP_DEBOUNCE_MS) {
        s_clamp_reported = closed;
        char buf[ATE_ERROR_LINE_MAX];
        ate_reply_t notice;
        ate_notice_init(&notice, buf, sizeof buf, "CLAMP");
        ate_reply_uint(&notice, "closed", closed ? 1u : 0u);
        size_t len = ate_reply_finish(&notice);
        hal_uart_write(buf, len);
    }
}
