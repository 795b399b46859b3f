"""A simulated fixture built per test (board faults per slot), run through the real
station wiring: pyserial-asyncio clients on ptys, the twin on its own thread."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.config.loader import LoadedFixture, LoadedSequence, load_fixture, load_sequence
from ate.model.events import Event
from ate.scheduler.bus import EventBus
from ate.scheduler.panel import PanelResult
from ate.scheduler.slot import SlotOptions
from ate.sim.fixture_twin import SimFixtureThread
from ate.station.runner import Endpoints, run_one_panel

REPO = Path(__file__).resolve().parents[2]
S3_SEQUENCE = REPO / "sequences" / "s3-devkit-functional.yaml"
# Short request deadlines: a hung DUT is detected in well under a second.
FAST = SlotOptions(boot_timeout=2.0, request_timeout=0.15, request_attempts=3)


def write_fixture(
    tmp: Path,
    name: str = "t4",
    slots: int = 4,
    sim_slots: dict[int, dict[str, Any]] | None = None,
    resources: dict[str, Any] | None = None,
    seed: int = 7,
    preflash: str | None = None,
) -> Path:
    sim_dir = tmp / "sim"
    sim_dir.mkdir(exist_ok=True)
    for board in ("board-s3-devkit.yaml", "board-c3-devkit.yaml"):
        shutil.copy(REPO / "fixtures" / "sim" / board, sim_dir / board)
    doc = {
        "fixture": name,
        "controller": {"driver": "sim"},
        "slots": [
            {"slot": n, "port": "sim", "power": n, "current_sense": n} for n in range(1, slots + 1)
        ],
        "resources": resources
        if resources is not None
        else {"dmm": {"kind": "dmm", "capacity": 1}, "golden": {"kind": "golden_board"}},
        "simulation": {
            "board": "sim/board-s3-devkit.yaml",
            "seed": seed,
            "slots": sim_slots or {},
            "preflash": preflash,
        },
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_sequence(tmp: Path, mutate: Callable[[dict[str, Any]], None]) -> Path:
    """The example S3 sequence, changed by `mutate`, with its firmware path kept valid."""
    doc = yaml.safe_load(S3_SEQUENCE.read_text())
    doc["test_firmware"]["path"] = str(
        (S3_SEQUENCE.parent / doc["test_firmware"]["path"]).resolve()
    )
    mutate(doc)
    path = tmp / f"seq-{len(list(tmp.glob('seq-*')))}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass
class Bench:
    """A running simulated fixture and everything a test wants to look at."""

    fixture: LoadedFixture
    twin: SimFixtureThread
    events: list[Event] = field(default_factory=list)

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.twin.controller_endpoint, dict(self.twin.endpoints))

    async def run(
        self,
        sequence: LoadedSequence | Path = S3_SEQUENCE,
        *,
        options: SlotOptions = FAST,
        subscribers: tuple[Callable[[Event], None], ...] = (),
    ) -> PanelResult:
        seq = sequence if isinstance(sequence, LoadedSequence) else load_sequence(sequence)
        bus = EventBus()
        bus.subscribe(self.events.append)
        for sub in subscribers:
            bus.subscribe(sub)
        result = await run_one_panel(
            self.fixture,
            seq,
            bus,
            sim=self.endpoints,
            station="test",
            operator="op1",
            options=options,
        )
        assert bus.errors == 0
        return result


@pytest.fixture
def make_bench(tmp_path: Path) -> Iterator[Callable[..., Bench]]:
    twins: list[SimFixtureThread] = []

    def make(**kw: Any) -> Bench:
        fixture = load_fixture(write_fixture(tmp_path, **kw))
        twin = SimFixtureThread(fixture.model, fixture.base_dir)
        twin.__enter__()
        twins.append(twin)
        return Bench(fixture, twin)

    yield make
    for twin in twins:
        twin.close()
