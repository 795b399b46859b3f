"""Persistent simulated units (simulation.state_dir) and power cuts, through the real
EspFlasher, EfuseSession, LineClient and fixture-controller driver over ptys."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import struct
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import esptool.targets
import pytest
import yaml
from sim_helpers import FAST_BOARD

from ate.config.errors import InputError
from ate.config.fixture import Fixture
from ate.drivers.dut import TestFirmwareClient
from ate.drivers.esp import EfuseSession, EspFlasher
from ate.drivers.fixture import LineFixtureController
from ate.drivers.line_client import LineClient
from ate.protocol.lines import crc16
from ate.sim import devkey
from ate.sim.board import SimBoard
from ate.sim.fixture_twin import SimFixture, SimFixtureThread
from ate.sim.rom.chips import ESP32S3
from ate.sim.rom.efuses import EfuseBank
from ate.sim.rom.flash import SparseFlash
from ate.sim.rom.loader import RomLoader

ROOT = Path(__file__).resolve().parents[2]
TEST_FW = ROOT / "firmware" / "test_fw" / "sim" / "ate_test_fw-esp32s3.bin"
# What one uncompressed FLASH_DATA block carries once esptool's stub runs.
STUB_BLOCK = esptool.targets.ESP32S3ROM.STUB_CLASS.FLASH_WRITE_SIZE
SCRATCH = 0x200000  # a flash region nothing else uses


def usr_data(serial: str, product: int) -> bytes:
    """BLOCK_USR_DATA in layout A1 (PROVISIONING.md)."""
    head = b"A1" + serial.encode("ascii").ljust(16, b"\0") + struct.pack("<I", product)
    return head + struct.pack("<H", crc16(head)) + bytes(8)


def usr_block(bank: EfuseBank) -> bytes:
    """BLOCK3 (BLOCK_USR_DATA) as the chip's read registers hold it."""
    ctrl = bank.controller
    blk = ctrl.Blocks.get(ctrl.Blocks.BLOCKS[3])
    return b"".join(bank.read_reg(blk.rd_addr + 4 * i).to_bytes(4, "little") for i in range(8))


def stored_units(base: Path) -> list[Path]:
    return list(base.glob("**/flash.bin"))


def fixture(base: Path, **simulation: Any) -> Fixture:
    (base / "board.yaml").write_text(yaml.safe_dump({**FAST_BOARD, "boot_ms": 0}))
    return Fixture.model_validate(
        {
            "fixture": "state",
            "controller": {"driver": "sim"},
            "slots": [{"slot": 1, "port": "sim", "power": 1, "current_sense": 1}],
            "simulation": {"board": "board.yaml", "seed": 5, **simulation},
        }
    )


class Station:
    """The host side of slot 1: the fixture controller and, in turn, the DUT's port."""

    def __init__(self, twin: SimFixtureThread, ctrl: LineFixtureController) -> None:
        self.twin = twin
        self.ctrl = ctrl
        self.lines: list[str] = []

    @property
    def board(self) -> SimBoard:
        board = self.twin.board(1)
        assert board is not None
        return board

    @property
    def loader(self) -> RomLoader:
        server = self.twin.sim.server(1)
        assert server is not None and server.rom is not None
        return server.rom.loader

    @property
    def switched_on(self) -> bool:
        return self.twin.sim.controller.slots[1].switched_on

    def flasher(self) -> EspFlasher:
        return EspFlasher(self.twin.endpoints[1], chip="esp32s3", log=self.lines.append)

    async def download_mode(self) -> None:
        await self.ctrl.power(1, True)
        await self.ctrl.strap(1, "boot")

    @contextlib.asynccontextmanager
    async def firmware(self) -> AsyncIterator[TestFirmwareClient]:
        """Power on into the test firmware (READY seen) and talk to it."""
        line = await LineClient.open(self.twin.endpoints[1])
        try:
            ready = line.expect_notice("READY")
            await self.ctrl.power(1, True)
            await self.ctrl.strap(1, "run")
            await asyncio.wait_for(ready, 5)
            yield TestFirmwareClient(line, timeout=2.0, attempts=1)
        finally:
            await line.close()


@contextlib.asynccontextmanager
async def station(fx: Fixture, base: Path) -> AsyncIterator[Station]:
    with SimFixtureThread(fx, base) as twin:
        ctrl = await LineFixtureController.open(twin.controller_endpoint)
        try:
            yield Station(twin, ctrl)
        finally:
            await ctrl.close()


async def wait_cut(cut: threading.Event) -> None:
    assert await asyncio.to_thread(cut.wait, 20), "the armed power cut never happened"


async def abandon(task: asyncio.Task[Any]) -> None:
    """The host gives up on a call the unit will never answer."""
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


# ---- state_dir ---------------------------------------------------------------------


async def test_units_survive_a_restart_of_the_simulator(tmp_path: Path) -> None:
    fx = fixture(tmp_path, state_dir="units", preflash=str(TEST_FW))
    data = random.Random(3).randbytes(3000)
    a1 = usr_data("S3-000123", 0x5301)
    unit_dir = tmp_path / "units" / "slot1"
    async with station(fx, tmp_path) as st:
        async with st.firmware() as fw:
            pub, new = await fw.prov_key()
        assert new
        await st.download_mode()
        async with st.flasher() as f:
            await f.write([(SCRATCH, data)])
            await EfuseSession(f).burn_block_data("BLOCK_USR_DATA", a1)
        # Already on disk while the simulator runs: a killed process loses none of it.
        on_disk = SparseFlash.load(unit_dir / "flash.bin")
        assert on_disk.read(SCRATCH, len(data)) == data
        copy = tmp_path / "efuse-copy.bin"
        shutil.copy(unit_dir / "efuse.bin", copy)
        assert usr_block(EfuseBank(ESP32S3, path=copy)) == a1

    async with station(fx, tmp_path) as st:
        async with st.firmware() as fw:
            assert await fw.prov_key() == (pub, False)
        await st.download_mode()
        async with st.flasher() as f:
            assert await f.read(SCRATCH, len(data)) == data
            assert await EfuseSession(f).read("BLOCK_USR_DATA") == a1
            raw = await f.read(devkey.DEV_KEY_OFFSET, devkey.RECORD_SIZE)
            assert st.lines and f.info.mac == st.board.mac
    d = devkey.decode_record(raw)
    assert d is not None and devkey.public_point(devkey.private_key(d)) == pub


async def test_preflash_and_arrival_efuses_only_make_a_new_unit(tmp_path: Path) -> None:
    fx = fixture(
        tmp_path,
        state_dir=str(tmp_path / "abs-units"),  # absolute works as well as relative
        preflash=str(TEST_FW),
        slots={1: {"efuses": {"DIS_USB_JTAG": 1}}},
    )
    async with station(fx, tmp_path) as st:
        assert st.loader.efuses.field("DIS_USB_JTAG")
        assert st.loader.flash.read(0x10000, 4) == TEST_FW.read_bytes()[:4]
        await st.download_mode()
        async with st.flasher() as f:
            await f.erase_region(0x10000, 0x10000)
    async with station(fx, tmp_path) as st:
        assert st.loader.flash.read(0x10000, 0x10000) == b"\xff" * 0x10000  # not reflashed
        assert st.loader.efuses.field("DIS_USB_JTAG")
    assert (tmp_path / "abs-units" / "slot1" / "efuse.bin").exists()


async def test_without_state_dir_every_start_is_a_new_unit(tmp_path: Path) -> None:
    fx = fixture(tmp_path, preflash=str(TEST_FW))
    async with station(fx, tmp_path) as st, st.firmware() as fw:
        first, new = await fw.prov_key()
        assert new
    async with station(fx, tmp_path) as st, st.firmware() as fw:
        second, new = await fw.prov_key()
        assert new and second != first
    assert not stored_units(tmp_path)


async def test_state_dir_refuses_another_unit_and_a_second_simulator(tmp_path: Path) -> None:
    fx = fixture(tmp_path, state_dir="units")
    sim = SimFixture(fx, tmp_path)
    await sim.start()
    try:
        other = SimFixture(fx, tmp_path)
        with pytest.raises(InputError, match="another simulated fixture is running"):
            await other.start()
    finally:
        await sim.stop()
    again = SimFixture(fx, tmp_path)  # free again once the first has stopped
    await again.start()
    await again.stop()
    reseeded = fx.model_copy(
        update={"simulation": fx.simulation.model_copy(update={"seed": 6})}  # type: ignore[union-attr]
    )
    with pytest.raises(InputError, match="holds a unit with MAC"):
        SimFixture(reseeded, tmp_path)
    (tmp_path / "units" / "slot1" / "flash.bin").write_bytes(b"junk")
    with pytest.raises(InputError, match="slot 1's flash"):
        SimFixture(fx, tmp_path)


# ---- power cuts --------------------------------------------------------------------


@pytest.mark.parametrize("applied", [True, False])
async def test_power_cut_at_a_flash_write(tmp_path: Path, applied: bool) -> None:
    data = random.Random(9).randbytes(3 * STUB_BLOCK)
    async with station(fixture(tmp_path), tmp_path) as st:
        await st.download_mode()
        async with st.flasher() as f:
            cut = st.twin.arm_power_cut(1, "flash-write", nth=2, applied=applied)
            write = asyncio.create_task(f.write([(SCRATCH, data)], compress=False))
            await wait_cut(cut)
            await abandon(write)
        written = 2 * STUB_BLOCK if applied else STUB_BLOCK
        flash = st.loader.flash
        assert flash.read(SCRATCH, len(data)) == data[:written] + b"\xff" * (len(data) - written)
        assert not st.board.powered and not st.loader.active and not st.switched_on
        await st.ctrl.strap(1, "boot")  # EN alone brings nothing back
        assert not st.board.powered and not st.loader.active
        await st.download_mode()  # power.set 1: the ROM answers again, the data is kept
        async with st.flasher() as f:
            assert await f.image_present(SCRATCH, data[:written])
        assert st.switched_on


@pytest.mark.parametrize("applied", [True, False])
async def test_power_cut_at_an_efuse_burn(tmp_path: Path, applied: bool) -> None:
    async with station(fixture(tmp_path), tmp_path) as st:
        await st.download_mode()
        cut = st.twin.arm_power_cut(1, "efuse-burn", applied=applied)
        async with st.flasher() as f:
            burn = asyncio.create_task(EfuseSession(f).burn({"DIS_USB_JTAG": 1}))
            await wait_cut(cut)
            assert not st.board.powered and not st.loader.active and not st.switched_on
            await abandon(burn)
        assert bool(st.loader.efuses.field("DIS_USB_JTAG")) is applied
        await st.download_mode()
        async with st.flasher() as f:
            assert await EfuseSession(f).read("DIS_USB_JTAG") is applied


@pytest.mark.parametrize("applied", [True, False])
async def test_power_cut_at_a_command(tmp_path: Path, applied: bool) -> None:
    async with station(fixture(tmp_path, preflash=str(TEST_FW)), tmp_path) as st:
        async with st.firmware() as fw:
            cut = st.twin.arm_power_cut(1, "command", command="prov.key", applied=applied)
            call = asyncio.create_task(fw.prov_key())
            await wait_cut(cut)
            await abandon(call)
            assert not st.board.powered and not st.switched_on
            stored = devkey.decode_record(st.loader.flash.read(devkey.DEV_KEY_OFFSET, 0x1000))
            assert (stored is not None) is applied
        async with st.firmware() as fw:
            pub, new = await fw.prov_key()
        assert new is not applied
        if stored is not None:
            assert devkey.public_point(devkey.private_key(stored)) == pub


async def test_power_cut_counts_only_its_command_and_fires_once(tmp_path: Path) -> None:
    async with station(fixture(tmp_path, preflash=str(TEST_FW)), tmp_path) as st:
        async with st.firmware() as fw:
            cut = st.twin.arm_power_cut(1, "command", command="ping", nth=2)
            await fw.ping()
            await fw.uptime_ms()  # another command: not counted
            assert not cut.is_set()
            call = asyncio.create_task(fw.ping())
            await wait_cut(cut)
            await abandon(call)
            assert not st.board.powered
        async with st.firmware() as fw:  # one-shot: pings are answered again
            await fw.ping()
            await fw.ping()


async def test_arming_mistakes_are_refused(tmp_path: Path) -> None:
    async with station(fixture(tmp_path), tmp_path) as st:
        arm = st.twin.arm_power_cut
        with pytest.raises(ValueError, match="no slot 2"):
            arm(2, "command", command="ping")
        with pytest.raises(ValueError, match="exactly when at is 'command'"):
            arm(1, "command")
        with pytest.raises(ValueError, match="exactly when at is 'command'"):
            arm(1, "flash-write", command="ping")
        with pytest.raises(ValueError, match="nth counts from 1"):
            arm(1, "efuse-burn", nth=0)
        with pytest.raises(ValueError, match="allowed are"):
            arm(1, "reset")  # type: ignore[arg-type]


async def test_rom_answers_wait_for_the_host_instead_of_being_lost(tmp_path: Path) -> None:
    # No wire-time model: the stub sends a whole read burst at once, far more than a pty
    # buffer holds. The bytes queue for esptool as a paced UART would deliver them.
    data = random.Random(4).randbytes(256 * 1024)
    async with station(fixture(tmp_path, state_dir="units"), tmp_path) as st:
        await st.download_mode()
        async with st.flasher() as f:
            await f.write([(SCRATCH, data)])
            assert await f.read(SCRATCH, len(data)) == data
