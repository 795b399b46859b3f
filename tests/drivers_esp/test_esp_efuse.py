"""EfuseSession against a simulated ESP32-S3: real espefuse on the flasher's connection."""

from __future__ import annotations

import time

import pytest
from esp_helpers import Slot, image

from ate.drivers.esp import (
    Burn,
    BurnKey,
    DownloadModeDisabled,
    EfuseRefused,
    EfuseSession,
    EspFlasher,
    FlashError,
    NoSync,
    SecureDownloadMode,
    WriteProtect,
)

KEY = bytes(range(0x40, 0x60))


async def test_summary_reads_every_field_into_the_slot_log(slot: Slot, flasher: EspFlasher) -> None:
    before = len(slot.lines)
    fields = await EfuseSession(flasher).summary()
    assert len(fields) > 80
    assert fields["MAC"] == slot.mac
    assert fields["KEY_PURPOSE_0"] == "USER"
    assert fields["WR_DIS"] == 0 and fields["SPI_BOOT_CRYPT_CNT"] == 0
    assert fields["BLOCK_USR_DATA"] == bytes(32)
    assert fields["DIS_DOWNLOAD_MODE"] is False
    assert len(slot.lines) == before  # reading is quiet; nothing went elsewhere either


async def test_burn_several_fields_in_one_batch(slot: Slot, flasher: EspFlasher) -> None:
    efuse = EfuseSession(flasher)
    got = await efuse.burn({"DIS_USB_JTAG": 1, "SPI_BOOT_CRYPT_CNT": 1, "SOFT_DIS_JTAG": 0b011})
    assert got == {"DIS_USB_JTAG": True, "SPI_BOOT_CRYPT_CNT": 1, "SOFT_DIS_JTAG": 0b011}
    assert slot.rom.efuses.field("DIS_USB_JTAG")  # the chip itself has it
    assert await efuse.read("SPI_BOOT_CRYPT_CNT") == 1
    assert any("BURN BLOCK0" in line for line in slot.lines)
    # Burning the same value again is a no-op, not an error (re-runnable plans).
    assert await efuse.burn({"DIS_USB_JTAG": 1}) == {"DIS_USB_JTAG": True}
    with pytest.raises(EfuseRefused, match="0->1"):
        await efuse.burn({"DIS_USB_JTAG": 0})
    with pytest.raises(EfuseRefused, match="no eFuse or block named 'NO_SUCH_FUSE'"):
        await efuse.burn({"NO_SUCH_FUSE": 1})
    with pytest.raises(EfuseRefused, match="cannot be cleared"):
        await efuse.burn({"SOFT_DIS_JTAG": 0b100})


async def test_a_batch_programs_each_block_once_with_lock_bits_last(
    slot: Slot, flasher: EspFlasher
) -> None:
    """A key, fields and a write protection of their own group in one batch: one program
    cycle for the key block, one for BLOCK0's fields, one for its postponed lock bits
    (WR_DIS, RD_DIS), so the protection lands after what it protects."""
    efuse = EfuseSession(flasher)
    before = len(slot.lines)
    await efuse.burn_batch(
        [
            BurnKey("BLOCK_KEY0", KEY, "XTS_AES_128_KEY"),
            Burn({"SPI_BOOT_CRYPT_CNT": 7, "DIS_USB_JTAG": 1}),
            WriteProtect(("DIS_ICACHE", "DIS_USB_JTAG")),
        ]
    )
    programs = [line.split(" - ")[0] for line in slot.lines[before:] if "BURN BLOCK" in line]
    assert programs == ["BURN BLOCK4 ", "BURN BLOCK0 ", "BURN BLOCK0 "], programs
    assert (
        slot.rom.efuses.field("DIS_USB_JTAG") and slot.rom.efuses.field("SPI_BOOT_CRYPT_CNT") == 7
    )
    usb_jtag = await efuse.field("DIS_USB_JTAG")
    assert usb_jtag.value is True and not usb_jtag.writeable
    key = await efuse.field("BLOCK_KEY0")
    assert not key.readable and await efuse.read("KEY_PURPOSE_0") == "XTS_AES_128_KEY"


async def test_a_refused_act_burns_nothing_of_its_batch(slot: Slot, flasher: EspFlasher) -> None:
    efuse = EfuseSession(flasher)
    with pytest.raises(EfuseRefused, match="unknown key purpose 'NOPE'"):
        await efuse.burn_batch([Burn({"DIS_USB_JTAG": 1}), BurnKey("BLOCK_KEY1", KEY, "NOPE")])
    assert not slot.rom.efuses.field("DIS_USB_JTAG")
    # Nothing queued survives into the next burn either.
    assert await efuse.burn({"SOFT_DIS_JTAG": 1}) == {"SOFT_DIS_JTAG": 1}
    assert not slot.rom.efuses.field("DIS_USB_JTAG")


async def test_a_read_after_a_burn_uses_the_burns_own_read_back(
    slot: Slot, flasher: EspFlasher
) -> None:
    """espefuse reads every block back after a burn; reading again before anything else
    is asked of the chip would be a second whole read of the same answer (a fifth of a
    unit's station CPU before). The values are the chip's own."""
    efuse = EfuseSession(flasher)
    await efuse.burn({"DIS_USB_JTAG": 1})
    asked = slot.rom.loader.stats.commands
    fields = await efuse.summary()
    assert slot.rom.loader.stats.commands == asked  # no round trip
    assert fields["DIS_USB_JTAG"] is True and slot.rom.efuses.field("DIS_USB_JTAG")
    # A new session (another connection's view) reads the chip afresh.
    again = EfuseSession(flasher)
    assert (await again.summary())["DIS_USB_JTAG"] is True
    assert slot.rom.loader.stats.commands > asked


async def test_burn_key_sets_purpose_and_protection(slot: Slot, flasher: EspFlasher) -> None:
    efuse = EfuseSession(flasher)
    await efuse.burn_key("BLOCK_KEY0", KEY, "HMAC_DOWN_DIGITAL_SIGNATURE")
    key = await efuse.field("BLOCK_KEY0")
    assert (key.readable, key.writeable, key.value) == (False, False, None)
    assert await efuse.read("KEY_PURPOSE_0") == "HMAC_DOWN_DIGITAL_SIGNATURE"
    # A digest must stay readable: asking to hide it is refused before anything burns.
    with pytest.raises(EfuseRefused, match="must stay readable"):
        await efuse.burn_key("BLOCK_KEY1", KEY, "SECURE_BOOT_DIGEST0", read_protect=True)
    assert await efuse.read("KEY_PURPOSE_1") == "USER"
    await efuse.burn_key("BLOCK_KEY1", KEY, "SECURE_BOOT_DIGEST0")
    assert await efuse.read("BLOCK_KEY1") == KEY
    with pytest.raises(EfuseRefused, match="write-protected"):
        await efuse.burn_key("BLOCK_KEY1", KEY, "SECURE_BOOT_DIGEST0")
    # The ROM reports the new purposes in GET_SECURITY_INFO on the next connection.
    await flasher.close()
    async with slot.flasher() as again:
        assert again.info.security.key_purposes[:2] == (7, 9)


async def test_block_data_burns_once_then_refuses(slot: Slot, flasher: EspFlasher) -> None:
    efuse = EfuseSession(flasher)
    await efuse.burn_block_data("BLOCK_USR_DATA", b"SN-000123")  # short: padded to 32
    assert await efuse.read("BLOCK_USR_DATA") == b"SN-000123" + bytes(23)
    await efuse.burn_block_data("BLOCK_USR_DATA", b"SN-000123")  # same bits: fine
    with pytest.raises(EfuseRefused, match="RS coding scheme"):
        await efuse.burn_block_data("BLOCK_USR_DATA", b"SN-000124")
    assert await efuse.read("BLOCK_USR_DATA") == b"SN-000123" + bytes(23)  # unchanged
    # The refused data did not linger in espefuse's buffers for the next burn.
    await efuse.burn_block_data("BLOCK_SYS_DATA2", b"\x01\x02", offset=4)
    assert await efuse.read("BLOCK_SYS_DATA2") == bytes(4) + b"\x01\x02" + bytes(26)


async def test_write_protect_locks_a_field(slot: Slot, flasher: EspFlasher) -> None:
    efuse = EfuseSession(flasher)
    assert (await efuse.field("BLOCK_USR_DATA")).writeable
    await efuse.write_protect(["BLOCK_USR_DATA"])
    assert not (await efuse.field("BLOCK_USR_DATA")).writeable
    assert not (await efuse.field("CUSTOM_MAC")).writeable  # same WR_DIS bit (22)
    with pytest.raises(EfuseRefused, match="write-protected"):
        await efuse.burn_block_data("BLOCK_USR_DATA", b"late")
    await efuse.write_protect(["BLOCK_USR_DATA"])  # already done: fine
    with pytest.raises(EfuseRefused, match="cannot be write-protected"):
        await efuse.write_protect(["WR_DIS"])


async def test_secure_download_after_reset_leaves_only_flash_writes(
    slot: Slot, flasher: EspFlasher
) -> None:
    efuse = EfuseSession(flasher)
    await efuse.burn({"ENABLE_SECURITY_DOWNLOAD": 1})
    # The stub, not the ROM, answers until the next reset: the session goes on.
    assert efuse.link == "normal"
    assert await efuse.read("ENABLE_SECURITY_DOWNLOAD") is True
    await flasher.close()
    async with slot.flasher() as sdm:  # a new connection resets the simulated unit
        info = sdm.info
        assert info.security.secure_download and not info.stub and info.mac is None
        with pytest.raises(SecureDownloadMode, match="only allows get-security-info, write-flash"):
            await sdm.md5(0x10000, 4096)
        with pytest.raises(SecureDownloadMode):
            await EfuseSession(sdm).summary()
        data = image(32 * 1024, 11)
        [result] = await sdm.write([(0x10000, data)])
        assert not result.verified  # the ROM will not hash flash in this mode
    assert slot.rom.flash.read(0x10000, len(data)) == data


async def test_rom_loader_drops_to_secure_download_right_after_the_burn(slot: Slot) -> None:
    async with slot.flasher(stub=False) as rom:
        efuse = EfuseSession(rom)
        await efuse.burn({"ENABLE_SECURITY_DOWNLOAD": 1})  # espefuse: sys.exit(0)
        assert efuse.link == "secure-download"
        assert rom.info.security.secure_download
        with pytest.raises(SecureDownloadMode):
            await rom.read(0, 4096)
        await rom.write([(0x20000, b"still allowed")])
    assert slot.rom.flash.read(0x20000, 13) == b"still allowed"
    # espefuse re-connected, and without its DTR/RTS reset: the fixture owns those lines.
    asked_no_reset = [line for line in slot.lines if 'option "no-reset" was selected' in line]
    assert len(asked_no_reset) == 2


async def test_disabled_download_mode_takes_effect_at_the_next_reset(slot: Slot) -> None:
    async with slot.flasher(stub=False) as rom:
        efuse = EfuseSession(rom)
        await efuse.burn({"DIS_DOWNLOAD_MODE": 1})
        assert efuse.link == "normal"  # this ROM session still answers
        assert await efuse.read("DIS_DOWNLOAD_MODE") is True
    started = time.monotonic()
    with pytest.raises(NoSync, match="download mode is disabled by eFuse"):
        await slot.flasher(connect_attempts=1).connect()
    assert time.monotonic() - started < 5


async def test_espefuse_exit_after_the_chip_goes_silent_is_a_normal_result(
    slot: Slot, flasher: EspFlasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    efuse = EfuseSession(flasher)
    await efuse.read("WR_DIS")  # espefuse's command object now exists
    commands = efuse._commands
    real = commands.burn_all

    def burn_then_exit(*args: object, **kwargs: object) -> None:
        # What espefuse does when the chip stops answering after DIS_DOWNLOAD_MODE:
        # the batch's burn went through, re-connecting failed, sys.exit(0).
        real(*args, **kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(commands, "burn_all", burn_then_exit)
    assert await efuse.burn({"DIS_DOWNLOAD_MODE": 1}) == {}
    assert efuse.link == "disabled"
    with pytest.raises(DownloadModeDisabled, match="permanent"):
        await flasher.write([(0x10000, b"late")])
    with pytest.raises(DownloadModeDisabled):
        await efuse.read("MAC")


async def test_a_session_outlives_a_reconnect_of_its_flasher(slot: Slot) -> None:
    f = slot.flasher()
    await f.connect()
    efuse = EfuseSession(f)
    assert await efuse.read("KEY_PURPOSE_2") == "USER"
    await f.close()
    with pytest.raises(FlashError, match="not connected"):
        await efuse.read("KEY_PURPOSE_2")
    await f.connect()  # the fixture re-strapped the unit; same slot, new connection
    try:
        await efuse.burn({"KEY_PURPOSE_2": 8})
        assert await efuse.read("KEY_PURPOSE_2") == "HMAC_UP"
    finally:
        await f.close()
