"""Steps read supply current and rail voltages through instrument roles: on a simulated
fixture, a SCPI supply, DMM and mux (socket twins fed by the same simulated boards) give
the verdicts the fixture MCU gives; a reply that is no reading makes the step ERROR, never
FAIL; an instrument that is not the one named stops `ate run` before the panel, exit 2."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.config.loader import load_fixture, load_sequence
from ate.instruments.twins.scpi_twin import DmmTwin, MuxTwin, PsuTwin, ScpiTwin, TwinThread
from ate.model.verdict import Verdict
from ate.scheduler.bus import EventBus
from ate.scheduler.panel import PanelResult
from ate.sim.fixture_twin import SimFixtureThread
from ate.station.runner import Endpoints, run_one_panel
from tests.ate_cli import run_ate
from tests.scheduler.conftest import FAST, S3_SEQUENCE, write_fixture, write_sequence

STEPS = {s["name"]: s for s in yaml.safe_load(S3_SEQUENCE.read_text())["steps"]}
MEASURED = ["rail_3v3", "rail_1v8", "current_idle", "current_active", "current_light_sleep"]
# Slot 2 draws three times its active current; slot 3's 3.3 V rail sits at 3.0 V.
FAULTS = {
    2: {"faults": {"over_current": {"mode": "active", "factor": 3.0}}},
    3: {"faults": {"rail_v": {"3v3": 3.0}}},
}
RELAYS = {
    (slot, rail): 100 * slot + n for slot in (1, 2, 3) for n, rail in ((1, "3v3"), (2, "1v8"))
}


def image() -> str:
    doc = yaml.safe_load(S3_SEQUENCE.read_text())
    return str((S3_SEQUENCE.parent / doc["test_firmware"]["path"]).resolve())


def sequence(tmp: Path, timeout: float | None = None) -> Path:
    def mutate(doc: dict[str, Any]) -> None:
        doc["test_firmware"]["flash"] = "never"  # units come with it: no esptool here
        doc["steps"] = [STEPS[name] for name in MEASURED]
        if timeout is not None:
            doc["steps"] = [{**step, "timeout": timeout} for step in doc["steps"]]

    return write_sequence(tmp, mutate)


def fixture_file(tmp: Path, instruments: dict[str, Any] | None) -> Path:
    path = write_fixture(tmp, slots=3, sim_slots=FAULTS, preflash=image())
    if instruments:
        doc = yaml.safe_load(path.read_text())
        doc["instruments"] = instruments
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Twins:
    """A PSU, DMM and mux on sockets, drawing and reading what the simulated boards do."""

    def __init__(self, sim: SimFixtureThread) -> None:
        self.psu = PsuTwin(outputs=3)
        for slot, ch in self.psu.channels.items():
            ch.volts, ch.limit, ch.on = 5.0, 2.0, True  # behind each slot's MCU switch
            ch.load = self._load(sim, slot)
        self.mux = MuxTwin()
        where = {relay: key for key, relay in RELAYS.items()}

        def volts() -> float:
            if len(self.mux.closed) != 1:
                return 9.9e37  # an open input overflows
            slot, rail = where[next(iter(self.mux.closed))]
            board = sim.board(slot)
            assert board is not None
            return board.rail_v(rail)

        self.dmm = DmmTwin(volts=volts)

    @staticmethod
    def _load(sim: SimFixtureThread, slot: int) -> Callable[[float], float]:
        def amps(volts: float) -> float:
            board = sim.board(slot)
            return board.current_ma() / 1000 if board is not None else 0.0

        return amps

    def all(self) -> list[ScpiTwin]:
        return [self.psu, self.dmm, self.mux]

    def instruments(self) -> dict[str, Any]:
        routes: dict[int, dict[str, str]] = {}
        for (slot, rail), relay in RELAYS.items():
            routes.setdefault(slot, {})[rail] = str(relay)
        return {
            "supply": {
                "driver": "scpi_psu",
                "resource": self.psu.resource,
                "idn": "SIM-PSU",
                "channels": {1: 1, 2: 2, 3: 3},
            },
            "dmm": {"driver": "scpi_dmm", "resource": self.dmm.resource, "idn": "SIM-DMM"},
            "mux": {
                "driver": "scpi_mux",
                "resource": self.mux.resource,
                "idn": "SIM-MUX",
                "routes": routes,
            },
        }


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[tuple[SimFixtureThread, Twins]]:
    plain = load_fixture(fixture_file(tmp_path, None))
    sim = SimFixtureThread(plain.model, plain.base_dir)
    sim.__enter__()
    twins = Twins(sim)
    for twin in twins.all():
        await twin.serve()
    try:
        yield sim, twins
    finally:
        for twin in twins.all():
            await twin.aclose()
        sim.close()


async def run(
    tmp: Path,
    sim: SimFixtureThread,
    instruments: dict[str, Any] | None,
    timeout: float | None = None,
) -> PanelResult:
    fixture = load_fixture(fixture_file(tmp, instruments))
    return await run_one_panel(
        fixture,
        load_sequence(sequence(tmp, timeout)),
        EventBus(),
        sim=Endpoints(sim.controller_endpoint, dict(sim.endpoints)),
        station="test",
        operator="op1",
        options=FAST,
    )


def verdicts(result: PanelResult) -> dict[int, dict[str, Verdict]]:
    return {n: {s.name: s.verdict for s in r.steps} for n, r in result.slots.items()}


async def test_the_fixture_mcu_named_as_instruments_is_the_default(
    tmp_path: Path, bench: tuple[SimFixtureThread, Twins]
) -> None:
    sim, _ = bench
    named = {role: {"driver": "fixture_mcu"} for role in ("supply", "dmm", "mux")}
    default = await run(tmp_path, sim, None)
    assert verdicts(await run(tmp_path, sim, named)) == verdicts(default)
    assert verdicts(default)[3]["rail_3v3"] is Verdict.FAIL


async def test_scpi_roles_give_the_verdicts_the_fixture_mcu_gives(
    tmp_path: Path, bench: tuple[SimFixtureThread, Twins]
) -> None:
    sim, twins = bench
    mcu = await run(tmp_path, sim, None)
    scpi = await run(tmp_path, sim, twins.instruments())
    assert verdicts(scpi) == verdicts(mcu)
    want = {name: Verdict.PASS for name in MEASURED}
    assert verdicts(mcu) == {
        1: want,
        2: {**want, "current_active": Verdict.FAIL},
        3: {**want, "rail_3v3": Verdict.FAIL},
    }
    # The SCPI run did read through the instruments, channel by channel, relay by relay.
    assert {"MEAS:CURR? (@1)", "MEAS:CURR? (@2)", "MEAS:CURR? (@3)"} <= set(twins.psu.received)
    assert "ROUT:CLOS (@302)" in twins.mux.received and twins.mux.closed == set()
    active = {
        n: next(s for s in r.steps if s.name == "current_active").measurements[0]
        for n, r in scpi.slots.items()
    }
    assert active[1].unit == "mA" and 60 < float(active[1].value) < 110
    assert float(active[2].value) == pytest.approx(3 * float(active[1].value), rel=0.2)


@pytest.mark.parametrize("reply", ["NAN", "9.9E37", "OVLD"])
async def test_a_reply_that_is_no_reading_makes_the_step_error_not_fail(
    tmp_path: Path, bench: tuple[SimFixtureThread, Twins], reply: str
) -> None:
    sim, twins = bench
    twins.dmm.replies["MEAS:VOLT:DC?"] = reply
    twins.psu.replies["MEAS:CURR?"] = reply
    result = await run(tmp_path, sim, twins.instruments())
    for r in result.slots.values():
        assert r.verdict is Verdict.ERROR
        steps = {s.name: s for s in r.steps}
        for name in MEASURED:
            assert steps[name].verdict is Verdict.ERROR, (name, steps[name].reason)
            assert "internal error" not in steps[name].reason
        assert reply in steps["rail_3v3"].reason


async def test_a_supply_too_slow_for_the_sleep_window_is_error_not_a_reading(
    tmp_path: Path, bench: tuple[SimFixtureThread, Twins]
) -> None:
    """A sleep-current reading that ends after the unit's sleep could have ended may have
    sampled its wake-up: never judged (it would read the awake current and FAIL a good
    unit). A supply slower than the whole hold misses it every time: ERROR, saying so;
    the awake readings are slow but valid."""
    sim, twins = bench
    # A reading is the mean of 8 queries: 0.4 s, longer than the light-sleep hold (0.32 s).
    twins.psu.delays["MEAS:CURR?"] = 0.05
    # Three slots queue on the one supply: time enough for every try of each.
    result = await run(tmp_path, sim, twins.instruments(), timeout=20)
    for r in result.slots.values():
        steps = {s.name: s for s in r.steps}
        sleep = steps["current_light_sleep"]
        assert sleep.verdict is Verdict.ERROR and not sleep.measurements, sleep.reason
        assert "no light_sleep current reading fitted inside" in sleep.reason
        assert steps["current_idle"].verdict is Verdict.PASS
    # 8 queries a reading: idle and active once, then three tries per attempt of the step
    readings, rest = divmod(twins.psu.received.count("MEAS:CURR? (@1)"), 8)
    assert rest == 0 and readings > 2 and (readings - 2) % 3 == 0


async def test_a_wrong_instrument_stops_ate_run_before_the_panel(tmp_path: Path) -> None:
    dmm = DmmTwin(idn="RIGOL TECHNOLOGIES,DM3068,DM3O000001,01.01")
    with TwinThread({"dmm": dmm}).running() as ports:
        path = fixture_file(
            tmp_path,
            {
                "dmm": {
                    "driver": "scpi_dmm",
                    "resource": f"TCPIP::127.0.0.1::{ports['dmm']}::SOCKET",
                    "idn": "KEITHLEY.*MODEL 2000",
                }
            },
        )
        done = run_ate("run", "-f", path, "-s", sequence(tmp_path), "--out", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("ate:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "answers *IDN? with 'RIGOL" in lines[0] and "expects /KEITHLEY" in lines[0]
    assert not list((tmp_path / "out").glob("**/*.json"))  # no panel, no record


async def test_an_instrument_that_does_not_answer_is_exit_3(tmp_path: Path) -> None:
    gone = DmmTwin()
    await gone.serve()
    resource = gone.resource
    await gone.aclose()  # the port is free again: nothing answers there
    path = fixture_file(
        tmp_path, {"dmm": {"driver": "scpi_dmm", "resource": resource, "idn": "x", "timeout": 1}}
    )
    done = run_ate("run", "-f", path, "-s", sequence(tmp_path), "--out", tmp_path / "out")
    assert done.returncode == 3, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("ate:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "does not answer *IDN?" in lines[0]
