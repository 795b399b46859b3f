"""The fixture controller firmware (firmware/fixture_fw, built for the host with a fake
board) against the station's LineFixtureController over a pty: the firmware's replies
parse as the host expects, an INA226 reading arrives as milliamps, a refusal is the
device's error, and the clamp switch's debounced change arrives as the CLAMP notice that
aborts a panel."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from ate.drivers.fixture import LineFixtureController
from ate.drivers.line_client import DeviceError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def firmware(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    binary = tmp_path / "fixture_host"
    subprocess.run(
        ["make", "-s", "-C", str(REPO / "firmware/fixture_fw/test/host"), "host", f"OUT={binary}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    master, slave = os.openpty()
    tty.setraw(master)
    proc = subprocess.Popen([str(binary)], stdin=master, stdout=master, close_fds=True)
    os.close(master)
    try:
        yield proc, os.ttyname(slave)
    finally:
        proc.kill()
        proc.wait()
        os.close(slave)


async def test_the_firmware_speaks_what_the_station_expects(
    firmware: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, port = firmware
    ctrl = await LineFixtureController.open(port)
    try:
        info = await ctrl.line.request("info", timeout=2)
        assert info == {"proto": "1", "fw": "ate-fixture/1.0.0", "slots": "2"}
        await ctrl.power(1, True)
        await ctrl.strap(1, "boot")
        assert await ctrl.present(1) and not await ctrl.present(2)
        reading = await ctrl.current(1, 4)
        assert (reading.mean_ma, reading.min_ma, reading.max_ma) == (87.5, 87.5, 87.5)
        with pytest.raises(DeviceError) as refused:
            await ctrl.current(2, 1)  # no INA226 fitted on slot 2
        assert refused.value.code == "EHW"
        with pytest.raises(DeviceError) as bad:
            await ctrl.strap(3, "boot")
        assert bad.value.code == "EARG"
        assert await ctrl.clamp_closed()
        proc.send_signal(signal.SIGUSR1)  # the operator opens the clamp
        await asyncio.wait_for(ctrl.clamp_event().wait(), 10)
        assert not await ctrl.clamp_closed()
    finally:
        await ctrl.close()
