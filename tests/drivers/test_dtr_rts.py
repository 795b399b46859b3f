"""The dtr_rts driver against the simulated ROM loader over rfc2217://, where the
simulator sees DTR and RTS through a devkit's auto-reset circuit: the driver's boot
strap is what puts the chip in its ROM loader (real esptool then talks to it with
--before no-reset), its run strap boots the app, and a wrong sequence on the same
lines does not reach the loader, as real esptool finds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import serial
import yaml

from ate.config.loader import load_fixture
from ate.sim.rom.server import RomServerThread
from ate.station.runner import open_controller


def esptool_read_mac(url: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "esptool", "--chip", "esp32s3", "--port", url]
    return subprocess.run(
        [
            *cmd,
            "--before",
            "no-reset",
            "--after",
            "no-reset",
            "--no-stub",
            "--connect-attempts",
            "1",
            "read-mac",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_fixture(tmp: Path, url: str) -> Path:
    doc = {
        "fixture": "usb1",
        "controller": {"driver": "dtr_rts"},
        "slots": [{"slot": 1, "port": url, "power": 1, "current_sense": 1}],
    }
    path = tmp / "usb1.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def test_the_boot_strap_puts_the_chip_in_its_rom_loader(tmp_path: Path) -> None:
    with RomServerThread("esp32s3", rfc2217=True, mac="24:0a:c4:00:22:42") as rom:
        assert not rom.call(lambda srv: srv.loader.active)  # powered up into its app
        ctrl = await open_controller(load_fixture(write_fixture(tmp_path, rom.url)), None)
        assert await ctrl.present(1) and await ctrl.clamp_closed()
        # Without a strap the chip runs its app: esptool, told not to reset, gets nowhere.
        refused = esptool_read_mac(rom.url)
        assert refused.returncode != 0
        await ctrl.strap(1, "boot")
        assert rom.call(lambda srv: srv.loader.active)
        done = esptool_read_mac(rom.url)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "24:0a:c4:00:22:42" in done.stdout
        await ctrl.strap(1, "run")  # reset with IO0 high: a normal boot
        rom.wait_for(lambda srv: not srv.loader.active)
        await ctrl.close()


async def test_a_wrong_line_sequence_does_not_reach_the_loader() -> None:
    with RomServerThread("esp32s3", rfc2217=True, mac="24:0a:c4:00:22:43") as rom:
        port = serial.serial_for_url(f"{rom.url}?ign_set_control", do_not_open=True, timeout=1)
        port.dtr, port.rts = False, False
        port.open()
        try:
            # IO0 asserted only after EN has fully risen (too late), then released.
            port.dtr, port.rts = False, True
            port.dtr, port.rts = False, False
            # EN has risen through its RC delay: the chip booted its app.
            rom.wait_for(lambda srv: srv._release is None and not srv._en_low)
            port.dtr, port.rts = True, False
            port.dtr, port.rts = False, False
        finally:
            port.close()
        assert not rom.call(lambda srv: srv.loader.active)
        # Real esptool, told not to reset, finds no ROM loader after that sequence.
        refused = esptool_read_mac(rom.url)
        assert refused.returncode != 0 and "24:0a:c4" not in refused.stdout
