"""SimBoard and BoardSpec as pure logic: commands, per-unit spread, every fault knob."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sim_helpers import FAST_BOARD, make_spec

from ate.config.errors import InputError
from ate.config.loader import load_model
from ate.protocol.lines import (
    Corrupt,
    DeviceDecoder,
    ErrorReply,
    LogLine,
    Reply,
    Request,
    parse_device_line,
)
from ate.sim.board import COMMANDS, BoardSpec, Phase, SimBoard

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def running(spec: BoardSpec | None = None, seed: int = 7, slot: int = 1, **kw: Any) -> SimBoard:
    board = SimBoard(spec or make_spec(), seed, slot, **kw)
    board.power_on()
    assert board.finish_boot()
    return board


_ids = iter(range(1, 1_000_000))


def call(board: SimBoard, command: str, *args: str, **kwargs: str) -> Reply | ErrorReply:
    line = board.handle(Request(next(_ids) % 0xFFFF + 1, command, args, kwargs))
    event = parse_device_line(line.decode().rstrip("\n"))
    assert isinstance(event, Reply | ErrorReply), line
    return event


def ok(board: SimBoard, command: str, *args: str, **kwargs: str) -> dict[str, str]:
    reply = call(board, command, *args, **kwargs)
    assert isinstance(reply, Reply), reply
    return reply.fields


def err(board: SimBoard, command: str, *args: str, **kwargs: str) -> str:
    reply = call(board, command, *args, **kwargs)
    assert isinstance(reply, ErrorReply), reply
    return reply.code


# ---- the YAML model -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["board-s3-devkit.yaml", "board-c3-devkit.yaml"])
def test_shipped_board_files_load(name: str) -> None:
    spec = load_model(ROOT / "fixtures" / "sim" / name, BoardSpec)
    board = running(spec)
    first, second = spec.gpio.loopbacks[0]
    ok(board, "gpio.mode", str(first), "out")
    ok(board, "gpio.mode", str(second), "in")
    ok(board, "gpio.set", str(first), "1")
    assert ok(board, "gpio.get", str(second)) == {"level": "1"}
    assert ok(board, "spi.jedec", "1")["id"] == f"0x{spec.spi[0].jedec:06X}"


def test_s3_board_is_what_the_line_expects() -> None:
    spec = load_model(ROOT / "fixtures" / "sim" / "board-s3-devkit.yaml", BoardSpec)
    board = running(spec)
    assert len(spec.gpio.loopbacks) == 3
    assert ok(board, "gpio.get", "0") == {"level": "1"}
    assert ok(board, "i2c.read", "0", "0x68", "0x75", "1") == {"data": "68"}
    assert ok(board, "i2c.probe", "0", "0x44") == {"ack": "1"}
    assert ok(board, "spi.jedec", "1") == {"id": "0xEF4017"}
    assert abs(int(ok(board, "adc.read", "3", samples="16")["mv"]) - 1650) < 20
    assert {"3v3", "1v8"} <= set(board.rails)
    assert 25 < board.current_ma() < 40  # idle after boot


@pytest.mark.parametrize(
    "change",
    [
        {"colour": "red"},
        {"gpio": {"loopbacks": [[4, 5]], "pulls": {}}},
        {"faults": {"stuck_gpio": [{"pin": 5, "level": 0, "why": "x"}]}},
        {"faults": {"bogus": 1}},
        {"latency_ms": {"gpoi": 1.0}},
        {"gpio": {"count": 10, "loopbacks": [[4, 12]]}},
        {"gpio": {"loopbacks": [[4, 5], [5, 6]]}},
        {"faults": {"rail_v": {"5v0": 4.0}}},
        {"mac_prefix": "24-0a-c4"},
    ],
)
def test_spec_rejects_unknown_or_inconsistent_keys(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BoardSpec.model_validate({**FAST_BOARD, **change})


def test_load_model_names_the_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("board: x\nchip: esp32s3\ncurrent_ma: {}\nwifi: on\n")
    with pytest.raises(InputError):
        load_model(path, BoardSpec)


def test_with_faults_replaces_whole_keys() -> None:
    spec = make_spec(faults={"missing_i2c": [0x44], "jedec_id": 0x123456})
    merged = spec.with_faults({"jedec_id": 0xC84016, "no_ready": True})
    assert merged.faults.missing_i2c == (0x44,)
    assert merged.faults.jedec_id == 0xC84016
    assert merged.faults.no_ready
    with pytest.raises(ValidationError):
        spec.with_faults({"stuck_gpio": [{"pin": 99, "level": 0}]})


# ---- determinism ----------------------------------------------------------------------


def test_same_seed_and_slot_is_the_same_unit() -> None:
    a, b = running(seed=1234, slot=2), running(seed=1234, slot=2)
    assert a.mac == b.mac
    assert a.current_ma() == b.current_ma()
    assert a.rail_v("3v3") == b.rail_v("3v3")
    assert ok(a, "adc.read", "3") == ok(b, "adc.read", "3")


def test_other_slot_or_seed_is_another_unit() -> None:
    base = running(seed=1234, slot=1)
    for other in (running(seed=1234, slot=2), running(seed=1235, slot=1)):
        assert other.mac != base.mac
        assert other.mac.startswith("24:0a:c4:")
        assert other.current_ma() != base.current_ma()
        assert other.rail_v("3v3") != base.rail_v("3v3")


def test_per_unit_values_stay_within_their_spread() -> None:
    for slot in range(1, 30):
        board = running(slot=slot)
        assert 3.285 <= board.rail_v("3v3") <= 3.315
        assert 30 <= board.current_ma() <= 34
        mv = int(ok(board, "adc.read", "3", samples="1024")["mv"])
        assert 1645 <= mv <= 1655


# ---- commands -------------------------------------------------------------------------


def test_info_and_ready_describe_the_unit() -> None:
    board = running()
    info = ok(board, "info")
    assert info == {
        "proto": "1",
        "fw": "ate-testfw/1.2.3",
        "chip": "esp32s3",
        "mac": board.mac,
        "idf": "v5.3",
        "role": "dut",
    }
    ready = parse_device_line(board.ready_notice().decode().rstrip("\n"))
    assert getattr(ready, "fields", None) == {
        "proto": "1",
        "fw": "ate-testfw/1.2.3",
        "chip": "esp32s3",
        "mac": board.mac,
    }


def test_gpio_loopback_follows_the_driven_level() -> None:
    board = running()
    ok(board, "gpio.mode", "4", "out")
    ok(board, "gpio.mode", "5", "in")
    for level in ("1", "0", "1"):
        ok(board, "gpio.set", "4", level)
        assert ok(board, "gpio.get", "5") == {"level": level}
    assert ok(board, "gpio.get", "4") == {"level": "1"}  # the output reads back its level


def test_undriven_inputs_read_their_pull() -> None:
    board = running()
    ok(board, "gpio.mode", "10", "in_pullup")
    ok(board, "gpio.mode", "11", "in_pulldown")
    assert ok(board, "gpio.get", "10") == {"level": "1"}
    assert ok(board, "gpio.get", "11") == {"level": "0"}
    assert ok(board, "gpio.get", "12") == {"level": "0"}  # floating
    assert ok(board, "gpio.get", "0") == {"level": "1"}  # boot button's external pull-up
    ok(board, "gpio.mode", "6", "in_pullup")  # a pull on one end of a wire pulls both
    assert ok(board, "gpio.get", "7") == {"level": "1"}


def test_gpio_errors() -> None:
    board = running()
    assert err(board, "gpio.set", "4", "1") == "EARG"  # not an output
    assert err(board, "gpio.get", "40") == "EARG"  # beyond gpio.count
    assert err(board, "gpio.mode", "4", "analog") == "EARG"
    assert err(board, "gpio.mode", "30", "out") == "EHW"  # reserved for the module
    assert err(board, "gpio.get", "x") == "EARG"
    ok(board, "gpio.mode", "4", "out")
    assert err(board, "gpio.set", "4", "2") == "EARG"
    assert err(board, "gpio.get") == "EARG"
    assert err(board, "gpio.get", "4", "5") == "EARG"


def test_i2c_read_write_probe() -> None:
    board = running()
    assert ok(board, "i2c.probe", "0", "0x68") == {"ack": "1"}
    assert ok(board, "i2c.probe", "0", "0x50") == {"ack": "0"}
    assert ok(board, "i2c.probe", "1", "0x68") == {"ack": "0"}  # other bus
    assert ok(board, "i2c.read", "0", "0x68", "0x75", "1") == {"data": "68"}
    assert ok(board, "i2c.read", "0", "0x44", "0x7e", "2") == {"data": "5449"}
    assert ok(board, "i2c.read", "0", "0x44", "0xff", "2") == {"data": "0000"}  # wraps
    ok(board, "i2c.write", "0", "0x68", "0x10", "a1b2")
    assert ok(board, "i2c.read", "0", "0x68", "0x10", "2") == {"data": "a1b2"}
    assert err(board, "i2c.read", "0", "0x50", "0", "1") == "EHW"
    assert err(board, "i2c.write", "0", "0x50", "0", "00") == "EHW"
    assert err(board, "i2c.read", "2", "0x68", "0", "1") == "EARG"
    assert err(board, "i2c.read", "0", "0x68", "0", "0") == "EARG"
    assert err(board, "i2c.write", "0", "0x68", "0", "abc") == "EARG"


def test_spi_jedec_and_xfer() -> None:
    board = running()
    assert ok(board, "spi.jedec", "1") == {"id": "0xEF4017"}
    assert ok(board, "spi.xfer", "1", "9f000000") == {"data": "ffef4017"}
    assert ok(board, "spi.xfer", "1", "9f00") == {"data": "ffef"}
    assert ok(board, "spi.xfer", "1", "0500") == {"data": "ff00"}
    assert ok(board, "spi.xfer", "1", "0300") == {"data": "ffff"}
    assert err(board, "spi.jedec", "2") == "EHW"  # nothing on that bus
    assert err(board, "spi.jedec", "9") == "EARG"
    assert err(board, "spi.xfer", "1", "9") == "EARG"


def test_adc_averages_samples() -> None:
    board = running()
    spread = {int(ok(board, "adc.read", "3")["mv"]) for _ in range(40)}
    assert len(spread) > 1  # single samples are noisy
    averaged = {int(ok(board, "adc.read", "3", samples="1024")["mv"]) for _ in range(10)}
    assert max(averaged) - min(averaged) <= 1
    assert int(ok(board, "adc.read", "5")["mv"]) < 100  # floating input
    assert err(board, "adc.read", "20") == "EARG"
    assert err(board, "adc.read", "3", samples="0") == "EARG"
    assert err(board, "adc.read", "3", count="4") == "EARG"


def test_power_modes_set_the_current() -> None:
    board = running()
    idle = board.current_ma()
    ok(board, "power.mode", "active")
    assert 81 <= board.current_ma() <= 89
    ok(board, "power.mode", "idle")
    assert board.current_ma() == idle
    ok(board, "power.mode", "light_sleep", hold_ms="50")
    action = board.take_action()
    assert action is not None and action.kind == "light_sleep" and action.hold_s == 0.05
    board.sleep(action.kind)
    assert 0.75 <= board.current_ma() <= 0.85
    assert not board.listening
    assert board.wake()
    assert board.listening and board.current_ma() == idle
    ok(board, "power.mode", "deep_sleep")
    action = board.take_action()
    assert action is not None and action.kind == "deep_sleep" and action.hold_s == 1.0
    board.sleep(action.kind)
    assert 0.011 <= board.current_ma() <= 0.013
    assert not board.wake()  # deep sleep wakes by rebooting
    assert board.phase is Phase.BOOTING and board.reset_reason == "deepsleep"
    board.power_off()
    assert board.current_ma() == 0.0
    assert err(running(), "power.mode", "turbo") == "EARG"


def test_rf_golden_reports_the_units_figures() -> None:
    board = running()
    f = ok(board, "rf.golden", "6", "200")
    assert -49 < float(f["rssi"]) < -41
    assert -7 < float(f["freq_offset"]) < 7
    assert 0 <= float(f["per"]) <= 5
    assert (float(f["per"]) * 2) == int(float(f["per"]) * 2)  # whole packets of 200
    assert err(board, "rf.golden", "15", "100") == "EARG"
    assert err(board, "rf.golden", "1", "0") == "EARG"


def test_uptime_counts_from_boot_and_reboot_restarts() -> None:
    clock = Clock()
    board = SimBoard(make_spec(), clock=clock)
    board.power_on()
    clock.t += 0.25
    board.finish_boot()
    assert ok(board, "sys.uptime") == {"ms": "250"}
    ok(board, "sys.reboot")
    action = board.take_action()
    assert action is not None and action.kind == "reboot"
    board.restart("sw")
    assert not board.listening
    assert board.handle(Request(1, "ping")) == b""
    board.finish_boot()
    assert ok(board, "sys.uptime") == {"ms": "0"}


def test_unknown_command_and_bad_arity() -> None:
    board = running()
    assert err(board, "gpio.toggle", "4") == "EUNKNOWN"
    assert err(board, "power.set", "1", "1") == "EUNKNOWN"  # that's the controller's
    assert err(board, "ping", "extra") == "EARG"
    assert err(board, "info", verbose="1") == "EARG"


def test_resend_with_the_same_id_is_answered_not_executed() -> None:
    clock = Clock()
    board = running(clock=clock)
    first = board.handle(Request(42, "sys.uptime"))
    clock.t += 5
    assert board.handle(Request(42, "sys.uptime")) == first  # same bytes, old uptime
    assert board.handle(Request(43, "sys.uptime")) != first
    ok(board, "gpio.mode", "4", "out")
    set_high = board.handle(Request(44, "gpio.set", ("4", "1")))
    board.driven[4] = 0  # had it executed again, the pin would be high again
    assert board.handle(Request(44, "gpio.set", ("4", "1"))) == set_high
    assert board.driven[4] == 0


def test_unpowered_board_answers_nothing() -> None:
    board = SimBoard(make_spec())
    assert board.handle(Request(1, "ping")) == b""
    assert board.current_ma() == 0.0
    assert board.rail_v("3v3") == 0.0
    board.power_on()
    assert board.handle(Request(1, "ping")) == b""  # still booting


# ---- faults ---------------------------------------------------------------------------


def test_stuck_gpio_reads_its_level_whatever_is_driven() -> None:
    board = running(make_spec(faults={"stuck_gpio": [{"pin": 5, "level": 0}]}))
    ok(board, "gpio.mode", "4", "out")
    ok(board, "gpio.set", "4", "1")
    assert ok(board, "gpio.get", "5") == {"level": "0"}
    assert ok(board, "gpio.get", "4") == {"level": "1"}  # only that pin's reading
    ok(board, "gpio.mode", "6", "out")  # the other pair is fine
    ok(board, "gpio.set", "6", "1")
    assert ok(board, "gpio.get", "7") == {"level": "1"}


def test_shorted_gpio_is_a_wired_and() -> None:
    def loop_both(board: SimBoard) -> tuple[str, str]:
        ok(board, "gpio.mode", "4", "out")
        ok(board, "gpio.mode", "6", "out")
        ok(board, "gpio.set", "4", "1")
        ok(board, "gpio.set", "6", "0")
        return ok(board, "gpio.get", "5")["level"], ok(board, "gpio.get", "7")["level"]

    assert loop_both(running()) == ("1", "0")
    assert loop_both(running(make_spec(faults={"shorted_gpio": [[5, 6]]}))) == ("0", "0")
    shorted = running(make_spec(faults={"shorted_gpio": [[20, 21]]}))
    ok(shorted, "gpio.mode", "20", "out")
    ok(shorted, "gpio.set", "20", "1")
    assert ok(shorted, "gpio.get", "21") == {"level": "1"}


def test_missing_i2c_nacks_only_that_device() -> None:
    board = running(make_spec(faults={"missing_i2c": [0x68]}))
    assert ok(board, "i2c.probe", "0", "0x68") == {"ack": "0"}
    assert err(board, "i2c.read", "0", "0x68", "0x75", "1") == "EHW"
    assert err(board, "i2c.write", "0", "0x68", "0x6b", "00") == "EHW"
    assert ok(board, "i2c.probe", "0", "0x44") == {"ack": "1"}


def test_jedec_fault_reports_the_wrong_id() -> None:
    board = running(make_spec(faults={"jedec_id": 0xC84016}))
    assert ok(board, "spi.jedec", "1") == {"id": "0xC84016"}
    assert ok(board, "spi.xfer", "1", "9f000000") == {"data": "ffc84016"}


def test_over_current_only_in_its_mode() -> None:
    good = running()
    bad = running(make_spec(faults={"over_current": {"mode": "active", "factor": 3}}))
    assert bad.current_ma() == good.current_ma()  # idle unaffected
    for board in (good, bad):
        ok(board, "power.mode", "active")
    assert bad.current_ma() == pytest.approx(3 * good.current_ma())


def test_rail_fault_pins_one_rail() -> None:
    good = running()
    bad = running(make_spec(faults={"rail_v": {"1v8": 1.62}}))
    assert bad.rail_v("1v8") == 1.62
    assert bad.rail_v("3v3") == good.rail_v("3v3")
    bad.power_off()
    assert bad.rail_v("1v8") == 0.0
    with pytest.raises(KeyError):
        good.rail_v("5v0")


def test_hang_after_answers_n_then_nothing_until_reset() -> None:
    board = running(make_spec(faults={"hang_after": 3}))
    for _ in range(3):
        ok(board, "ping")
    assert board.handle(Request(900, "ping")) == b""
    assert board.hung and not board.listening
    assert board.handle(Request(901, "ping")) == b""
    board.reset()
    board.finish_boot()
    ok(board, "ping")


def test_no_ready_boots_mute() -> None:
    board = SimBoard(make_spec(faults={"no_ready": True}))
    board.power_on()
    assert board.boot_text()  # the noise still comes
    assert not board.finish_boot()
    assert board.handle(Request(1, "ping")) == b""
    assert board.current_ma() > 0


def test_drop_reply_loses_lines() -> None:
    line = running().handle(Request(1, "ping"))
    always = running(make_spec(faults={"drop_reply": {"probability": 1.0}}))
    never = running(make_spec(faults={"drop_reply": {"probability": 0.0}}))
    assert always.on_wire(line) == b""
    assert never.on_wire(line) == line
    half = running(make_spec(faults={"drop_reply": {"probability": 0.5}}))
    lost = sum(half.on_wire(line) == b"" for _ in range(400))
    assert 140 < lost < 260


def test_garbage_on_its_own_line_leaves_the_reply_intact() -> None:
    board = running(make_spec(faults={"garbage": {"probability": 1.0, "max_bytes": 8}}))
    line = board.handle(Request(5, "gpio.get", ("0",)))
    for _ in range(50):
        out = board.on_wire(line)
        assert out.endswith(b"\n" + line) and len(out) > len(line) + 1


def test_garbage_mid_line_sometimes_corrupts_sometimes_just_prefixes() -> None:
    faults = {"garbage": {"probability": 1.0, "max_bytes": 6, "mid_line": True}}
    board = running(make_spec(faults=faults))
    line = board.handle(Request(5, "gpio.get", ("0",)))
    kinds = set()
    for _ in range(100):
        events = DeviceDecoder().feed(board.on_wire(line))
        last = events[-1]
        if isinstance(last, Reply):
            assert last == Reply(5, {"level": "1"})
            kinds.add("glued")
        else:
            assert isinstance(last, Corrupt | LogLine)
            kinds.add("corrupt")
    assert kinds == {"glued", "corrupt"}


def test_wire_faults_are_deterministic_per_unit() -> None:
    faults = {"garbage": {"probability": 0.5, "mid_line": True}, "drop_reply": {"probability": 0.2}}
    a, b = running(make_spec(faults=faults)), running(make_spec(faults=faults))
    line = a.handle(Request(1, "ping"))
    assert [a.on_wire(line) for _ in range(30)] == [b.on_wire(line) for _ in range(30)]


# ---- properties -----------------------------------------------------------------------

_token = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=" \t\n\r*="),
    min_size=1,
    max_size=12,
)
_numberish = st.one_of(st.integers(-5, 70_000).map(str), st.integers(0, 0xFFFFFF).map(hex), _token)
_command = st.one_of(
    st.sampled_from(COMMANDS), st.from_regex(r"[a-z]{1,6}(\.[a-z]{1,6})?", fullmatch=True)
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 0xFFFF),
            _command,
            st.lists(
                st.one_of(_numberish, st.sampled_from(["out", "in", "in_pullup", "idle"])),
                max_size=5,
            ),
            st.dictionaries(st.sampled_from(["samples", "hold_ms", "x"]), _numberish, max_size=2),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_handle_never_raises_and_always_answers_well_formed(
    requests: list[tuple[int, str, list[str], dict[str, str]]],
) -> None:
    faults = {"garbage": {"probability": 0.3, "mid_line": True}}
    board = running(make_spec(faults=faults))
    for rid, command, args, kwargs in requests:
        line = board.handle(Request(rid, command, tuple(args), kwargs))
        if not board.listening:
            break  # a sleep or reboot was requested and applied below
        event = parse_device_line(line.decode("ascii").rstrip("\n"))
        assert isinstance(event, Reply | ErrorReply) and event.id == rid
        board.on_wire(line)
        action = board.take_action()
        if action is not None and action.kind == "reboot":
            board.restart("sw")
        elif action is not None:
            board.sleep(action.kind)


@given(st.binary(max_size=300))
def test_reject_answers_eproto_for_any_corrupt_text(data: bytes) -> None:
    board = running()
    text = data.decode("utf-8", "replace")
    line = board.reject(Corrupt("!" + text, "checksum mismatch"))
    event = parse_device_line(line.decode("ascii").rstrip("\n"))
    assert isinstance(event, ErrorReply) and event.code == "EPROTO"


def test_same_id_with_another_request_is_executed_not_replayed() -> None:
    """Rule 4 keys the cache on the whole request: a new host session that starts again
    at id 1 must not receive the previous session's answer."""
    board = running()
    first = board.handle(Request(1, "gpio.mode", ("4", "out")))
    assert board.handle(Request(1, "gpio.mode", ("4", "out"))) == first  # a resend
    board.handle(Request(2, "gpio.set", ("4", "1")))
    assert board.driven.get(4) == 1
    board.handle(Request(2, "gpio.set", ("4", "0")))  # same id, another request: executed
    assert board.driven.get(4) == 0
    board.handle(Request(2, "gpio.set", ("4", "0")))
    assert board.requests_since_boot == 5
