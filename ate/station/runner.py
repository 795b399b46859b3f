"""Run panels on a fixture: open the controller, bind each slot's port, run, record."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ate.config.errors import InputError
from ate.config.fixture import SlotSpec
from ate.config.loader import LoadedFixture, LoadedSequence
from ate.drivers import registry
from ate.drivers.fixture import FixtureController, LineFixtureController
from ate.drivers.golden import GoldenBoard, GoldenLink, NotGolden, RfBoards
from ate.drivers.line_client import DeviceError, DeviceGone, DeviceTimeout, LineClient
from ate.drivers.ports import resolve_port
from ate.instruments.registry import Instruments, open_instruments
from ate.model.verdict import Verdict
from ate.records.junit import JUnitWriter
from ate.records.slot_log import SlotLogWriter
from ate.records.unit_record import RecordWriter
from ate.rf import calibration
from ate.scheduler.bus import EventBus
from ate.scheduler.panel import PanelRefused, PanelResult, PanelSpec, run_panel
from ate.scheduler.slot import Admit, LogSink, SlotBinding, SlotOptions
from ate.sequence.plan import Plan, compile_plan
from ate.station.flashing import prepare_test_firmware

if TYPE_CHECKING:
    from ate.provision.flow import Provisioner


@dataclass(frozen=True)
class Endpoints:
    """Where a simulated fixture's twin put its ports (None for real hardware)."""

    controller: str
    slots: dict[int, str]
    golden: dict[str, str] = field(default_factory=dict)  # golden_board resource -> port


@dataclass
class Outputs:
    """The subscribers that turn events into files under one output folder."""

    out_dir: Path
    records: RecordWriter = field(init=False)
    junit: JUnitWriter = field(init=False)
    logs: SlotLogWriter = field(init=False)

    def __post_init__(self) -> None:
        self.records = RecordWriter(self.out_dir)
        self.junit = JUnitWriter(self.out_dir)
        self.logs = SlotLogWriter(self.out_dir)

    def attach(self, bus: EventBus) -> None:
        for sub in (self.logs, self.records, self.junit):
            bus.subscribe(sub)

    def close(self) -> None:
        self.records.close()
        self.logs.close()


def new_panel_id(fixture: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{fixture}-{stamp}-{secrets.token_hex(2)}"


def sequence_info(seq: LoadedSequence) -> dict[str, Any]:
    return {
        "name": seq.model.sequence,
        "version": seq.model.version,
        "file": seq.path.name,
        "sha256": seq.sha256,
        "variant": seq.variant,
        "resolved_sha256": seq.resolved_sha256,
        "includes": [{"file": name, "sha256": sha} for name, sha in seq.includes],
        "test_firmware": {
            "file": seq.firmware_path.name,
            "sha256": seq.firmware_sha256,
            "version": seq.model.test_firmware.version,
        },
    }


@contextlib.contextmanager
def simulated_twin(fixture: LoadedFixture, transport: str = "pty") -> Iterator[Endpoints | None]:
    """Start the fixture's simulated twin when its controller driver is `sim`."""
    if fixture.model.controller.driver != "sim":
        yield None
        return
    from ate.sim.fixture_twin import SimFixtureThread  # only a simulated fixture needs it

    with SimFixtureThread(fixture.model, fixture.base_dir, transport=transport) as twin:
        yield Endpoints(
            controller=twin.controller_endpoint,
            slots=dict(twin.endpoints),
            golden=dict(twin.golden_endpoints),
        )


async def open_controller(fixture: LoadedFixture, sim: Endpoints | None) -> FixtureController:
    """The fixture's controller by its driver (ate.drivers.registry); a simulated
    fixture's is its twin's line-protocol endpoint."""
    ctrl = fixture.model.controller
    if sim is not None:
        return await LineFixtureController.open(sim.controller)
    driver = registry.get(ctrl.driver)
    return await driver.open(
        registry.DriverContext(
            fixture.model,
            fixture.base_dir,
            fixture.controller_settings,
            resolve_port(ctrl.port) if ctrl.port is not None else None,
            {s.slot: partial(resolve_port, s.port) for s in fixture.model.slots},
        )
    )


class RfRefused(PanelRefused):
    """The panel's RF steps cannot run: a golden board missing, in the wrong role, or its
    calibration missing, expired, for another board or fixture, or drifted."""


async def open_rf(
    fixture: LoadedFixture, plan: Plan, sim: Endpoints | None, *, now: dt.datetime | None = None
) -> RfBoards | None:
    """The golden boards the plan's RF steps drive, opened, role-checked and with a valid
    calibration each; None when the plan has no RF step. RfRefused says why not, naming
    the board and the file."""
    names = sorted(plan.golden_boards)
    if not names:
        return None
    now = now or dt.datetime.now(dt.UTC)
    links: dict[str, GoldenLink] = {}
    opened: list[GoldenBoard] = []
    try:
        for name in names:
            res = fixture.model.resources[name]
            if res.port is None:
                raise RfRefused(f"golden board {name!r}: the fixture gives it no port")
            if res.calibration is None:
                raise RfRefused(
                    f"golden board {name!r} has no calibration: run ate rf golden-check "
                    f"--fixture {fixture.path} and name the file in its `calibration:`"
                )
            try:
                endpoint = resolve_port(res.port, sim.golden.get(name) if sim else None)
                board = await GoldenBoard.open(name, endpoint, res.port.baud)
            except (NotGolden, DeviceGone, DeviceTimeout, DeviceError) as exc:
                raise RfRefused(f"golden board {name!r}: {exc}") from None
            opened.append(board)
            path = fixture.base_dir / res.calibration
            try:
                cal = calibration.load(path)
            except InputError as exc:
                raise RfRefused(
                    f"golden board {name!r}: calibration {exc}; run ate rf golden-check "
                    f"--fixture {fixture.path}"
                ) from None
            problem = cal.problem(fixture=fixture.model.fixture, golden_mac=board.mac, now=now)
            if problem is None and cal.golden != name:
                problem = f"it is for golden board {cal.golden!r}"
            if problem is not None:
                raise RfRefused(
                    f"golden board {name!r}: calibration {path} refused: {problem}; run ate rf "
                    f"golden-check --fixture {fixture.path}"
                )
            links[name] = GoldenLink(board, cal)
    except BaseException:
        for board in opened:
            await board.close()
        raise
    return RfBoards(links, fixture.model.default_golden())


def slot_bindings(
    fixture: LoadedFixture,
    sequence: LoadedSequence,
    sim: Endpoints | None,
    provisioner: Provisioner | None = None,
    admit: Admit | None = None,
    labels: Mapping[int, str] | None = None,
) -> list[SlotBinding]:
    """What each enabled slot runs; `labels` are the ones scanned for this panel."""
    flash = sequence.model.test_firmware.flash != "never"
    image = sequence.firmware_image
    bindings = []
    for spec in fixture.model.slots:
        if not spec.enabled:
            continue

        def endpoint(spec: SlotSpec = spec) -> str:
            return resolve_port(spec.port, sim.slots.get(spec.slot) if sim else None)

        def opener(spec: SlotSpec = spec) -> Callable[[LogSink], Any]:
            async def open_dut(on_log: LogSink) -> LineClient:
                return await LineClient.open(
                    endpoint(spec), spec.port.baud, name=f"slot{spec.slot}", on_log=on_log
                )

            return open_dut

        prepare = (
            prepare_test_firmware(
                sequence,
                image,
                fixture.model.flashing,
                endpoint,
                label=f"slot{spec.slot}",
                provisioner=provisioner,
                admit=admit,
            )
            if flash
            else None
        )
        provision = (
            partial(provisioner.after_tests, label=(labels or {}).get(spec.slot))
            if provisioner is not None
            else None
        )
        # With no ROM phase the MES is asked once the test firmware has named the unit.
        bindings.append(
            SlotBinding(spec.slot, opener(), prepare, provision, None if flash else admit)
        )
    return bindings


async def run_one_panel(
    fixture: LoadedFixture,
    sequence: LoadedSequence,
    bus: EventBus,
    *,
    sim: Endpoints | None,
    station: str,
    operator: str,
    options: SlotOptions | None = None,
    controller: FixtureController | None = None,
    provisioner: Provisioner | None = None,
    admit: Admit | None = None,
    end: asyncio.Future[tuple[Verdict, str]] | None = None,
    labels: Mapping[int, str] | None = None,
    instruments: Instruments | None = None,
    resources: Mapping[str, int] | None = None,
) -> PanelResult:
    """One panel on `fixture`; opens (and closes) the controller, the golden boards its
    plan needs and the fixture file's instruments unless they are given. `end`, when it
    resolves, ends the panel (see PanelSpec.end). `resources` replaces the fixture's
    capacities (a test proving what a looser pool would break)."""
    own = controller is None
    plan = compile_plan(sequence.model, sequence.variant, fixture.model.default_golden())
    rf = await open_rf(fixture, plan, sim)
    ctrl: FixtureController | None = None
    own_instruments = instruments is None and bool(fixture.instruments)
    try:
        ctrl = controller or await open_controller(fixture, sim)
        if own_instruments:
            instruments = await open_fixture_instruments(fixture, ctrl)
        if instruments is not None:
            options = dataclasses.replace(options or SlotOptions(), instruments=instruments)
        spec = PanelSpec(
            panel_id=new_panel_id(fixture.model.fixture),
            fixture=fixture.model.fixture,
            station=station,
            operator=operator,
            plan=plan,
            sequence_info=sequence_info(sequence),
            bindings=slot_bindings(fixture, sequence, sim, provisioner, admit, labels),
            controller=ctrl,
            resources=(
                dict(resources)
                if resources is not None
                else {n: r.capacity for n, r in fixture.model.resources.items()}
            ),
            options=options or SlotOptions(),
            end=end,
            rf=rf,
        )
        return await run_panel(spec, bus)
    finally:
        if own_instruments and instruments is not None:
            await instruments.aclose()
        if own and ctrl is not None:
            await ctrl.close()
        if rf is not None:
            await rf.close()


async def open_fixture_instruments(fixture: LoadedFixture, ctrl: FixtureController) -> Instruments:
    """The fixture file's instruments, by role (ate.instruments.registry), each checked
    to be the instrument the file expects (InstrumentMismatch)."""
    return await open_instruments(fixture.instruments, fixture.base_dir, ctrl)
