"""Every kind of bad input gives one InputError naming file, line, column and the fix."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ate.config.errors import InputError
from ate.config.fixture import Fixture
from ate.config.loader import (
    check_compatible,
    load_fixture,
    load_model,
    load_sequence,
)
from ate.config.sequence import Sequence

Write = Callable[..., tuple[Path, int | None, int | None]]

GOOD_STEP = """
steps:
  - name: idle_current
    type: supply_current
    mode: idle
    limits: {low: 20, high: 45, unit: mA}
"""


def error_of(load: Callable[[Path], object], path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        load(path)
    return info.value


def check(err: InputError, path: Path, line: int | None, column: int | None, *phrases: str) -> None:
    assert (err.path, err.line, err.column) == (str(path), line, column), str(err)
    for phrase in phrases:
        assert phrase in err.message, str(err)
    assert str(err).startswith(f"{path}:{line}:{column}: ")
    assert "\n" not in str(err)
    assert "pydantic" not in str(err) and "Input should be" not in str(err)


# --- the file itself ---------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    err = error_of(load_sequence, path)
    assert (err.path, err.line, err.column) == (str(path), None, None)
    assert str(err) == f"{path}: no such file"


def test_unreadable_file(
    write: Write, seq: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, _ = write(seq(GOOD_STEP))

    real_open = os.open

    def denied(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(name) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(name, flags, *args, **kwargs)

    # chmod does not stop root, which CI containers often are; fake the OS refusing.
    monkeypatch.setattr(os, "open", denied)
    err = error_of(load_sequence, path)
    assert str(err) == f"{path}: cannot be read: Permission denied"


def test_folder_instead_of_file(tmp_path: Path) -> None:
    err = error_of(load_sequence, tmp_path)
    assert "is a folder" in str(err)


def test_not_utf8(write: Write) -> None:
    path, _, _ = write("sequence: t\n")
    path.write_bytes(b"sequence: t\nversion: caf\xe9\n")
    check(error_of(load_sequence, path), path, 2, 13, "not UTF-8")


def test_empty_file(write: Write) -> None:
    path, _, _ = write("# nothing yet\n")
    check(error_of(load_sequence, path), path, 1, 1, "the file is empty", "sequence, version")


def test_document_not_a_mapping(write: Write) -> None:
    path, line, column = write("\n»- name: a\n- name: b\n")
    check(error_of(load_sequence, path), path, line, column, "holds a list", "'key: value'")


# --- YAML syntax -------------------------------------------------------------------------


def test_malformed_yaml(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: a
            type: gpio_read
            pin: [1, 2
            expect»: 1
        """)
    )
    check(error_of(load_sequence, path), path, line, column, "not valid YAML", "flow sequence")


def test_tab_indentation(write: Write) -> None:
    path, line, column = write("sequence: t\ntest_firmware:\n»\tpath: x\n")
    check(error_of(load_sequence, path), path, line, column, "not valid YAML", "not tabs")


def test_duplicate_key_in_step(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: idle_current
            type: supply_current
            mode: idle
            limits: {low: 20, high: 45, unit: mA}
            »limits: {low: 0, unit: mA}
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "duplicate key 'limits'",
        f"first at line {(line or 0) - 1}, column 5",
    )


def test_duplicate_key_in_flow_mapping(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: idle_current
            type: supply_current
            mode: idle
            limits: {low: 20, high: 45, »low: 30, unit: mA}
        """)
    )
    check(error_of(load_sequence, path), path, line, column, "duplicate key 'low'")


# --- the step union ----------------------------------------------------------------------


def test_unknown_step_type(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: loop
            type: »gpio_lop
            pairs: [[4, 5]]
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "unknown step type 'gpio_lop'; allowed: adc, ble, gpio_loopback, gpio_read, i2c_probe, "
        "i2c_read, plugin, prompt, rail_voltage, rf_golden, spi_jedec, spi_transfer, "
        "supply_current, wifi_rx, wifi_tx",
        "did you mean 'gpio_loopback'",
    )


def test_missing_step_type(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - »name: loop
            pairs: [[4, 5]]
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "missing field 'type' in step 'loop'",
        "allowed step types: adc, ble, gpio_loopback",
    )


def test_unknown_field_points_at_key(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: idle_current
            type: supply_current
            mode: idle
            »limts: {low: 20, high: 45, unit: mA}
        """)
    )
    err = error_of(load_sequence, path)
    # The missing `limits` is the same mistake; the unknown field explains it.
    check(
        err,
        path,
        line,
        column,
        "unknown field 'limts' in step 'idle_current'; allowed: name, description, timeout, "
        "retries, uses, needs, when, scope, on_abort, type, mode, samples, settle, limits",
        "did you mean 'limits'?",
        "(and 1 more problem)",
    )


def test_unknown_field_in_nested_mapping(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: idle_current
            type: supply_current
            mode: idle
            limits: {low: 20, »hihg: 45, unit: mA}
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "unknown field 'hihg' in 'limits' of step 'idle_current'; allowed: low, high, unit, expect",
    )


def test_unknown_top_level_field(write: Write) -> None:
    path, line, column = write("sequence: t\n»on_failur: stop\n")
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "unknown field 'on_failur' at the top level; allowed: sequence, version",
        "did you mean 'on_failure'?",
    )


def test_alias_named_field_is_listed_by_alias(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: whoami
            type: i2c_read
            address: 0x68
            register: 0x75
            »regsiter: 0x75
            expect: 0x68
        """)
    )
    check(error_of(load_sequence, path), path, line, column, "allowed:", "register", "'register'?")


def test_missing_required_field_points_at_mapping(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: ok
            type: gpio_read
            pin: 0
            expect: 1
          - »name: idle_current
            type: supply_current
            limits: {low: 20, high: 45, unit: mA}
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "missing required field 'mode' in step 'idle_current'",
        "one of: idle, active, light_sleep, deep_sleep",
    )


def test_missing_top_level_field(write: Write) -> None:
    path, line, column = write(
        "»sequence: t\nversion: 1.0.0\nchip: esp32s3\n"
        "steps: [{name: a, type: gpio_read, pin: 0, expect: 1}]\n"
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "missing required field 'test_firmware' at the top level",
    )


def test_missing_field_sorts_after_problems_inside_its_mapping(write: Write) -> None:
    path, line, column = write("sequence: t\nversion: 1.0.0\nchip: esp32s3\nsteps: »[]\n")
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "steps: needs at least 1 item(s), got 0",
        "(and 1 more problem)",
    )


# --- limits and units --------------------------------------------------------------------


def test_inverted_limits(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: idle_current
            type: supply_current
            mode: idle
            limits: {low: »45, high: 20, unit: mA}
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "limits.low in step 'idle_current'",
        "inverted limits: low 45 is above high 20",
    )


def test_unit_does_not_fit_measurement(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: idle_current
            type: supply_current
            mode: idle
            limits:
              low: 20
              high: 45
              unit: »V
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "unit 'V' does not fit a current measurement; allowed: 'A', 'mA', 'uA'",
    )


def test_unit_does_not_fit_rf_limit(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: rf
            type: rf_golden
            rssi: {low: -65, high: -35, unit: dBm}
            per: {high: 10, unit: »ppm}
        """)
    )
    check(error_of(load_sequence, path), path, line, column, "per.unit in step 'rf'", "'%'")


def test_unknown_unit(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: idle_current
            type: supply_current
            mode: idle
            limits: {low: 20, high: 45, unit: »mAh}
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "unknown unit 'mAh'; allowed: A, mA, uA, V, mV, dBm, ppm, %",
    )


def test_limits_not_a_number(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: idle_current
            type: supply_current
            mode: idle
            limits: {low: »twenty, high: 45, unit: mA}
        """)
    )
    check(error_of(load_sequence, path), path, line, column, "expected a number, got 'twenty'")


# --- other values --------------------------------------------------------------------------


def test_duplicate_step_name_points_at_second(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: boot
            type: gpio_read
            pin: 0
            expect: 1
          - name: »boot
            type: gpio_read
            pin: 9
            expect: 1
        """)
    )
    check(error_of(load_sequence, path), path, line, column, "step name 'boot' is used twice")


def test_bad_duration(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: boot
            type: gpio_read
            pin: 0
            expect: 1
            timeout: »2 seconds
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "timeout in step 'boot'",
        "duration '2 seconds'",
        "'500ms', '2s', '1min'",
    )


def test_bad_default_duration(write: Write) -> None:
    path, line, column = write(
        "sequence: t\nversion: 1.0.0\nchip: esp32s3\ntest_firmware: {path: fw.bin}\n"
        "defaults: {timeout: »soon}\nsteps: [{name: a, type: gpio_read, pin: 0, expect: 1}]\n"
    )
    check(error_of(load_sequence, path), path, line, column, "defaults.timeout: duration 'soon'")


def test_literal_choices(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: boot
            type: gpio_read
            pin: 0
            expect: 1
            pull: »sideways
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "pull in step 'boot': 'sideways' is not allowed; allowed: none, up, down",
    )


def test_version_number_needs_quotes(write: Write) -> None:
    path, line, column = write(
        "sequence: t\nversion: »1.0\nchip: esp32s3\ntest_firmware: {path: fw.bin}\n"
        "steps: [{name: a, type: gpio_read, pin: 0, expect: 1}]\n"
    )
    check(error_of(load_sequence, path), path, line, column, "version: expected text", "quotes")


def test_range_and_hex_hint(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: imu
            type: i2c_probe
            address: »0x80
        """)
    )
    check(
        error_of(load_sequence, path), path, line, column, "must be at most 119, got the number 128"
    )


def test_spi_length_mismatch_points_at_field(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: rdid
            type: spi_transfer
            tx: "9f000000"
            expect: "00ef4017"
            mask: »"00ff"
        """)
    )
    check(error_of(load_sequence, path), path, line, column, "mask has 2 bytes but tx has 4")


def test_model_rule_points_at_step(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - »name: whoami
            type: i2c_read
            address: 0x68
            register: 0x75
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "step 'whoami': give exactly one of expect or limits",
    )


def test_step_not_a_mapping(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(seq("steps:\n  - »gpio_read\n"))
    check(error_of(load_sequence, path), path, line, column, "step 1", "'key: value'")


def test_several_problems_report_first_in_document_order(
    write: Write, seq: Callable[[str], str]
) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: a
            type: gpio_read
            pin: »99
            expect: 1
          - name: b
            type: gpio_read
            pin: 0
            expect: 7
          - name: c
            type: supply_current
            mode: idle
            limits: {low: 2, high: 1}
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "pin in step 'a': must be at most 48, got the number 99",
        "(and 2 more problems)",
    )


# --- checks beyond the model ----------------------------------------------------------------


def test_firmware_missing(write: Write) -> None:
    path, line, column = write(
        "sequence: t\nversion: 1.0.0\nchip: esp32s3\ntest_firmware:\n  path: »missing.bin\n"
        "steps: [{name: a, type: gpio_read, pin: 0, expect: 1}]\n"
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "test firmware 'missing.bin' not found",
        "relative to the sequence file",
    )


def test_firmware_relative_to_sequence_file(write: Write, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path, _, _ = write(
        "sequence: t\nversion: 1.0.0\nchip: esp32s3\ntest_firmware: {path: ../fw.bin}\n"
        "steps: [{name: a, type: gpio_read, pin: 0, expect: 1}]\n",
        "sub/seq.yaml",
    )
    loaded = load_sequence(path)
    assert loaded.firmware_path.resolve() == (tmp_path / "fw.bin").resolve()
    assert len(loaded.firmware_sha256) == 64


def test_plugin_not_installed(write: Write, seq: Callable[[str], str]) -> None:
    path, line, column = write(
        seq("""
        steps:
          - name: gauge
            type: plugin
            plugin: »acme.battery_gauge
        """)
    )
    check(
        error_of(load_sequence, path),
        path,
        line,
        column,
        "plugin 'acme.battery_gauge' of step 'gauge' is not installed",
        "group ate.steps",
        "installed: ate.example.uptime",
    )


def test_installed_plugin_loads(write: Write, seq: Callable[[str], str]) -> None:
    path, _, _ = write(
        seq("""
        steps:
          - name: uptime
            type: plugin
            plugin: ate.example.uptime
            params: {min_ms: 10}
        """)
    )
    assert load_sequence(path).model.steps[0].name == "uptime"


def test_load_model_keeps_its_contract(write: Write, seq: Callable[[str], str]) -> None:
    path, _, _ = write(seq(GOOD_STEP))
    model = load_model(path, Sequence)
    assert isinstance(model, Sequence) and model.steps[0].name == "idle_current"
    with pytest.raises(InputError):
        load_model(path, Fixture)


# --- fixtures -----------------------------------------------------------------------------


def test_two_slots_on_one_port(write: Write, fixture_text: Callable[[str], str]) -> None:
    path, line, column = write(
        fixture_text("""
        slots:
          - {slot: 1, port: /dev/serial/by-id/usb-FTDI_A, power: 0, current_sense: 0}
          - {slot: 2, port: »/dev/serial/by-id/usb-FTDI_A, power: 1, current_sense: 1}
        """),
        "fixture.yaml",
    )
    check(
        error_of(load_fixture, path),
        path,
        line,
        column,
        "slots 1 and 2 are on one port",
        "each slot needs its own",
    )


def test_unstable_port_name(write: Write, fixture_text: Callable[[str], str]) -> None:
    path, line, column = write(
        fixture_text("""
        slots:
          - slot: 1
            port: »/dev/ttyUSB0
            power: 0
            current_sense: 0
        """),
        "fixture.yaml",
    )
    check(
        error_of(load_fixture, path),
        path,
        line,
        column,
        "port in slot 1: /dev/ttyUSB0 changes across reboots",
        "/dev/serial/by-path/",
    )


def test_two_slots_with_one_number(write: Write, fixture_text: Callable[[str], str]) -> None:
    path, line, column = write(
        fixture_text("""
        slots:
          - {slot: 1, port: sim, power: 0, current_sense: 0}
          - {slot: »1, port: sim, power: 1, current_sense: 1}
        """),
        "fixture.yaml",
    )
    check(error_of(load_fixture, path), path, line, column, "two slots have the number 1")


def test_bad_dict_key_points_at_key(write: Write, fixture_text: Callable[[str], str]) -> None:
    path, line, column = write(
        "fixture: bench\ncontroller: {driver: sim}\nsimulation:\n  board: b.yaml\n  slots:\n"
        "    »two: {empty: true}\nslots: [{slot: 1, port: sim, power: 0, current_sense: 0}]\n",
        "fixture.yaml",
    )
    check(error_of(load_fixture, path), path, line, column, "key 'two'", "whole number")


def test_uses_undeclared_resource(
    write: Write, seq: Callable[[str], str], fixture_text: Callable[[str], str]
) -> None:
    seq_path, line, column = write(
        seq("""
        steps:
          - name: rail_3v3
            type: rail_voltage
            rail: 3v3
            uses: [dmm, »scope]
            limits: {low: 3.2, high: 3.4, unit: V}
        """)
    )
    fix_path, _, _ = write(
        fixture_text("""
        slots: [{slot: 1, port: sim, power: 0, current_sense: 0}]
        resources:
          dmm: {kind: dmm}
          golden: {kind: golden_board}
        """),
        "fixture.yaml",
    )
    with pytest.raises(InputError) as info:
        check_compatible(load_sequence(seq_path), load_fixture(fix_path))
    check(
        info.value,
        seq_path,
        line,
        column,
        "step 'rail_3v3' uses 'scope', which fixture 'bench'",
        "its resources: dmm, golden",
    )
