"""The line-time model (`simulation: {timing: line}`): a flash write, an eFuse burn and
prov.sign take at least their modelled time (loop clock around one operation, never an
upper bound); under `timing: none` they add nothing; `timing: bogus` is refused."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from ate.protocol.lines import Request
from ate.protocol.slip import SYNC_PAYLOAD, Op, encode_command, encode_data_command
from ate.sim.board import SimBoard
from ate.sim.dut_server import DutServer
from ate.sim.rom.chips import ESP32S3
from ate.sim.rom.efuses import EfuseBank
from ate.sim.rom.face import RomFace
from ate.sim.rom.flash import SparseFlash
from ate.sim.rom.loader import RomLoader
from ate.sim.timing import LINE, LineTimes
from tests.ate_cli import run_ate
from tests.sim.sim_helpers import LineClient, make_spec

BOARD = Path(__file__).resolve().parents[2] / "fixtures" / "sim" / "board-s3-devkit.yaml"


class _Host:
    """A RomFace on this loop and what it answers, with the loop time of each answer."""

    def __init__(self, timing: LineTimes | None) -> None:
        loader = RomLoader(ESP32S3, SparseFlash(ESP32S3.default_flash_size), EfuseBank(ESP32S3))
        self.face = RomFace(loader, timing=timing)
        self.answers: list[bytes] = []
        self.got = asyncio.Event()

    def start(self) -> None:
        self.face.attach(self._answer, lambda _event: None)
        self.face.loader.reset(download=True)

    def _answer(self, data: bytes) -> None:
        self.answers.append(data)
        self.got.set()

    async def send(self, frame: bytes) -> float:
        """Send one command; the loop time until its answer's last byte is here."""
        loop = asyncio.get_running_loop()
        self.got.clear()
        self.answers.clear()
        started = loop.time()
        self.face.from_host(frame)
        async with asyncio.timeout(5):
            while not self.answers or not self.answers[-1].endswith(b"\xc0"):
                await self.got.wait()
                self.got.clear()
        return loop.time() - started


FLASH_AT = 0x10000
DATA = bytes(range(256)) * 16  # one 4 KiB sector


async def _flash_write(host: _Host) -> float:
    """FLASH_BEGIN then one FLASH_DATA in the ROM (no stub): the time of both answers."""
    took = await host.send(_begin_frame())
    return took + await host.send(encode_data_command(Op.FLASH_DATA, DATA, 0))


def _begin() -> bytes:
    return struct.pack("<IIII", len(DATA), 1, len(DATA), FLASH_AT) + b"\0" * 4


def _efuse_program_frames(loader: RomLoader) -> tuple[bytes, bytes]:
    regs = loader.efuses.controller.REGS

    def write_reg(addr: int, value: int) -> bytes:
        return encode_command(
            Op.WRITE_REG,
            addr.to_bytes(4, "little")
            + value.to_bytes(4, "little")
            + (0xFFFFFFFF).to_bytes(4, "little")
            + (0).to_bytes(4, "little"),
        )

    return (
        write_reg(regs.EFUSE_CONF_REG, regs.EFUSE_WRITE_OP_CODE),
        write_reg(regs.EFUSE_CMD_REG, regs.EFUSE_PGM_CMD | 3 << 2),  # BLOCK3
    )


async def test_flash_write_takes_the_modelled_time() -> None:
    host = _Host(LINE)
    host.start()
    await host.send(encode_command(Op.SYNC, SYNC_PAYLOAD))
    took = await _flash_write(host)
    modelled = LINE.erase_s(FLASH_AT, len(DATA)) + LINE.program_s(FLASH_AT, len(DATA))
    assert took >= modelled
    assert host.face.loader.flash.read(FLASH_AT, len(DATA)) == DATA
    assert host.face.critical_s >= modelled
    host.face.detach()


async def test_efuse_burn_takes_the_modelled_time() -> None:
    host = _Host(LINE)
    host.start()
    conf, program = _efuse_program_frames(host.face.loader)
    await host.send(conf)
    assert await host.send(program) >= LINE.efuse_program_s
    host.face.detach()


async def test_timing_none_answers_at_once() -> None:
    host = _Host(None)
    host.start()
    conf, program = _efuse_program_frames(host.face.loader)
    for frame in (encode_command(Op.SYNC, SYNC_PAYLOAD), _begin_frame(), conf, program):
        host.answers.clear()
        host.face.from_host(frame)
        # Answered inside from_host: no sleep, not even one turn of the loop.
        assert host.answers and host.answers[-1].endswith(b"\xc0")
    assert host.face.loader.take_work() == (0.0, 0.0)
    assert host.face.critical_s == 0.0


def _begin_frame() -> bytes:
    return encode_command(Op.FLASH_BEGIN, _begin())


async def _prov_sign(timing: LineTimes | None) -> tuple[float, DutServer, SimBoard]:
    board = SimBoard(make_spec(boot_ms=0, boot_noise=False), seed=1)
    server = DutServer(board, "pty", timing=timing)
    await server.start()
    client = await LineClient.open(server.endpoint)
    try:
        server.power(True)
        await client.notice("READY")
        await client.ok("prov.key")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.ok("prov.sign", "00" * 32)
        return loop.time() - started, server, board
    finally:
        await client.close()
        await server.stop()


async def test_prov_sign_takes_the_modelled_time() -> None:
    took, server, _ = await _prov_sign(LINE)
    assert took >= LINE.sign_s
    assert server.modelled_s >= LINE.keygen_s + LINE.sign_s


async def test_prov_sign_without_the_model_adds_nothing() -> None:
    _, server, board = await _prov_sign(None)
    # The only sleep a request gets is its latency; with none it is answered at once.
    assert board.latency_s(Request(1, "prov.sign", ("00" * 32,), {})) == 0.0
    assert server.modelled_s == 0.0


def test_timing_bogus_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "board.yaml").write_bytes(BOARD.read_bytes())
    path = tmp_path / "fixture.yaml"
    path.write_text(
        "fixture: bench\n"
        "controller: {driver: sim}\n"
        "simulation:\n"
        "  board: board.yaml\n"
        "  timing: bogus\n"
        "slots:\n"
        "  - {slot: 1, port: sim, power: 0, current_sense: 0}\n"
    )
    line, column = 5, 11
    result = run_ate("validate", path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{path}:{line}:{column}: ")
    assert lines[0].endswith("simulation.timing: 'bogus' is not allowed; allowed: none, line")


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [
        (0x10000, 0x1000, LINE.sector_erase_s),
        (0x10000, 0x10000, LINE.block_erase_s),
        (0xF000, 0x12000, LINE.sector_erase_s * 2 + LINE.block_erase_s),
    ],
)
def test_erase_uses_blocks_where_whole_ones_fit(offset: int, length: int, expected: float) -> None:
    assert LINE.erase_s(offset, length) == pytest.approx(expected)
