"""EspFlasher against simulated ESP32 ROM loaders: real esptool on the far side of a socket."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import socket
import time

import pytest
import serial
from esp_helpers import Slot, SlotFactory, image, noise

from ate.drivers.esp import (
    EspFlasher,
    FlashError,
    ImageOverlap,
    ImageTooLarge,
    PortUnavailable,
    VerifyFailed,
    WrongChip,
)

MIB = 1 << 20


async def test_connect_identifies_the_s3_and_logs_it(slot: Slot) -> None:
    async with slot.flasher() as f:
        info = f.info
    assert info.chip == "esp32s3"
    assert info.description.startswith("ESP32-S3")
    assert info.mac == slot.mac
    assert info.flash_size == 8 * MIB
    assert info.stub and info.baud == 460800
    assert info.security.chip_id == 9 and not info.security.secure_download
    assert info.security.key_purposes[:6] == (0, 0, 0, 0, 0, 0)
    assert not info.security.flash_encryption and not info.security.secure_boot
    text = slot.log_text()
    assert f"Serial port {slot.url}" in text
    assert "Stub flasher running" in text
    assert f"MAC {slot.mac}" in text


async def test_rom_only_connection_without_the_stub(slot: Slot) -> None:
    async with slot.flasher(stub=False, baud=115200) as f:
        assert not f.info.stub
        data = image(64 * 1024, 7)
        [raw] = await f.write([(0x20000, data)], compress=False)
        [deflated] = await f.write([(0x40000, data)], compress=True)
        assert raw.verified and deflated.verified and deflated.compressed
        assert await f.image_present(0x20000, data)
        assert await f.md5(0x40000, len(data)) == hashlib.md5(data).hexdigest()
    assert "Stub flasher running" not in slot.log_text()


async def test_wrong_chip_is_refused_and_the_port_released(slot: Slot) -> None:
    started = time.monotonic()
    with pytest.raises(WrongChip) as e:
        await slot.flasher(chip="esp32c3").connect()
    assert (e.value.found, e.value.wanted) == ("esp32s3", "esp32c3")
    assert time.monotonic() - started < 5
    async with slot.flasher() as f:  # the port was closed: the right chip connects
        assert f.info.chip == "esp32s3"


async def test_a_c3_in_an_s3_station_is_refused(make_slot: SlotFactory) -> None:
    c3 = await make_slot(2, chip="esp32c3")
    with pytest.raises(WrongChip, match="found esp32c3, this station expects esp32s3"):
        await c3.flasher(chip="esp32s3").connect()


async def test_a_port_with_nothing_behind_it_fails_fast() -> None:
    with socket.socket() as s:  # a port number that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(PortUnavailable) as e:
        await EspFlasher(f"socket://127.0.0.1:{port}", chip="esp32s3", log=lines.append).connect()
    assert time.monotonic() - started < 2
    assert e.value.problem == "gone"
    assert "unplugged or the port name is wrong" in str(e.value)


async def test_a_port_another_program_holds_is_busy() -> None:
    controller, device = os.openpty()
    name = os.ttyname(device)
    holder = serial.Serial(name, exclusive=True)  # a terminal left open on the slot
    try:
        with pytest.raises(PortUnavailable) as e:
            await EspFlasher(name, chip="esp32s3", log=lambda _: None).connect()
        assert e.value.problem == "busy"
        assert "another program" in str(e.value)
    finally:
        holder.close()
        os.close(controller)
        os.close(device)


async def test_write_compressed_and_raw_verify_and_read_back(
    slot: Slot, flasher: EspFlasher
) -> None:
    firmware, blob = image(256 * 1024, 1), noise(64 * 1024, 2)
    [fw, nz] = await flasher.write([(0x10000, firmware), (0x80000, blob)])
    assert (fw.offset, fw.size, fw.md5) == (
        0x10000,
        len(firmware),
        hashlib.md5(firmware).hexdigest(),
    )
    assert fw.compressed and fw.wire_bytes is not None and fw.wire_bytes < 0.7 * len(firmware)
    assert not nz.compressed  # deflate cannot shrink noise: esptool sends it raw
    assert fw.verified and nz.verified and fw.seconds > 0
    [raw] = await flasher.write([(0x100000, firmware)], compress=False)
    assert not raw.compressed and raw.wire_bytes is not None and raw.wire_bytes >= len(firmware)

    assert await flasher.read(0x10000, len(firmware)) == firmware
    assert await flasher.image_present(0x100000, firmware)
    assert slot.rom.flash.read(0x80000, len(blob)) == blob  # the sim agrees, independently
    assert await flasher.md5(0x80000, len(blob)) == hashlib.md5(blob).hexdigest()
    stages = {p.stage for _, p in slot.progress}
    assert {"write", "read"} <= stages
    done = [p for _, p in slot.progress if p.stage == "write" and p.offset == 0x10000]
    assert done[-1].done_bytes == done[-1].total_bytes == len(firmware)


async def test_image_present_tells_a_rewrite_can_be_skipped(flasher: EspFlasher) -> None:
    firmware = image(128 * 1024, 3)
    assert not await flasher.image_present(0x10000, firmware)
    await flasher.write([(0x10000, firmware)])
    assert await flasher.image_present(0x10000, firmware)
    changed = firmware[:-1] + bytes([firmware[-1] ^ 1])
    assert not await flasher.image_present(0x10000, changed)
    assert not await flasher.image_present(0x11000, firmware)  # right image, wrong place


async def test_erase_region_erases_exactly_the_sectors_asked(flasher: EspFlasher) -> None:
    firmware = image(64 * 1024, 4)
    await flasher.write([(0x10000, firmware)])
    await flasher.erase_region(0x12000, 0x2000)
    back = await flasher.read(0x10000, len(firmware))
    assert back[:0x2000] == firmware[:0x2000]
    assert back[0x2000:0x4000] == b"\xff" * 0x2000
    assert back[0x4000:] == firmware[0x4000:]
    with pytest.raises(ValueError, match="multiples"):
        await flasher.erase_region(0x12001, 0x1000)


async def test_refused_plans_write_nothing(slot: Slot, flasher: EspFlasher) -> None:
    before = slot.rom.flash.written_sectors
    lines_before = len(slot.lines)
    with pytest.raises(ImageTooLarge):
        await flasher.write([(0x10000, image(64 * 1024, 5)), (8 * MIB - 0x1000, bytes(0x2000))])
    with pytest.raises(ImageOverlap):
        await flasher.write([(0x10000, image(64 * 1024, 5)), (0x18000, image(0x1000, 6))])
    assert slot.rom.flash.written_sectors == before
    assert not any("Writing" in line or "erase" in line for line in slot.lines[lines_before:])


async def test_corrupted_flash_is_caught_with_both_digests(slot: Slot, flasher: EspFlasher) -> None:
    firmware = image(64 * 1024, 8)
    await flasher.write([(0x10000, firmware)])
    await flasher.verify(0x10000, firmware)
    at = next(i for i, b in enumerate(firmware) if i > 1000 and b not in (0, 0xFF))
    slot.rom.flash.program(0x10000 + at, bytes([~firmware[at] & 0xFF]))  # NOR: AND -> 0
    with pytest.raises(VerifyFailed) as e:
        await flasher.verify(0x10000, firmware)
    assert e.value.offset == 0x10000
    assert e.value.expected_md5 == hashlib.md5(firmware).hexdigest()
    corrupted = firmware[:at] + b"\x00" + firmware[at + 1 :]
    assert e.value.got_md5 == hashlib.md5(corrupted).hexdigest()
    assert not await flasher.image_present(0x10000, firmware)


async def test_four_slots_flash_in_parallel_each_with_its_own_log(make_slot: SlotFactory) -> None:
    slots = [await make_slot(n, wire_time=True) for n in range(1, 5)]
    firmware = [image(64 * 1024, 100 + n) for n in range(4)]
    flashers = [s.flasher() for s in slots]
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def run(f: EspFlasher, data: bytes) -> None:
        async with f:
            [r] = await f.write([(0x10000, data)])
            assert r.verified
            assert await f.image_present(0x10000, data)

    tick = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(run(f, d) for f, d in zip(flashers, firmware, strict=True)))
    finally:
        tick.cancel()

    windows = []
    for s, data in zip(slots, firmware, strict=True):
        assert s.rom.flash.read(0x10000, len(data)) == data
        own = s.log_text()
        assert f"Serial port {s.url}" in own and f"MAC {s.mac}" in own
        for other in slots:
            if other is not s:
                assert other.url not in own and other.mac not in own
        times = [t for t, p in s.progress if p.stage == "write"]
        windows.append((min(times), max(times)))
    # Every slot was writing while every other one was: the flashes overlapped.
    assert max(start for start, _ in windows) < min(end for _, end in windows)
    # And the event loop kept ticking throughout (a blocking call would stall it).
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.25


async def test_closing_after_a_cancelled_write_does_not_wait_for_the_image(
    make_slot: SlotFactory,
) -> None:
    slot = await make_slot(5, wire_time=True)  # ~3 s of line time for this image
    writing = asyncio.Event()
    f = EspFlasher(
        slot.url,
        chip="esp32s3",
        log=slot.lines.append,
        progress=lambda p: writing.set() if p.stage == "write" and p.done_bytes else None,
    )
    await f.connect()
    task = asyncio.create_task(f.write([(0x10000, noise(160 * 1024, 12))]))
    await writing.wait()
    task.cancel()
    started = time.monotonic()
    await f.close()
    assert time.monotonic() - started < 1.5
    with pytest.raises(asyncio.CancelledError):
        await task
    async with slot.flasher() as again:  # the port is free and the unit answers
        assert not await again.image_present(0x10000, noise(160 * 1024, 12))


async def test_a_link_lost_mid_write_fails_the_slot_without_esptool_resetting(
    make_slot: SlotFactory,
) -> None:
    slot = await make_slot(6, wire_time=True)
    writing = asyncio.Event()
    f = EspFlasher(
        slot.url,
        chip="esp32s3",
        log=slot.lines.append,
        progress=lambda p: writing.set() if p.stage == "write" and p.done_bytes else None,
    )
    async with f:
        task = asyncio.create_task(f.write([(0x10000, noise(160 * 1024, 13))]))
        await writing.wait()
        await slot.rom.stop()  # the adapter is pulled out
        with pytest.raises(PortUnavailable, match="gone"):
            await task
    # esptool's own answer would be to reopen the port and reset the chip via DTR/RTS.
    assert not any("Lost connection" in line for line in slot.lines)


async def test_nothing_reaches_the_process_console(
    slot: Slot, capfd: pytest.CaptureFixture[str]
) -> None:
    async with slot.flasher() as f:
        await f.write([(0x10000, image(64 * 1024, 9))])
        await f.read(0x10000, 4096)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert any("Hash of data verified" in line for line in slot.lines)


async def test_closed_flasher_refuses_and_close_is_idempotent(slot: Slot) -> None:
    f = slot.flasher()
    with pytest.raises(FlashError, match="not connected"):
        await f.md5(0, 4096)
    await f.connect()
    await f.close()
    await f.close()
    with pytest.raises(FlashError, match="not connected"):
        await f.read(0, 4096)
    async with slot.flasher() as again:  # the sim sees the port free again
        assert again.info.mac == slot.mac
