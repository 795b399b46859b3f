"""The real esptool CLI against the simulated ROM: identify, flash, verify, read, erase."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rom_helpers import C3_MAC, S3_MAC, Cli, ok, run_tool

from ate.sim.rom.server import RomServerThread


def test_read_mac_and_chip_description(s3: RomServerThread, esptool_cli: Cli) -> None:
    text = ok(esptool_cli(s3.url, "--no-stub", "read-mac"))
    assert f"MAC:                {S3_MAC}" in text
    assert "ESP32-S3 (QFN56) (revision v0.2)" in text


def test_flash_id(s3: RomServerThread, esptool_cli: Cli) -> None:
    text = ok(esptool_cli(s3.url, "flash-id"))
    assert "Manufacturer: ef" in text
    assert "Device: 4017" in text
    assert "Detected flash size: 8MB" in text


def test_write_verify_read_back_with_stub(
    s3: RomServerThread, esptool_cli: Cli, image: Callable[[int], Path], tmp_path: Path
) -> None:
    app = image(200 * 1024)
    text = ok(esptool_cli(s3.url, "write-flash", "0x10000", str(app)))  # compressed by default
    assert "Hash of data verified." in text
    assert "compressed" in text
    ok(esptool_cli(s3.url, "verify-flash", "0x10000", str(app)))
    back = tmp_path / "back.bin"
    ok(esptool_cli(s3.url, "read-flash", "0x10000", str(app.stat().st_size), str(back)))
    assert back.read_bytes() == app.read_bytes()
    assert s3.call(lambda srv: srv.flash.read(0x10000, 16)) == app.read_bytes()[:16]


def test_write_and_read_without_stub_or_compression(
    s3: RomServerThread, esptool_cli: Cli, image: Callable[[int], Path], tmp_path: Path
) -> None:
    boot = image(20 * 1024 + 3)  # odd size: esptool pads, the ROM takes 1 KiB blocks
    text = ok(esptool_cli(s3.url, "--no-stub", "write-flash", "--no-compress", "0x0", str(boot)))
    assert "Hash of data verified." in text
    back = tmp_path / "back.bin"
    size = str(boot.stat().st_size)
    ok(esptool_cli(s3.url, "--no-stub", "read-flash", "0x0", size, str(back)))  # READ_FLASH_SLOW
    assert back.read_bytes() == boot.read_bytes()


def test_compressed_write_through_the_rom(
    s3: RomServerThread, esptool_cli: Cli, image: Callable[[int], Path]
) -> None:
    app = image(64 * 1024)
    ok(esptool_cli(s3.url, "--no-stub", "write-flash", "--compress", "0x20000", str(app)))
    ok(esptool_cli(s3.url, "--no-stub", "verify-flash", "0x20000", str(app)))


def test_verify_notices_a_difference(
    s3: RomServerThread, esptool_cli: Cli, image: Callable[[int], Path]
) -> None:
    app = image(16 * 1024)
    ok(esptool_cli(s3.url, "write-flash", "0x30000", str(app)))
    data = app.read_bytes()
    bad = 0x30000 + next(i for i, byte in enumerate(data) if byte)  # a byte with a 1 bit
    s3.call(lambda srv: srv.flash.program(bad, b"\x00"))  # ...goes bad on the chip
    result = esptool_cli(s3.url, "verify-flash", "0x30000", str(app))
    assert result.returncode != 0
    assert "Verification failed" in result.stdout + result.stderr


def test_erase_region_with_stub_and_rom(
    s3: RomServerThread, esptool_cli: Cli, image: Callable[[int], Path]
) -> None:
    ok(esptool_cli(s3.url, "write-flash", "0x40000", str(image(0x3000))))
    ok(esptool_cli(s3.url, "erase-region", "0x40000", "0x1000"))
    ok(esptool_cli(s3.url, "--no-stub", "erase-region", "0x42000", "0x1000"))
    flash = s3.call(lambda srv: srv.flash.read(0x40000, 0x3000))
    assert flash[:0x1000] == b"\xff" * 0x1000
    assert flash[0x1000:0x2000] != b"\xff" * 0x1000  # untouched sector
    assert flash[0x2000:] == b"\xff" * 0x1000


def test_after_no_reset_leaves_the_rom_waiting(s3: RomServerThread, esptool_cli: Cli) -> None:
    # With the stub, --after no-reset sends FLASH_BEGIN(0, 0) + FLASH_END(0): back to ROM.
    ok(esptool_cli(s3.url, "--after", "no-reset", "read-mac"))
    assert s3.call(lambda srv: srv.loader.active and not srv.loader.stub_running)


def test_four_units_flashed_in_parallel(image: Callable[[int], Path]) -> None:
    size = 128 * 1024
    apps = [image(size) for _ in range(4)]
    servers = [RomServerThread("esp32s3", seed=10 + i) for i in range(4)]
    for server in servers:
        server.start()
    try:

        def flash(i: int) -> subprocess.CompletedProcess[str]:
            args = ("write-flash", "0x10000", str(apps[i]))
            return run_tool("esptool", "esp32s3", servers[i].url, args, [])

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(flash, range(4)))
        for result in results:
            ok(result)
        for server, app in zip(servers, apps, strict=True):
            assert server.call(lambda srv: srv.flash.read(0x10000, size)) == app.read_bytes()
        assert len({server.call(lambda srv: srv.efuses.mac) for server in servers}) == 4
    finally:
        for server in servers:
            server.stop()


def test_c3_read_mac_and_write_flash(
    c3: RomServerThread, esptool_cli: Cli, image: Callable[[int], Path]
) -> None:
    text = ok(esptool_cli(c3.url, "--no-stub", "read-mac", chip="esp32c3"))
    assert f"MAC:                {C3_MAC}" in text
    assert "ESP32-C3" in text
    app = image(96 * 1024)
    text = ok(esptool_cli(c3.url, "write-flash", "0x10000", str(app), chip="esp32c3"))
    assert "Hash of data verified." in text
    assert c3.call(lambda srv: srv.flash.read(0x10000, 32)) == app.read_bytes()[:32]


def test_wrong_chip_argument_is_detected(c3: RomServerThread, esptool_cli: Cli) -> None:
    result = esptool_cli(c3.url, "read-mac", chip="esp32s3")
    assert result.returncode != 0
    assert "This chip is ESP32-C3, not ESP32-S3" in result.stdout + result.stderr
