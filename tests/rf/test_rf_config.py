"""RF steps and golden boards in YAML: channels the chip has, a golden board the fixture
has (exit 2 before any panel, naming the step), golden_board ports and capacity; and the
golden role on the simulated board (prov.* refused, rf.role stored)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.config.errors import InputError
from ate.config.loader import check_compatible, load_fixture
from ate.protocol.lines import ErrorReply, Reply, Request
from ate.sim.board import SimBoard
from tests.rf.conftest import BLE, WIFI_RX, WIFI_TX, rf_sequence
from tests.scheduler.conftest import write_fixture
from tests.sim.sim_helpers import make_spec


def _sequence_error(tmp: Path, step: dict[str, Any], chip: str = "esp32s3") -> str:
    with pytest.raises(InputError) as info:
        rf_sequence(tmp, [step], chip=chip)
    return str(info.value)


@pytest.mark.parametrize(
    ("step", "chip", "message"),
    [
        ({**WIFI_TX, "channel": 15}, "esp32s3", "wifi channel 15: the esp32s3 has 1..14"),
        ({**WIFI_RX, "channel": 37}, "esp32s3", "wifi channel 37: the esp32s3 has 1..14"),
        (
            {"name": "b", "type": "ble", "channel": 36, "per": {"high": 5, "unit": "%"}},
            "esp32s3",
            "ble channel 36: the esp32s3 has 37..39",
        ),
        ({**WIFI_TX}, "esp32h2", "wifi channel 6: the esp32h2 has none (the esp32h2 has no wifi)"),
        ({**WIFI_TX, "rssi": {"low": 1, "unit": "mA"}}, "esp32s3", "rssi"),
        ({"name": "w", "type": "wifi_rx", "channel": 6}, "esp32s3", "give at least one of"),
        ({**BLE, "interval_us": 2000}, "esp32s3", "a BLE advertisement interval is 20000.."),
    ],
)
def test_rf_step_fields_are_checked(
    tmp_path: Path, step: dict[str, Any], chip: str, message: str
) -> None:
    assert message in _sequence_error(tmp_path, step, chip)


def test_freq_offset_limits_are_for_wifi_tx_only(tmp_path: Path) -> None:
    # freq_offset is for wifi_tx (the golden board measures the DUT's clock), not wifi_rx
    assert "freq_offset" in _sequence_error(
        tmp_path, {**WIFI_RX, "freq_offset": {"low": -20, "high": 20, "unit": "ppm"}}
    )


def test_an_rf_step_without_a_golden_board_is_refused_naming_it(tmp_path: Path) -> None:
    seq = rf_sequence(tmp_path, [WIFI_TX])
    fix = load_fixture(write_fixture(tmp_path, resources={"dmm": {"kind": "dmm"}}))
    with pytest.raises(InputError, match=r"step 'wifi_tx_ch6' \(wifi_tx\) needs a golden board; "):
        check_compatible(seq, fix)
    two = load_fixture(
        write_fixture(
            tmp_path,
            name="two",
            resources={"g1": {"kind": "golden_board"}, "g2": {"kind": "golden_board"}},
        )
    )
    with pytest.raises(InputError, match=r"golden boards g1, g2; say which with golden: NAME"):
        check_compatible(seq, two)
    named = rf_sequence(tmp_path, [{**WIFI_TX, "golden": "g3"}])
    with pytest.raises(InputError, match=r"names golden board 'g3', which fixture 'two'"):
        check_compatible(named, two)
    check_compatible(rf_sequence(tmp_path, [{**WIFI_TX, "golden": "g2"}]), two)


def test_the_cli_exits_2_before_any_panel(tmp_path: Path) -> None:
    from ate.cli.main import main

    seq = rf_sequence(tmp_path, [WIFI_TX])
    fix = write_fixture(tmp_path, resources={})
    assert main(["run", "-f", str(fix), "-s", str(seq.path), "--out", str(tmp_path / "o")]) == 2


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        ({"kind": "golden_board", "capacity": 2}, "a golden_board has capacity 1"),
        ({"kind": "dmm", "port": "sim"}, "port is for a golden_board resource"),
        ({"kind": "dmm", "calibration": "c.yaml"}, "calibration is for a golden_board"),
        ({"kind": "golden_board", "port": "/dev/ttyUSB0"}, "changes across reboots"),
    ],
)
def test_golden_board_resource_fields(
    tmp_path: Path, resource: dict[str, Any], message: str
) -> None:
    path = write_fixture(tmp_path, resources={"golden": resource})
    with pytest.raises(InputError, match=message):
        load_fixture(path)


def test_a_golden_board_needs_its_own_port(tmp_path: Path) -> None:
    path = write_fixture(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["slots"][1]["port"] = "socket://127.0.0.1:4000"
    doc["resources"] = {"golden": {"kind": "golden_board", "port": "socket://localhost:4000"}}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match=r"golden board 'golden' is on the port of slot 2"):
        load_fixture(path)


def _call(board: SimBoard, command: str, *args: str, **kwargs: str) -> Reply | ErrorReply:
    from ate.protocol.lines import parse_device_line

    line = board.handle(Request(1 + board.requests_since_boot, command, args, kwargs))
    reply = parse_device_line(line.decode().rstrip("\n"))
    assert isinstance(reply, Reply | ErrorReply)
    return reply


def test_a_golden_board_is_never_provisioned_and_keeps_its_role() -> None:
    board = SimBoard(make_spec(), 7, 1)
    board.power_on()
    board.finish_boot()
    assert _call(board, "rf.role").fields == {"role": "dut"}  # type: ignore[union-attr]
    assert _call(board, "rf.role", "golden").fields == {"role": "golden"}  # type: ignore[union-attr]
    refused = _call(board, "prov.key")
    assert isinstance(refused, ErrorReply)
    assert (refused.code, refused.message) == ("EPERM", "golden board: never provisioned")
    board.restart("sw")
    board.finish_boot()
    assert _call(board, "info").fields["role"] == "golden"  # type: ignore[union-attr]
    bad = _call(board, "rf.role", "master")
    assert isinstance(bad, ErrorReply) and bad.code == "EARG"


@pytest.mark.parametrize(
    ("command", "args", "kwargs"),
    [
        ("rf.tx", ("wifi", "15", "10"), {}),
        ("rf.tx", ("ble", "36", "10"), {}),
        ("rf.tx", ("wifi", "6", "0"), {}),
        ("rf.tx", ("wifi", "6", "10"), {"interval_us": "499"}),
        ("rf.tx", ("ble", "37", "10"), {"interval_us": "19999"}),
        ("rf.tx", ("wifi", "6", "10"), {"power": "21"}),
        ("rf.tx", ("zigbee", "6", "10"), {}),
        ("rf.rx.start", ("wifi", "6"), {"from": "not-a-mac"}),
        ("rf.rx.stop", (), {}),
    ],
)
def test_rf_commands_refuse_bad_arguments(
    command: str, args: tuple[str, ...], kwargs: dict[str, str]
) -> None:
    board = SimBoard(make_spec(), 7, 1)
    board.power_on()
    board.finish_boot()
    reply = _call(board, command, *args, **kwargs)
    assert isinstance(reply, ErrorReply) and reply.code == "EARG", reply
