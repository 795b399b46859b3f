"""Fixtures for the esp driver tests: simulated ESP32 ROM loaders on 127.0.0.1 and
flashers connected to them (helpers live in esp_helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from esp_helpers import Slot, SlotFactory

from ate.drivers.esp import EspFlasher
from ate.sim.rom.server import RomServer


@pytest.fixture
async def make_slot(tmp_path: Path) -> AsyncIterator[SlotFactory]:
    """`await make_slot(n, chip="esp32s3", **sim_options)`: a running simulated unit."""
    started: list[RomServer] = []

    async def make(n: int = 1, chip: str = "esp32s3", **options: object) -> Slot:
        mac = f"24:0a:c4:00:{0x10 + n:02x}:{0x20 + n:02x}"
        rom = RomServer(chip, state_dir=tmp_path / f"unit{n}-{chip}", mac=mac, seed=n, **options)  # type: ignore[arg-type]
        await rom.start()
        started.append(rom)
        return Slot(rom, mac)

    try:
        yield make
    finally:
        for rom in started:
            await rom.stop()


@pytest.fixture
async def slot(make_slot: SlotFactory) -> Slot:
    return await make_slot(1)


@pytest.fixture
async def flasher(slot: Slot) -> AsyncIterator[EspFlasher]:
    """A flasher connected (stub running) to the first simulated unit."""
    f = slot.flasher()
    await f.connect()
    try:
        yield f
    finally:
        await f.close()
