"""The fixture file's `instruments:` section: each bad driver name, bad setting or driver
that cannot serve its role is one line naming file:line, exit 2 from `ate validate`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ate.cli.validate_cmd import run_validate
from ate.config.errors import InputError
from ate.config.loader import load_fixture
from ate.instruments.scpi_drivers import MuxSettings, PsuSettings
from tests.ate_cli import run_ate

HEAD = """\
fixture: bench1
controller: {driver: line, port: socket://127.0.0.1:7000}
slots:
  - {slot: 1, port: socket://127.0.0.1:7001, power: 1, current_sense: 1}
  - {slot: 2, port: socket://127.0.0.1:7002, power: 2, current_sense: 2}
instruments:
"""

GOOD = """\
  supply:
    driver: scpi_psu
    resource: TCPIP::192.168.10.20::5025::SOCKET
    idn: 'E36313A'
    channels: {1: 1, 2: 2}
  dmm: {driver: scpi_dmm, resource: 'TCPIP::192.168.10.21::5025::SOCKET', idn: 'MODEL 2000'}
  mux:
    driver: scpi_mux
    resource: TCPIP::192.168.10.22::5025::SOCKET
    idn: '34980A'
    routes:
      1: {3v3: '101', 1v8: '102'}
      2: {3v3: '201'}
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bench1.yaml"
    path.write_text(HEAD + body)
    return path


def test_a_good_section_loads_each_role_with_its_settings(tmp_path: Path) -> None:
    fix = load_fixture(write(tmp_path, GOOD))
    assert list(fix.instruments) == ["supply", "dmm", "mux"]
    name, supply = fix.instruments["supply"]
    assert name == "scpi_psu" and isinstance(supply, PsuSettings)
    assert supply.channels == {1: 1, 2: 2} and supply.timeout == 2.0
    mux = fix.instruments["mux"][1]
    assert isinstance(mux, MuxSettings) and mux.routes[1]["1v8"] == "102"


def test_no_section_no_instruments(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(HEAD.replace("instruments:\n", ""))
    assert load_fixture(path).instruments == {}


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        (
            "  supply: {driver: scpi_pus, resource: 'x', idn: 'y'}\n",
            7,
            "instrument driver 'scpi_pus' is not registered; registered: fixture_mcu, scpi_dmm",
        ),
        (
            "  supply:\n    driver: scpi_psu\n    resource: 'TCPIP::a::5025::SOCKET'\n"
            "    idn: 'E36'\n    timeout: 0\n",
            11,
            "instruments.supply: timeout",
        ),
        (
            "  supply:\n    driver: scpi_psu\n    resource: 'TCPIP::a::5025::SOCKET'\n"
            "    idn: 'E36'\n    voltage: 3.3\n",
            11,
            "voltage",
        ),
        (
            "  dmm:\n    driver: scpi_dmm\n    resource: 'TCPIP::a::5025::SOCKET'\n"
            "    idn: '(unclosed'\n",
            10,
            "not a regular expression",
        ),
        (
            "  mux:\n    driver: scpi_mux\n    resource: 'TCPIP::a::5025::SOCKET'\n"
            "    idn: 'x'\n    routes:\n      1: {3v3: '1O1'}\n",
            12,
            "instruments.mux: routes",
        ),
        (
            "  supply: {driver: scpi_dmm, resource: 'x', idn: 'y'}\n",
            7,
            "role 'supply' needs a PowerSupply; driver 'scpi_dmm' provides Dmm",
        ),
        ("  dmm: {driver: fixture_mcu, port: 3}\n", 7, "port"),
        ("  Bad-Role: {driver: scpi_dmm, resource: 'x', idn: 'y'}\n", 7, "Bad-Role"),
    ],
)
def test_bad_input_is_one_line_at_its_place(
    tmp_path: Path, body: str, line: int, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, body)
    with pytest.raises(InputError) as caught:
        load_fixture(path)
    assert caught.value.line == line, str(caught.value)
    assert words in caught.value.message
    assert run_validate([str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}:{line}:"), lines


def test_ate_validate_says_it_in_one_line_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("driver: scpi_dmm", "driver: keithley"))
    done = run_ate("validate", path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}:12:"), done.stderr
    assert "instrument driver 'keithley' is not registered" in lines[0]
    assert "Traceback" not in done.stderr
