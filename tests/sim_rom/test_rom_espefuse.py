"""The real espefuse (and esptool) CLIs burning the simulated unit's eFuses, and its refusals."""

from __future__ import annotations

import secrets
import struct
from pathlib import Path

from rom_helpers import C3_MAC, S3_MAC, Cli, ok

from ate.sim.rom.server import RomServer, RomServerThread

EFUSE = 0x60007000
BLOCK_USR_DATA = EFUSE + 0x7C
BLOCK_KEY0 = EFUSE + 0x9C
BLOCK_KEY1 = EFUSE + 0xBC
WR_DIS = EFUSE + 0x2C


def words(srv: RomServer, addr: int, count: int = 8) -> list[int]:
    return [srv.efuses.read_reg(addr + 4 * i) for i in range(count)]


def test_summary(s3: RomServerThread, espefuse_cli: Cli) -> None:
    text = ok(espefuse_cli(s3.url, "summary"))
    assert f"= {S3_MAC} (OK)" in text
    assert "WAFER_VERSION_MINOR_LO (BLOCK1)" in text
    assert "BLOCK_USR_DATA (BLOCK3)" in text


def test_c3_summary(c3: RomServerThread, espefuse_cli: Cli) -> None:
    text = ok(espefuse_cli(c3.url, "summary", chip="esp32c3"))
    assert f"= {C3_MAC} (OK)" in text


def test_burn_efuse_then_write_protect_its_group(s3: RomServerThread, espefuse_cli: Cli) -> None:
    ok(espefuse_cli(s3.url, "burn-efuse", "DIS_USB_JTAG", "1"))
    assert s3.call(lambda srv: srv.efuses.field("DIS_USB_JTAG")) is True
    ok(espefuse_cli(s3.url, "write-protect-efuse", "DIS_USB_JTAG"))
    assert s3.call(lambda srv: srv.efuses.read_reg(WR_DIS)) & 1 << 2  # the group's WR_DIS bit
    # DIS_PAD_JTAG shares write-protect bit 2: the chip no longer takes it.
    result = espefuse_cli(s3.url, "burn-efuse", "DIS_PAD_JTAG", "1")
    assert result.returncode != 0
    assert "write-protected" in (result.stdout + result.stderr).lower()
    assert s3.call(lambda srv: srv.efuses.field("DIS_PAD_JTAG")) is False


def test_burn_keys_user_readable_xts_read_protected(
    s3: RomServerThread, espefuse_cli: Cli, tmp_path: Path
) -> None:
    user_key, xts_key = secrets.token_bytes(32), secrets.token_bytes(32)
    (tmp_path / "user.bin").write_bytes(user_key)
    (tmp_path / "xts.bin").write_bytes(xts_key)
    ok(espefuse_cli(s3.url, "burn-key", "BLOCK_KEY0", str(tmp_path / "user.bin"), "USER"))
    key = s3.call(lambda srv: words(srv, BLOCK_KEY0))
    assert key == list(struct.unpack("<8I", user_key))
    ok(espefuse_cli(s3.url, "burn-key", "BLOCK_KEY1", str(tmp_path / "xts.bin"), "XTS_AES_128_KEY"))
    # espefuse read-protects an XTS key: its registers now read as zeros.
    assert s3.call(lambda srv: words(srv, BLOCK_KEY1)) == [0] * 8
    assert s3.call(lambda srv: srv.efuses.security_info().key_purposes[:2]) == (0, 4)
    text = ok(espefuse_cli(s3.url, "summary"))
    assert "?? ?? ??" in text  # what espefuse shows for a read-protected block


def test_block_usr_data_takes_one_write_only(
    s3: RomServerThread, espefuse_cli: Cli, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(b"SN-000123".ljust(32, b"\x00"))  # 5.6 wants the whole 32 bytes
    second.write_bytes(b"SN-000999".ljust(32, b"\x00"))
    ok(espefuse_cli(s3.url, "burn-block-data", "BLOCK_USR_DATA", str(first)))
    assert s3.call(lambda srv: words(srv, BLOCK_USR_DATA, 2)) == list(
        struct.unpack("<2I", b"SN-00012")
    )
    refused = espefuse_cli(s3.url, "burn-block-data", "BLOCK_USR_DATA", str(second))
    assert refused.returncode != 0
    assert "RS coding scheme does not allow this" in refused.stdout + refused.stderr
    # Forced, the chip burns it anyway and its Reed-Solomon check fails.
    forced = espefuse_cli(
        s3.url, "burn-block-data", "--force-write-always", "BLOCK_USR_DATA", str(second)
    )
    assert forced.returncode != 0
    assert "Error(s) were detected in eFuses" in forced.stdout + forced.stderr
    check = espefuse_cli(s3.url, "check-error")
    assert check.returncode != 0
    assert "BLOCK_USR_DATA [ERRORS:7 FAIL:1]" in check.stdout + check.stderr


def test_secure_download_mode_leaves_only_flashing(
    s3: RomServerThread, espefuse_cli: Cli, esptool_cli: Cli, tmp_path: Path
) -> None:
    text = ok(espefuse_cli(s3.url, "burn-efuse", "ENABLE_SECURITY_DOWNLOAD", "1"))
    assert "Secure download mode is enabled" in text
    info = ok(esptool_cli(s3.url, "get-security-info"))
    assert "Flags: 0x00000004" in info
    assert "Chip ID: 9" in info
    refused = esptool_cli(s3.url, "read-mac")
    assert refused.returncode != 0
    assert "not available in Secure Download Mode" in refused.stdout + refused.stderr
    refused = espefuse_cli(s3.url, "summary")
    assert refused.returncode != 0
    assert "Secure Download Mode is enabled" in refused.stdout + refused.stderr
    app = tmp_path / "app.bin"
    app.write_bytes(secrets.token_bytes(8 * 1024))
    text = ok(esptool_cli(s3.url, "write-flash", "0x10000", str(app)))
    assert "Cannot verify written data if encrypted or in secure download mode" in text
    assert s3.call(lambda srv: srv.flash.read(0x10000, 8 * 1024)) == app.read_bytes()
    ok(esptool_cli(s3.url, "erase-region", "0x10000", "0x1000"))
    assert s3.call(lambda srv: srv.flash.read(0x10000, 16)) == b"\xff" * 16


def test_download_mode_disabled_after_the_next_reset(
    s3: RomServerThread, espefuse_cli: Cli, esptool_cli: Cli
) -> None:
    ok(espefuse_cli(s3.url, "burn-efuse", "DIS_DOWNLOAD_MODE", "1"))
    result = esptool_cli(s3.url, "read-mac")  # a new connection resets the unit
    assert result.returncode != 0
    assert "Failed to connect" in result.stdout + result.stderr
    assert s3.call(lambda srv: not srv.loader.active)
