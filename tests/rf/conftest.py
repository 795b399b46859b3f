"""A simulated quad fixture with a golden twin in its shield box, units that come with
the test firmware (no flashing: fast), a golden check to calibrate it, and RF steps."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.config.loader import LoadedFixture, LoadedSequence, load_fixture, load_sequence
from ate.rf import calibration
from ate.rf.calibration import Calibration
from ate.scheduler.bus import EventBus
from ate.scheduler.panel import PanelResult
from ate.sim.fixture_twin import SimFixtureThread
from ate.station.golden_check import CheckResult, CheckSpec, run_check
from ate.station.runner import Endpoints, run_one_panel
from tests.scheduler.conftest import FAST, S3_SEQUENCE, write_fixture

# Few frames and a short BLE interval: each exchange is tens of milliseconds of air.
WIFI_TX = {
    "name": "wifi_tx_ch6",
    "type": "wifi_tx",
    "description": "DUT transmit on channel 6",
    "channel": 6,
    "packets": 40,
    "rssi": {"low": 16, "high": 24, "unit": "dBm"},
    "freq_offset": {"low": -20, "high": 20, "unit": "ppm"},
    "per": {"high": 10, "unit": "%"},
}
WIFI_RX = {
    "name": "wifi_rx_ch6",
    "type": "wifi_rx",
    "description": "DUT receive on channel 6",
    "channel": 6,
    "packets": 40,
    "rssi": {"low": 14, "high": 26, "unit": "dBm"},
    "per": {"high": 10, "unit": "%"},
}
BLE = {
    "name": "ble_ch37",
    "type": "ble",
    "description": "BLE advertisements both ways on channel 37",
    "channel": 37,
    "packets": 10,
    "interval_us": 20000,  # the fastest non-connectable advertising
    "direction": "both",
    "rssi": {"low": 14, "high": 26, "unit": "dBm"},
    "per": {"high": 10, "unit": "%"},
}
CHANNELS = (("wifi", 6), ("ble", 37))


def image() -> str:
    doc = yaml.safe_load(S3_SEQUENCE.read_text())
    return str((S3_SEQUENCE.parent / doc["test_firmware"]["path"]).resolve())


def rf_sequence(
    tmp: Path, steps: list[dict[str, Any]] | None = None, schedule: str = "in_order", **top: Any
) -> LoadedSequence:
    doc = yaml.safe_load(S3_SEQUENCE.read_text())
    doc["test_firmware"]["path"] = image()
    doc["test_firmware"]["flash"] = "never"
    doc["on_failure"], doc["schedule"] = "continue", schedule
    doc["steps"] = steps if steps is not None else [WIFI_TX, WIFI_RX, BLE]
    doc.update(top)
    path = tmp / f"rf-seq-{len(list(tmp.glob('rf-seq-*')))}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_sequence(path)


@dataclass
class RfBench:
    fixture: LoadedFixture
    twin: SimFixtureThread

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            self.twin.controller_endpoint,
            dict(self.twin.endpoints),
            dict(self.twin.golden_endpoints),
        )

    @property
    def calibration_path(self) -> Path:
        rel = self.fixture.model.resources["golden"].calibration
        assert rel is not None
        return self.fixture.base_dir / rel

    async def golden_check(
        self,
        sequence: LoadedSequence,
        *,
        previous: Calibration | None = None,
        reference_dbm: float = 20.0,
    ) -> CheckResult:
        check = CheckSpec("golden", reference_dbm, CHANNELS)
        return await run_check(
            self.fixture, sequence, check, self.endpoints, previous=previous, options=FAST
        )

    async def calibrate(self, sequence: LoadedSequence) -> Calibration:
        result = await self.golden_check(sequence)
        assert result.calibration is not None, result.failed_slots
        calibration.save(result.calibration, self.calibration_path)
        return result.calibration

    async def run(
        self, sequence: LoadedSequence, *, resources: dict[str, int] | None = None
    ) -> PanelResult:
        return await run_one_panel(
            self.fixture,
            sequence,
            EventBus(),
            sim=self.endpoints,
            station="test",
            operator="op1",
            options=FAST,
            resources=resources,
        )


def rf_resources(capacity_dmm: int = 1) -> dict[str, Any]:
    return {
        "dmm": {"kind": "dmm", "capacity": capacity_dmm},
        "golden": {"kind": "golden_board", "port": "sim", "calibration": "golden-cal.yaml"},
    }


def _open(
    tmp: Path,
    sim_slots: dict[int, dict[str, Any]] | None = None,
    rf: dict[str, Any] | None = None,
) -> RfBench:
    path = write_fixture(
        tmp, name="rf4", sim_slots=sim_slots, resources=rf_resources(), preflash=image()
    )
    if rf is not None:
        doc = yaml.safe_load(path.read_text())
        doc["simulation"]["rf"] = rf
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    fixture = load_fixture(path)
    twin = SimFixtureThread(fixture.model, fixture.base_dir)
    twin.__enter__()
    return RfBench(fixture, twin)


@pytest.fixture(scope="session")
def clean_calibration(tmp_path_factory: pytest.TempPathFactory) -> Calibration:
    """The golden check of the fixture with good units in every slot (the same units,
    by name and seed, as every bench here: a faulted unit must not be the reference)."""
    tmp = tmp_path_factory.mktemp("clean")
    bench = _open(tmp)
    try:
        return asyncio.run(bench.calibrate(rf_sequence(tmp)))
    finally:
        bench.twin.close()


@pytest.fixture
def make_rf_bench(
    tmp_path: Path, clean_calibration: Calibration
) -> Iterator[Callable[..., RfBench]]:
    """make(sim_slots=..., rf=..., calibrated=True): a running bench; calibrated, it has
    the clean golden check's file where its fixture names it."""
    twins: list[SimFixtureThread] = []

    def make(
        sim_slots: dict[int, dict[str, Any]] | None = None,
        rf: dict[str, Any] | None = None,
        calibrated: bool = True,
    ) -> RfBench:
        bench = _open(tmp_path, sim_slots, rf)
        twins.append(bench.twin)
        if calibrated:
            calibration.save(clean_calibration, bench.calibration_path)
        return bench

    yield make
    for twin in twins:
        twin.close()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
