"""The fixture twin through its own port: power, straps, presence, clamp, LEDs, isense, DMM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sim_helpers import FAST_BOARD, LineClient

from ate.config.errors import InputError
from ate.config.fixture import Fixture
from ate.config.loader import load_model
from ate.protocol.lines import ErrorReply, Notice, Reply, encode_request
from ate.sim.fixture_twin import SimFixture, SimFixtureThread

ROOT = Path(__file__).resolve().parents[2]
# Units come blank from the factory; these tests talk to the test firmware, so their
# units come with it already in flash (the twin's ROM face is tested in tests/sim_rom).
TEST_FW = str(ROOT / "firmware" / "test_fw" / "sim" / "ate_test_fw-esp32s3.bin")


def fixture_model(simulation: dict[str, Any], slots: int = 4) -> Fixture:
    return Fixture.model_validate(
        {
            "fixture": "twin-test",
            "controller": {"driver": "sim"},
            "slots": [
                {"slot": n, "port": "sim", "power": n, "current_sense": n}
                for n in range(1, slots + 1)
            ],
            "resources": {"dmm": {"kind": "dmm"}},
            "simulation": simulation,
        }
    )


@pytest.fixture
def board_dir(tmp_path: Path) -> Path:
    (tmp_path / "board.yaml").write_text(yaml.safe_dump(FAST_BOARD))
    return tmp_path


class Rig:
    def __init__(self, sim: SimFixture, ctl: LineClient) -> None:
        self.sim = sim
        self.ctl = ctl
        self.duts: dict[int, LineClient] = {}

    async def dut(self, slot: int) -> LineClient:
        if slot not in self.duts:
            self.duts[slot] = await LineClient.open(self.sim.endpoints[slot])
        return self.duts[slot]

    async def power_up(self, slot: int) -> LineClient:
        dut = await self.dut(slot)
        assert await self.ctl.ok("power.set", slot, 1) == {}
        await dut.notice("READY")
        return dut

    async def isense(self, slot: int, samples: int = 16) -> tuple[float, float, float]:
        f = await self.ctl.ok("isense.read", slot, samples=samples)
        return float(f["ma"]), float(f["min"]), float(f["max"])


@pytest.fixture
async def rig(board_dir: Path) -> AsyncIterator[Rig]:
    model = fixture_model(
        {"board": "board.yaml", "seed": 5, "slots": {4: {"empty": True}}, "preflash": TEST_FW},
        slots=4,
    )
    sim = SimFixture(model, board_dir, transport="pty")
    await sim.start()
    ctl = await LineClient.open(sim.controller_endpoint)
    r = Rig(sim, ctl)
    try:
        yield r
    finally:
        for c in (ctl, *r.duts.values()):
            await c.close()
        await sim.stop()


async def test_info_ping_and_presence(rig: Rig) -> None:
    info = await rig.ctl.ok("info")
    assert info == {"proto": "1", "fw": "ate-fixture-sim/1.0.0", "slots": "4"}
    assert await rig.ctl.ok("ping") == info
    assert [(await rig.ctl.ok("present.get", n))["present"] for n in (1, 2, 3, 4)] == [
        "1",
        "1",
        "1",
        "0",
    ]
    assert await rig.ctl.err("present.get", 5) == "EARG"
    assert await rig.ctl.err("relay.set", 1) == "EUNKNOWN"


async def test_power_set_boots_the_dut_and_off_silences_it(rig: Rig) -> None:
    dut = await rig.power_up(2)
    assert await dut.ok("ping") == {}
    board = rig.sim.board(2)
    assert board is not None and board.powered
    await rig.ctl.ok("power.set", 2, 0)
    assert not board.powered
    assert rig.sim.board(1) is not None and not rig.sim.board(1).powered  # type: ignore[union-attr]
    assert await rig.ctl.err("power.set", 2, 2) == "EARG"


async def test_strap_run_resets_and_boot_enters_download(rig: Rig) -> None:
    dut = await rig.power_up(1)
    await rig.ctl.ok("strap", 1, "boot")
    await dut.next(lambda e: getattr(e, "text", "") == "waiting for download")
    await rig.ctl.ok("strap", 1, "run")
    await dut.notice("READY")
    assert await dut.ok("ping") == {}
    assert await rig.ctl.err("strap", 1, "flash") == "EARG"


async def test_isense_follows_the_power_mode(rig: Rig) -> None:
    board = rig.sim.board(1)
    assert board is not None
    assert await rig.isense(1) == (0.0, 0.0, 0.0)  # unpowered
    dut = await rig.power_up(1)
    idle, lo, hi = await rig.isense(1)
    assert lo <= idle <= hi and lo < hi
    assert idle == pytest.approx(board.current_ma(), rel=0.01)
    assert 30 <= idle <= 34
    await dut.ok("power.mode", "active")
    active, _, _ = await rig.isense(1)
    assert 81 <= active <= 89
    await dut.ok("power.mode", "light_sleep", hold_ms=300)
    light, _, _ = await rig.isense(1)
    assert 0.74 <= light <= 0.86
    await dut.notice("AWAKE")
    assert (await rig.isense(1))[0] == pytest.approx(idle, rel=0.01)
    await dut.ok("power.mode", "deep_sleep", hold_ms=300)
    deep, _, _ = await rig.isense(1, samples=100)
    assert 0.010 <= deep <= 0.014
    await dut.notice("READY")
    assert await rig.isense(4) == (0.0, 0.0, 0.0)  # empty slot
    assert await rig.ctl.err("isense.read", 1, samples=0) == "EARG"


async def test_isense_takes_a_millisecond_per_sample(rig: Rig) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await rig.isense(1, samples=1)
    t1 = loop.time()
    await rig.isense(1, samples=100)
    t2 = loop.time()
    assert t2 - t1 >= 0.095
    assert t1 - t0 < t2 - t1


async def test_dmm_reads_the_rail(rig: Rig) -> None:
    board = rig.sim.board(3)
    assert board is not None
    assert await rig.ctl.ok("dmm.read", 3, "3v3") == {"v": "0.0000"}  # unpowered
    await rig.power_up(3)
    v = float((await rig.ctl.ok("dmm.read", 3, "3v3"))["v"])
    assert v == pytest.approx(board.rail_v("3v3"), abs=0.003)
    assert 3.28 <= v <= 3.32
    assert 1.78 <= float((await rig.ctl.ok("dmm.read", 3, "1v8"))["v"]) <= 1.82
    assert await rig.ctl.err("dmm.read", 3, "5v0") == "EARG"
    assert await rig.ctl.ok("dmm.read", 4, "3v3") == {"v": "0.0000"}  # empty slot


async def test_one_dmm_serialises_reads(rig: Rig) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.gather(*(rig.ctl.ok("dmm.read", n, "3v3") for n in (1, 2, 3)))
    assert loop.time() - t0 >= 0.055  # three 20 ms reads through one mux


async def test_leds_are_remembered(rig: Rig) -> None:
    assert rig.sim.led(1) == "off"
    await rig.ctl.ok("led.set", 1, "busy")
    await rig.ctl.ok("led.set", 2, "fail")
    assert (rig.sim.led(1), rig.sim.led(2)) == ("busy", "fail")
    assert await rig.ctl.err("led.set", 1, "blue") == "EARG"
    assert rig.sim.led(1) == "busy"


async def test_clamp_notice_when_it_changes(rig: Rig) -> None:
    assert await rig.ctl.ok("clamp.get") == {"closed": "1"}
    await rig.sim.set_clamp(True)  # no change, no notice
    await rig.sim.set_clamp(False)
    assert await rig.ctl.notice("CLAMP") == Notice("CLAMP", {"closed": "0"})
    assert await rig.ctl.ok("clamp.get") == {"closed": "0"}
    assert sum(isinstance(e, Notice) for e in rig.ctl.events) == 1
    await rig.sim.set_clamp(True)
    assert await rig.ctl.notice("CLAMP") == Notice("CLAMP", {"closed": "1"})


async def test_controller_resend_is_not_executed_twice(rig: Rig) -> None:
    line = encode_request(70, "power.set", 1, 1)
    rig.ctl.send(line)
    first = await rig.ctl.next(lambda e: isinstance(e, Reply) and e.id == 70)
    board = rig.sim.board(1)
    assert board is not None and board.powered
    board.power_off()  # had the resend executed, the board would be powered again
    rig.ctl.send(line)
    second = await rig.ctl.next(lambda e: isinstance(e, Reply) and e.id == 70)
    assert first == second and not board.powered
    rig.ctl.send(line.replace(b"power", b"pOwer"))
    bad = await rig.ctl.next(lambda e: isinstance(e, ErrorReply))
    assert bad == ErrorReply(70, "EPROTO", "checksum mismatch")


# ---- building from fixture files ------------------------------------------------------


def test_slot_faults_merge_over_the_board_file(board_dir: Path) -> None:
    model = fixture_model(
        {
            "board": "board.yaml",
            "seed": 3,
            "slots": {2: {"faults": {"missing_i2c": [0x68]}}, 3: {"empty": True}},
        }
    )
    sim = SimFixture(model, board_dir)
    b1, b2 = sim.board(1), sim.board(2)
    assert b1 is not None and b2 is not None and sim.board(3) is None
    assert b1.spec.faults.missing_i2c == () and b2.spec.faults.missing_i2c == (0x68,)
    assert b1.mac != b2.mac


def test_bad_simulation_sections_are_input_errors(board_dir: Path) -> None:
    with pytest.raises(InputError, match="stuck_gpio"):
        SimFixture(
            fixture_model(
                {"board": "board.yaml", "slots": {1: {"faults": {"stuck_gpio": [{"pin": 4}]}}}}
            ),
            board_dir,
        )
    with pytest.raises(InputError, match=r"simulation\.slots\.7"):
        SimFixture(fixture_model({"board": "board.yaml", "slots": {7: {}}}), board_dir)
    with pytest.raises(InputError, match="no such file"):
        SimFixture(fixture_model({"board": "nope.yaml"}), board_dir)


def test_sim_quad_fixture_file_validates() -> None:
    fixture = load_model(ROOT / "fixtures" / "sim-quad.yaml", Fixture)
    sim = SimFixture(fixture, ROOT / "fixtures")
    assert sim.slots == (1, 2, 3, 4)
    assert fixture.resources["dmm"].kind == "dmm"
    assert fixture.resources["golden"].kind == "golden_board"
    faulty = sim.board(3)
    assert faulty is not None and [s.pin for s in faulty.spec.faults.stuck_gpio] == [5]
    assert all(sim.board(n).spec.faults.stuck_gpio == () for n in (1, 2, 4))  # type: ignore[union-attr]


async def test_thread_runs_the_quad_fixture_on_its_own_loop() -> None:
    fixture = load_model(ROOT / "fixtures" / "sim-quad.yaml", Fixture)
    assert fixture.simulation is not None
    fixture = fixture.model_copy(
        update={"simulation": fixture.simulation.model_copy(update={"preflash": TEST_FW})}
    )
    with SimFixtureThread(fixture, ROOT / "fixtures") as twin:
        thread = next(t for t in threading.enumerate() if t.name == "sim-fixture sim-quad")
        endpoints = twin.endpoints
        assert sorted(endpoints) == [1, 2, 3, 4]
        assert len(set(endpoints.values()) | {twin.controller_endpoint}) == 5
        ctl = await LineClient.open(twin.controller_endpoint)
        duts = {n: await LineClient.open(ep) for n, ep in endpoints.items()}
        try:
            for n in duts:
                await ctl.ok("power.set", n, 1)
            readies = [await duts[n].notice("READY") for n in duts]
            assert len({r.fields["mac"] for r in readies}) == 4
            levels = {}
            for n, dut in duts.items():
                await dut.ok("gpio.mode", 4, "out")
                await dut.ok("gpio.mode", 5, "in")
                await dut.ok("gpio.set", 4, 1)
                levels[n] = (await dut.ok("gpio.get", 5))["level"]
            assert levels == {1: "1", 2: "1", 3: "0", 4: "1"}  # the demo's one failing unit
            await ctl.ok("led.set", 3, "fail")
            assert twin.led(3) == "fail"
            twin.set_clamp(False)
            assert (await ctl.notice("CLAMP")).fields == {"closed": "0"}
        finally:
            for c in (ctl, *duts.values()):
                await c.close()
    assert not thread.is_alive()
    for ep in endpoints.values():
        assert not await asyncio.to_thread(os.path.exists, ep)


def test_thread_reports_bad_input_on_enter(board_dir: Path) -> None:
    with (
        pytest.raises(InputError),
        SimFixtureThread(fixture_model({"board": "missing.yaml"}), board_dir),
    ):
        pass


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint", "sigint-ignored"])
def test_serve_prints_endpoints_and_stops_on_ctrl_c(board_dir: Path, sigint_ignored: bool) -> None:
    """Ctrl-C stops the served fixture, also when the parent started it with SIGINT
    ignored (as nohup-style runners and background jobs do)."""
    fixture = {
        "fixture": "served",
        "controller": {"driver": "sim"},
        "slots": [{"slot": 1, "port": "sim", "power": 1, "current_sense": 1}],
        "simulation": {"board": "board.yaml"},
    }
    path = board_dir / "fixture.yaml"
    path.write_text(yaml.safe_dump(fixture))
    code = (
        "import sys; from ate.sim.serve import run_sim_fixture; "
        "sys.exit(run_sim_fixture(sys.argv[1], 'socket'))"
    )

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    with subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore_sigint if sigint_ignored else None,
    ) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            assert info["fixture"] == "served"
            assert info["controller"].startswith("socket://127.0.0.1:")
            assert list(info["slots"]) == ["1"]
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        finally:
            proc.kill()


def test_serve_rejects_bad_input(tmp_path: Path) -> None:
    from ate.sim.serve import run_sim_fixture

    assert run_sim_fixture(str(tmp_path / "none.yaml"), "pty") == 2
    assert run_sim_fixture(str(ROOT / "fixtures" / "sim-quad.yaml"), "carrier-pigeon") == 2
