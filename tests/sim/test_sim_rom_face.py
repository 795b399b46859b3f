"""The ROM face on a slot's pty with the wire-time model: real esptool through the
driver, long answers paced in slices (never held back until esptool gives up)."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from ate.config.fixture import Fixture
from ate.drivers.esp import EspFlasher
from ate.drivers.fixture import LineFixtureController
from ate.sim.fixture_twin import SimFixtureThread

ROOT = Path(__file__).resolve().parents[2]


def _fixture(tmp_path: Path) -> Fixture:
    board = ROOT / "fixtures" / "sim" / "board-s3-devkit.yaml"
    return Fixture.model_validate(
        yaml.safe_load(f"""
fixture: wire
controller: {{driver: sim}}
slots: [{{slot: 1, port: sim, power: 1, current_sense: 1}}]
simulation: {{board: {board}, wire_time: true}}
""")
    )


async def test_read_burst_is_paced_not_stalled(tmp_path: Path) -> None:
    size = 128 * 1024
    with SimFixtureThread(_fixture(tmp_path), tmp_path) as twin:
        ctrl = await LineFixtureController.open(twin.controller_endpoint)
        await ctrl.power(1, True)
        await ctrl.strap(1, "boot")
        lines: list[str] = []
        async with EspFlasher(
            twin.endpoints[1], chip="esp32s3", baud=921600, log=lines.append
        ) as flasher:
            started = time.monotonic()
            data = await flasher.read(0x10000, size)
            took = time.monotonic() - started
        await ctrl.close()
        face = twin.sim.server(1).rom  # type: ignore[union-attr]
    assert data == b"\xff" * size  # a blank unit
    # The model may not deliver faster than the UART: 10 bits a byte at 921600 baud.
    assert took >= size * 10 / 921600
    assert face is not None and face.tx_bytes > size
    assert any("Stub flasher running" in line for line in lines)
