"""A simulated fixture with persistent units (state_dir) and a development provisioning
kit, run through the real station wiring: test, provision, lock. The fixtures that make
them are in conftest.py."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ate.config.loader import LoadedFixture, LoadedSequence
from ate.model.events import Event
from ate.scheduler.bus import EventBus
from ate.scheduler.panel import PanelResult
from ate.scheduler.slot import SlotOptions
from ate.sim.devkit import DevKit
from ate.sim.fixture_twin import SimFixtureThread
from ate.sim.rom.efuses import EfuseBank
from ate.sim.rom.flash import SparseFlash
from ate.station.provisioning import StationProvisioning, open_provisioning
from ate.station.runner import Endpoints, run_one_panel

REPO = Path(__file__).resolve().parents[2]
MINIMAL = REPO / "sequences" / "minimal.yaml"
# The simulated device signs in microseconds: a second is plenty for its crypto requests.
FAST = SlotOptions(boot_timeout=3.0, request_timeout=0.3, request_attempts=3, crypto_s=0.7)


class PowerLoss(BaseException):
    """The station's power went at a checkpoint (a test's injected fault)."""


def write_sequence(tmp: Path) -> Path:
    doc = yaml.safe_load(MINIMAL.read_text())
    doc["test_firmware"]["path"] = str((MINIMAL.parent / doc["test_firmware"]["path"]).resolve())
    path = tmp / "sequence.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_fixture(
    tmp: Path, *, slots: int = 4, sim_slots: dict[int, Any] | None = None, seed: int = 11
) -> Path:
    sim_dir = tmp / "sim"
    sim_dir.mkdir(exist_ok=True)
    shutil.copy(REPO / "fixtures" / "sim" / "board-s3-devkit.yaml", sim_dir)
    doc = {
        "fixture": "prov",
        "controller": {"driver": "sim"},
        "slots": [
            {"slot": n, "port": "sim", "power": n, "current_sense": n} for n in range(1, slots + 1)
        ],
        "resources": {"dmm": {"kind": "dmm", "capacity": 1}},
        "simulation": {
            "board": "sim/board-s3-devkit.yaml",
            "seed": seed,
            "slots": sim_slots or {},
            "state_dir": "units",
        },
    }
    path = tmp / "fixture.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass
class ProvBench:
    """A running simulated fixture whose units keep their flash and eFuses on disk, a
    sequence, a profile, and the station state folder (the ledger)."""

    tmp: Path
    fixture: LoadedFixture
    sequence: LoadedSequence
    kit: DevKit
    twin: SimFixtureThread
    events: list[Event] = field(default_factory=list)
    runs: int = 0

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.twin.controller_endpoint, dict(self.twin.endpoints))

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    def out_dir(self) -> Path:
        return self.tmp / f"out{self.runs}"

    def open_station(
        self,
        *,
        checkpoint: Callable[[str, str], Awaitable[None]] | None = None,
        labels: dict[int, str] | None = None,
        profile: Path | None = None,
    ) -> StationProvisioning:
        return open_provisioning(
            profile or self.kit.profile,
            self.sequence,
            state_dir=self.state_dir,
            out_dir=self.out_dir(),
            station="st1",
            operator="op1",
            lot="lot-1",
            labels=labels,
            checkpoint=checkpoint,
        )

    async def run(
        self,
        *,
        checkpoint: Callable[[str, str], Awaitable[None]] | None = None,
        labels: dict[int, str] | None = None,
        subscribers: tuple[Callable[[Event], None], ...] = (),
        station: StationProvisioning | None = None,
    ) -> PanelResult:
        """One panel with provisioning; a fresh station (ledger opened again) each time,
        as after a restart."""
        self.runs += 1
        own = station is None
        station = station or self.open_station(checkpoint=checkpoint, labels=labels)
        bus = EventBus()
        bus.subscribe(self.events.append)
        for sub in subscribers:
            bus.subscribe(sub)
        try:
            result = await run_one_panel(
                self.fixture,
                self.sequence,
                bus,
                sim=self.endpoints,
                station="st1",
                operator="op1",
                options=FAST,
                provisioner=station.provisioner,
            )
            station.after_panel()
        finally:
            if own:
                station.close()
        return result

    # -- what the simulated units hold (the chip's truth, not the station's) ------------

    def efuses(self, slot: int) -> EfuseBank:
        server = self.twin.sim.server(slot)
        assert server is not None and server.rom is not None
        return server.rom.loader.efuses

    def flash(self, slot: int) -> SparseFlash:
        server = self.twin.sim.server(slot)
        assert server is not None and server.rom is not None
        return server.rom.loader.flash

    def efuse(self, slot: int, name: str) -> Any:
        return self.efuses(slot).field(name)

    def cut_power(self, slot: int) -> None:
        async def off() -> None:
            server = self.twin.sim.server(slot)
            assert server is not None
            server.power(False)

        self.twin.run(off())

    def cuts_at(
        self, points: dict[int, str]
    ) -> tuple[Callable[[str, str], Awaitable[None]], set[int]]:
        """A checkpoint that cuts each slot's power once, at its point (slot -> point), as
        the station passes it; and the set of slots it has cut so far."""
        target = {self.efuses(slot).mac.hex(":"): (slot, point) for slot, point in points.items()}
        cut: set[int] = set()

        async def power_cut(chip_id: str, point: str) -> None:
            hit = target.get(chip_id)
            if hit is not None and hit[1] == point and hit[0] not in cut:
                cut.add(hit[0])
                self.cut_power(hit[0])
                raise PowerLoss(point)

        return power_cut, cut
