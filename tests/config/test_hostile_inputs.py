"""Hostile input files through the command line: each class of bad input is exit code 2
and exactly one line naming file:line:col and what is allowed, never a traceback, never
a hang, never a secret echoed."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ate.cli.main import main
from ate.config.files import size_text
from ate.sim.devkit import DevKit, make_dev_profile

Write = Callable[..., tuple[Path, int | None, int | None]]
ROOT = Path(__file__).resolve().parents[2]
# As in conftest.py, whose `write` fixture puts fw.bin and board.yaml next to each file.
HEADER = "sequence: t\nversion: 1.0.0\nchip: esp32s3\ntest_firmware: {path: fw.bin}\n"
FIXTURE_HEADER = "fixture: bench\ncontroller: {driver: sim}\nsimulation: {board: board.yaml}\n"
C3_IMAGE = ROOT / "firmware" / "test_fw" / "sim" / "ate_test_fw-esp32c3.bin"

STEP = """\
steps:
  - name: a
    type: supply_current
    mode: idle
    limits: {low: 20, high: 45, unit: mA}
"""


def refused(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    """Run `ate ARGV`; it must exit 2 with one line on stderr. Returns that line.

    Runs on a daemon thread with a deadline, so that a hang (a FIFO read) fails the test
    instead of stopping the suite.
    """
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(main([str(a) for a in argv])))
    worker.daemon = True
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), f"ate {argv} hangs"
    out, err = capsys.readouterr()
    assert result == [2], (result, out, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def validate(capsys: pytest.CaptureFixture[str], *files: Path) -> str:
    return refused(capsys, "validate", *files)


# --- class 1: numbers that are not finite --------------------------------------------------


@pytest.mark.parametrize("number", [".nan", ".NaN", ".inf", "-.inf", "+.inf", "1e999", "1.0e+999"])
def test_non_finite_number_in_a_sequence(
    write: Write, capsys: pytest.CaptureFixture[str], number: str
) -> None:
    path, line, column = write(HEADER + STEP.replace("low: 20", f"low: »{number}"))
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: '{number}' is not a finite number; numbers must be finite"
    )


def test_non_finite_number_in_a_fixture(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path, line, column = write(
        FIXTURE_HEADER + "clamp: »-.inf\nslots:\n  - {slot: 1, port: sim, power: 0, "
        "current_sense: 0}\n",
        "fixture.yaml",
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: '-.inf' is not a finite number; numbers must be finite"
    )


def test_non_finite_number_in_a_board_description(
    write: Write, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fixture, _, _ = write(
        FIXTURE_HEADER + "slots:\n  - {slot: 1, port: sim, power: 0, current_sense: 0}\n",
        "fixture.yaml",
    )
    board = tmp_path / "board.yaml"
    text = board.read_text() + "spare: [1, 1e999]\n"
    board.write_text(text)
    line = text.count("\n")
    assert validate(capsys, fixture) == (
        f"{board}:{line}:{len('spare: [1, ') + 1}: '1e999' is not a finite number; "
        "numbers must be finite"
    )


def test_huge_integer_is_not_finite(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path, line, column = write(HEADER + STEP.replace("high: 45", "high: »" + "9" * 400))
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: '{'9' * 37}...' is not a finite number; numbers must be finite"
    )


# --- class 1: size and node limits ---------------------------------------------------------


def test_a_ten_megabyte_sequence_is_refused_within_a_second(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.yaml"
    step = "  - {name: s%d, type: gpio_read, pin: 1, expect: 1}\n"
    with path.open("w") as f:
        f.write(HEADER + "steps:\n")
        for i in range(250_000):
            f.write(step % i)
    size = path.stat().st_size
    assert size > 10_000_000
    # Refused by its size before a byte is parsed (the message says so), not timed here.
    line = validate(capsys, path)
    assert line == f"{path}: is too large ({size_text(size)}); at most 1 MiB allowed"


def test_too_many_nodes_is_refused_while_composing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dense.yaml"
    path.write_text("steps: [" + ",".join(["1"] * 150_000) + "]\n")
    line = validate(capsys, path)
    # Refused while composing, not after: the error points at the node that crossed the
    # limit, not at the end of the document. Nodes counted: the top mapping, the key, the
    # list, then its items: the 100001st node is item 99997.
    column = len("steps: [") + 2 * 99_997 + 1
    assert line == (
        f"{path}:1:{column}: document too large: more than 100000 YAML nodes; an input "
        "file may hold at most 100000"
    )


def test_nesting_too_deep_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 70 + "]" * 70 + "\n")
    # Depth 1 is the top mapping, 2 the first list: depth 65 is the 64th '['.
    assert validate(capsys, path) == (
        f"{path}:1:{3 + 63 + 1}: nested too deeply: more than 64 levels; an input file may "
        "nest at most 64"
    )


def test_alias_bomb_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "laughs.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 7):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    path.write_text("\n".join(lines) + "\n")
    line = validate(capsys, path)  # counted as aliases expand: a billion nodes never built
    assert line.startswith(f"{path}:")
    assert line.endswith(
        ": document too large: more than 100000 YAML nodes after aliases; an input file may "
        "hold at most 100000"
    )


# --- class 1: every named path is a regular file within a cap ------------------------------


def _special(kind: str, where: Path) -> Path:
    if kind == "folder":
        where.mkdir()
    elif kind == "fifo":
        os.mkfifo(where)
    elif kind == "device":
        where.symlink_to("/dev/null")
    elif kind == "huge":
        with where.open("wb") as f:
            f.truncate(17 * 1024 * 1024)  # sparse: costs no disk
    return where


WHAT = {
    "folder": "is a folder, not a regular file",
    "fifo": "is a FIFO (named pipe), not a regular file",
    "device": "is a character device, not a regular file",
    "huge": "is too large (17 MiB); at most 16 MiB allowed",
}


@pytest.mark.parametrize("kind", list(WHAT))
def test_test_firmware_that_is_not_a_regular_file(
    write: Write, capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    target = _special(kind, tmp_path / "odd.bin")
    path, line, column = write(
        HEADER.replace("{path: fw.bin}", "{path: »odd.bin}") + STEP, "seq.yaml"
    )
    shown = target.resolve() if kind != "device" else target  # resolve() follows the link
    if kind == "device":
        shown = Path("/dev/null")
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: test firmware 'odd.bin' ({shown}) {WHAT[kind]}"
    )


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_yaml_file_that_is_not_a_regular_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    target = _special(kind, tmp_path / "seq.yaml")
    assert validate(capsys, target) == f"{target}: {WHAT[kind]}"


def test_board_description_that_is_a_fifo(
    write: Write, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _special("fifo", tmp_path / "board.fifo")
    path, line, column = write(
        FIXTURE_HEADER.replace("{board: board.yaml}", "{board: »board.fifo}")
        + "slots:\n  - {slot: 1, port: sim, power: 0, current_sense: 0}\n",
        "fixture.yaml",
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: simulation.board 'board.fifo': is a FIFO (named pipe), not "
        "a regular file"
    )


# --- class 1: the test firmware is an ESP image for the sequence's chip --------------------


def test_test_firmware_for_another_chip(
    write: Write, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, line, column = write(HEADER.replace("{path: fw.bin}", "{path: »fw.bin}") + STEP)
    shutil.copy(C3_IMAGE, tmp_path / "fw.bin")
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: test firmware 'fw.bin': the image is built for esp32c3, "
        "not esp32s3 (chip id 5 in its extended header; esp32s3 is 9)"
    )


def test_test_firmware_that_is_not_an_image(
    write: Write, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, line, column = write(HEADER.replace("{path: fw.bin}", "{path: »fw.bin}") + STEP)
    (tmp_path / "fw.bin").write_bytes(b"#!/bin/sh\necho hello\n")
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: test firmware 'fw.bin': not an ESP image: its first byte is "
        "0x23, an ESP image starts with 0xe9"
    )


def test_test_firmware_that_is_corrupt(
    write: Write, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, line, column = write(HEADER.replace("{path: fw.bin}", "{path: »fw.bin}") + STEP)
    image = bytearray((tmp_path / "fw.bin").read_bytes())
    image[100] ^= 0xFF  # inside the first segment
    (tmp_path / "fw.bin").write_bytes(bytes(image))
    assert validate(capsys, path).startswith(
        f"{path}:{line}:{column}: test firmware 'fw.bin': corrupt ESP image: checksum "
    )


# --- class 6: ports and channels are compared as what they are -----------------------------

CONTROLLER = """\
fixture: bench
controller: {driver: line, port: "socket://localhost:7000"}
slots:
"""


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("socket://localhost:7001", "socket://127.0.0.1:7001", "127.0.0.1:7001"),
        ("rfc2217://LOCALHOST:7001", "socket://127.0.0.1:7001", "127.0.0.1:7001"),
        (
            "/dev/serial/by-path/pci-0//usb-1",
            "/dev/serial/by-path/x/../pci-0/usb-1",
            "/dev/serial/by-path/pci-0/usb-1",
        ),
    ],
    ids=["localhost", "rfc2217-socket", "dots-and-slashes"],
)
def test_two_slots_on_one_port_however_written(
    write: Write, capsys: pytest.CaptureFixture[str], first: str, second: str, same: str
) -> None:
    path, line, column = write(
        CONTROLLER + f'  - {{slot: 1, port: "{first}", power: 1, current_sense: 1}}\n'
        f'  - {{slot: 2, port: »"{second}", power: 2, current_sense: 2}}\n',
        "fixture.yaml",
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: port in slot 2: slots 1 and 2 are on one port ({same}); "
        "each slot needs its own"
    )


def test_two_links_to_one_adapter_are_one_port(
    write: Write, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tty = tmp_path / "ttyUSB7"
    tty.touch()
    (tmp_path / "by-path-link").symlink_to(tty)
    (tmp_path / "by-id-link").symlink_to(tty)
    # `..` up to / and down into the test's folder: links the test may create.
    up = "/dev/serial/by-path/../../.."
    path, line, column = write(
        CONTROLLER
        + f'  - {{slot: 1, port: "{up}{tmp_path}/by-path-link", power: 1, current_sense: 1}}\n'
        f'  - {{slot: 2, port: »"{up}{tmp_path}/by-id-link", power: 2, current_sense: 2}}\n',
        "fixture.yaml",
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: port in slot 2: slots 1 and 2 are on one port "
        f"({tty.resolve()}); each slot needs its own"
    )


def test_a_slot_on_the_controllers_port(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path, line, column = write(
        CONTROLLER
        + '  - {slot: 1, port: »"socket://127.0.0.1:7000", power: 1, current_sense: 1}\n',
        "fixture.yaml",
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: port in slot 1: slot 1 is on the controller's port "
        "(127.0.0.1:7000); each slot needs a port of its own"
    )


@pytest.mark.parametrize(
    ("channel", "noun"), [("power", "power channel"), ("current_sense", "current-sense channel")]
)
def test_two_slots_on_one_channel(
    write: Write, capsys: pytest.CaptureFixture[str], channel: str, noun: str
) -> None:
    slot2 = "{slot: 2, port: sim, power: 2, current_sense: 2}".replace(
        f"{channel}: 2", f"{channel}: »1"
    )
    path, line, column = write(
        FIXTURE_HEADER + "slots:\n  - {slot: 1, port: sim, power: 1, current_sense: 1}\n"
        f"  - {slot2}\n",
        "fixture.yaml",
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: {channel} in slot 2: slots 1 and 2 share {noun} 1; each slot "
        "needs its own"
    )


# --- class 6: strict types, bounded times -------------------------------------------------

SLOTS = "slots:\n  - {slot: 1, port: sim, power: 1, current_sense: 1}\n"


WHOLE = "expected a whole number, got"


@pytest.mark.parametrize(
    ("slot_text", "message"),
    [
        ("{slot: »true, power: 1}", f"slot in slot entry 1: {WHOLE} true"),
        ("{slot: »1.5, power: 1}", f"slot in slot entry 1: {WHOLE} the number 1.5"),
        ("{slot: »'1', power: 1}", f"slot in slot entry 1: {WHOLE} '1'; write it without quotes"),
        ("{slot: 1, power: »yes}", f"power in slot 1: {WHOLE} true"),
        (
            "{slot: 1, power: 1, enabled: »1}",
            "enabled in slot 1: expected true or false, got the number 1",
        ),
    ],
    ids=["slot-true", "slot-float", "slot-text", "power-yes", "enabled-1"],
)
def test_fixture_types_are_strict(
    write: Write, capsys: pytest.CaptureFixture[str], slot_text: str, message: str
) -> None:
    entry = slot_text.replace("}", ", port: sim, current_sense: 1}")
    path, line, column = write(FIXTURE_HEADER + f"slots:\n  - {entry}\n", "fixture.yaml")
    assert validate(capsys, path) == f"{path}:{line}:{column}: {message}"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("retries: »yes", "retries in step 'a': expected a whole number, got true"),
        ("timeout: »2000", "timeout in step 'a': must be at most 600, got the number 2000"),
        ("timeout: »'11min'", "timeout in step 'a': must be at most 600, got '11min'"),
        ("settle: »2min", "settle in step 'a': must be at most 60, got '2min'"),
        (
            "timeout: »" + "9" * 400 + "s",
            f"timeout in step 'a': duration '{'9' * 37}...' is not a finite number; numbers "
            "must be finite",
        ),
        ("limits: {low: »true, unit: mA}", "limits.low in step 'a': expected a number, got true"),
    ],
    ids=["retries-yes", "timeout-big", "timeout-min", "settle-big", "timeout-inf", "low-true"],
)
def test_sequence_types_and_bounds(
    write: Write, capsys: pytest.CaptureFixture[str], step: str, message: str
) -> None:
    text = HEADER + STEP.replace("    limits: {low: 20, high: 45, unit: mA}\n", "")
    if not step.startswith("limits"):
        text += "    limits: {low: 20, high: 45, unit: mA}\n"
    path, line, column = write(text + f"    {step}\n")
    assert validate(capsys, path) == f"{path}:{line}:{column}: {message}"


def test_the_schema_states_the_time_bounds() -> None:
    from ate.cli.validate_cmd import schema

    defs = schema("sequence")["$defs"]
    timeout = defs["Defaults"]["properties"]["timeout"]
    settle = defs["SupplyCurrentStep"]["properties"]["settle"]
    assert timeout["anyOf"][0]["maximum"] == 600 and "at most 600 s" in timeout["description"]
    assert settle["anyOf"][0]["maximum"] == 60 and "at most 60 s" in settle["description"]


def test_gpio_expect_is_not_a_boolean(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path, line, column = write(
        HEADER + "steps:\n  - {name: a, type: gpio_read, pin: 4, expect: »true}\n"
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: expect in step 'a': expected a number, got true"
    )


# --- class 12: secrets in a profile ---------------------------------------------------------


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevKit]:
    yield make_dev_profile(tmp_path_factory.mktemp("kit") / "kit")


def profile_with(kit: DevKit, old: str, new: str, name: str) -> tuple[Path, int, int]:
    """A copy of the kit's profile with `old` replaced by `new`; (path, line, column) of
    the » mark in `new`."""
    text = kit.profile.read_text()
    assert old in text
    text = text.replace(old, new)
    before = text[: text.index("»")]
    line = before.count("\n") + 1
    column = len(before) - before.rfind("\n")
    path = kit.profile.with_name(name)
    path.write_text(text.replace("»", ""))
    return path, line, column


INLINE = (
    "an inline secret is not allowed (value not shown); write env:VARIABLE or file:PATH "
    "(relative to the profile)"
)


@pytest.mark.parametrize(
    "value", ["hunter2-correct-horse-battery", "'file: not a ref'", "123456789012345678"]
)
def test_an_inline_factory_secret_is_refused_without_echo(
    kit: DevKit, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    path, line, column = profile_with(
        kit, "secret: file:factory.secret", f"secret: »{value}", "inline.yaml"
    )
    got = validate(capsys, path)
    assert got == f"{path}:{line}:{column}: serial.secret: {INLINE}"
    assert value.strip("'") not in got and "hunter2" not in got


def test_an_inline_ca_password_is_refused_without_echo(
    kit: DevKit, capsys: pytest.CaptureFixture[str]
) -> None:
    path, line, column = profile_with(
        kit, "    key: pki/ica.key\n", "    key: pki/ica.key\n    password: »s3cr3t-pw\n", "pw.yaml"
    )
    got = validate(capsys, path)
    assert got == f"{path}:{line}:{column}: ca.file.password: {INLINE}"
    assert "s3cr3t" not in got


def test_a_blank_secret_file_is_refused(kit: DevKit, capsys: pytest.CaptureFixture[str]) -> None:
    blank = kit.directory / "blank.secret"
    blank.write_text("  \n\t\n")
    path, line, column = profile_with(
        kit, "secret: file:factory.secret", "secret: »file:blank.secret", "blank.yaml"
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: factory secret: {blank} is empty (or only white space)"
    )


def test_a_blank_secret_variable_is_refused(
    kit: DevKit, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATE_TEST_BLANK_SECRET", " \t ")
    path, line, column = profile_with(
        kit, "secret: file:factory.secret", "secret: »env:ATE_TEST_BLANK_SECRET", "env.yaml"
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: factory secret: environment variable ATE_TEST_BLANK_SECRET "
        "is empty (or only white space)"
    )


def test_a_secret_file_that_is_a_fifo(kit: DevKit, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = kit.directory / "secret.fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    path, line, column = profile_with(
        kit, "secret: file:factory.secret", "secret: »file:secret.fifo", "fifo.yaml"
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: factory secret: {fifo} is a FIFO (named pipe), not a regular file"
    )


def test_a_pkcs11_module_that_is_a_fifo(kit: DevKit, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = kit.directory / "module.fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    path, line, column = profile_with(
        kit,
        "  backend: file\n",
        f"  backend: pkcs11\n  pkcs11: {{module: »{fifo}, token: t, key: k, cert: pki/ica.pem, "
        "pin: env:ATE_HSM_PIN}\n",
        "module.yaml",
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: PKCS#11 module {fifo} is a FIFO (named pipe), not a regular file"
    )


def test_a_non_finite_number_in_a_profile(kit: DevKit, capsys: pytest.CaptureFixture[str]) -> None:
    path, line, column = profile_with(
        kit, "validity_days: 7300", "validity_days: ».inf", "inf.yaml"
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: '.inf' is not a finite number; numbers must be finite"
    )


def test_a_ca_root_that_is_a_folder(kit: DevKit, capsys: pytest.CaptureFixture[str]) -> None:
    folder = kit.directory / "pki" / "root-folder.pem"
    folder.mkdir(exist_ok=True)
    text = kit.profile.read_text().replace("root: pki/root.pem", "root: pki/root-folder.pem")
    path = kit.profile.with_name("rootdir.yaml")
    path.write_text(text)
    lines = text.splitlines()
    line = next(i for i, t in enumerate(lines, 1) if t.startswith("ca:"))
    assert validate(capsys, path) == (
        f"{path}:{line + 1}:3: CA certificates: certificate file {folder} is a folder, not a "
        "regular file"
    )


# --- class 12: the simulation section, found by validate and before a run ------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "  slots:\n    1:\n      faults:\n        stuck_gpio: [{pin: 5, level: »7}]\n",
            "simulation.slots.1.faults: stuck_gpio[0].level: the number 7 is not allowed; "
            "allowed: 0, 1",
        ),
        (
            "  slots:\n    1:\n      efuses: {»NO_SUCH_FUSE: 1}\n",
            "simulation.slots.1.efuses.NO_SUCH_FUSE: ESP32-S3 has no eFuse field 'NO_SUCH_FUSE'",
        ),
        (
            "  slots:\n    »5: {empty: true}\n",
            "simulation.slots has slot 5, which the fixture does not have; its slots: 1",
        ),
    ],
    ids=["fault-value", "efuse-name", "slot-number"],
)
def test_simulation_section_errors(
    write: Write, capsys: pytest.CaptureFixture[str], section: str, message: str
) -> None:
    text = (
        "fixture: bench\ncontroller: {driver: sim}\nsimulation:\n  board: board.yaml\n"
        + section
        + SLOTS
    )
    path, line, column = write(text, "fixture.yaml")
    assert validate(capsys, path) == f"{path}:{line}:{column}: {message}"


def test_a_kept_unit_file_that_is_a_fifo(
    write: Write, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fifo = tmp_path / "units" / "slot1" / "flash.bin"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    path, line, column = write(
        "fixture: bench\ncontroller: {driver: sim}\nsimulation:\n  board: board.yaml\n"
        "  state_dir: »units\n" + SLOTS,
        "fixture.yaml",
    )
    assert validate(capsys, path) == (
        f"{path}:{line}:{column}: simulation.state_dir: {fifo} is a FIFO (named pipe), not a "
        "regular file"
    )


def test_simulation_errors_stop_a_run_before_it_starts(
    write: Write, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, line, column = write(
        "fixture: bench\ncontroller: {driver: sim}\nsimulation:\n  board: »missing.yaml\n" + SLOTS,
        "fixture.yaml",
    )
    seq, _, _ = write(HEADER + STEP)
    got = refused(
        capsys, "run", "-f", path, "-s", seq, "--state", tmp_path / "st", "--out",
        tmp_path / "o", "--no-live",
    )  # fmt: skip
    assert got == f"ate: {path}:{line}:{column}: simulation.board 'missing.yaml': no such file"
