"""esptool and espefuse used as libraries (their v5 APIs) against the simulated ROM."""

from __future__ import annotations

import io
import secrets

import espefuse
import esptool
import pytest
from esptool.util import FatalError, UnsupportedCommandError
from rom_helpers import S3_MAC

from ate.sim.rom.server import RomServerThread


def connect(rom: RomServerThread) -> esptool.ESPLoader:
    return esptool.connect_esp(port=rom.url, chip="esp32s3", before="no-reset", connect_attempts=1)


def test_esptool_api_flash_cycle(s3: RomServerThread) -> None:
    data = secrets.token_bytes(48 * 1024) + b"\x00" * 16 * 1024
    esp = connect(s3)
    try:
        assert ":".join(f"{b:02x}" for b in esp.read_mac()) == S3_MAC
        esp = esptool.run_stub(esp)
        assert esp.IS_STUB
        esptool.attach_flash(esp)
        esptool.write_flash(esp, [(0x10000, data)], no_progress=True)
        esptool.verify_flash(esp, [(0x10000, data)])
        assert esptool.read_flash(esp, 0x10000, len(data), no_progress=True) == data
        esptool.erase_region(esp, 0x10000, 0x1000)
        assert esptool.read_flash(esp, 0x10000, 16, no_progress=True) == b"\xff" * 16
        esptool.reset_chip(esp, "no-reset")  # the stub reboots into the ROM
    finally:
        esp._port.close()
    s3.wait_for(lambda srv: srv.loader.active and not srv.loader.stub_running)


def test_esptool_api_refuses_writes_past_the_chip(s3: RomServerThread) -> None:
    esp = connect(s3)
    try:
        esptool.attach_flash(esp)
        esp.flash_set_parameters(16 * 1024 * 1024)  # the ROM believes anything it is told
        with pytest.raises(FatalError, match="result was 0106"):  # ...but the 8 MB chip ends
            esp.flash_begin(0x1000, 8 * 1024 * 1024)
    finally:
        esp._port.close()


def test_espefuse_api_burns_and_reads_back(s3: RomServerThread) -> None:
    serial = b"SN-42".ljust(32, b"\x00")
    with espefuse.init_commands(
        port=s3.url, chip="esp32s3", before="no-reset", do_not_confirm=True
    ) as commands:
        assert commands.efuses["MAC"].get() == f"{S3_MAC} (OK)"
        commands.burn_efuse({"SOFT_DIS_JTAG": "1"})
        commands.burn_block_data(["BLOCK_USR_DATA"], [io.BytesIO(serial)])
    assert s3.call(lambda srv: srv.efuses.security_info().flags) & 1 << 6  # SOFT_DIS_JTAG
    with espefuse.init_commands(
        port=s3.url, chip="esp32s3", before="no-reset", do_not_confirm=True
    ) as commands:
        # espefuse holds block bytes in its bitstring order: last byte first
        assert commands.efuses["BLOCK_USR_DATA"].get_raw()[::-1] == serial


def test_secure_download_mode_refuses_register_reads_on_the_wire(s3: RomServerThread) -> None:
    with (
        espefuse.init_commands(
            port=s3.url, chip="esp32s3", before="no-reset", do_not_confirm=True
        ) as commands,
        pytest.raises(SystemExit) as stop,  # espefuse ends the process once in SDM
    ):
        commands.burn_efuse({"ENABLE_SECURITY_DOWNLOAD": "1"})
    assert stop.value.code == 0
    esp = connect(s3)
    try:
        assert esp.secure_download_mode
        assert esp.get_security_info()["parsed_flags"]["SECURE_DOWNLOAD_ENABLE"]
        # Not esptool's own CLI check this time: the simulated ROM refuses the command.
        with pytest.raises(UnsupportedCommandError):
            esp.read_mac()
    finally:
        esp._port.close()
