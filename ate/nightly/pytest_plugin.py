"""The `ate` pytest plugin (entry point `pytest11`): regression tests of your own sequences.

Owns the `ate_panel` fixture: `ate_panel(sequence, faults={slot: {...}}, ...)` runs one
panel of `sequence` on a simulated fixture (the embedded quad of the S3 devkit board, or
`fixture=`), each slot's unit carrying the board faults given for it (the keys of a
board file's `faults:`, e.g. `{"stuck_gpio": [{"pin": 5, "level": 0}]}`), with
provisioning when `profile=` names one, and returns the unit records the station wrote,
by slot. The same code a line runs; nothing is mocked. Imports ate.nightly.bench/draw/
faults, ate.config and pytest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.config.loader import load_fixture, load_sequence
from ate.nightly.bench import NightlyBench, default_fixture
from ate.nightly.draw import PanelDraw, SlotDraw
from ate.nightly.faults import SlotFault

EMBEDDED_BOARD = Path(__file__).resolve().parents[2] / "fixtures" / "sim" / "board-s3-devkit.yaml"

RunPanel = Callable[..., dict[int, dict[str, Any]]]


@pytest.fixture
def ate_panel(tmp_path: Path) -> RunPanel:
    """`ate_panel(sequence, faults=None, *, fixture=None, profile=None, seed=1, slots=4)`:
    one panel on a simulated fixture; returns {slot: unit record}."""
    runs = count()

    def run(
        sequence: str | Path,
        faults: Mapping[int, Mapping[str, Any]] | None = None,
        *,
        fixture: str | Path | None = None,
        profile: str | Path | None = None,
        seed: int = 1,
        slots: int = 4,
    ) -> dict[int, dict[str, Any]]:
        if fixture is None:
            doc, base = default_fixture(EMBEDDED_BOARD, slots), EMBEDDED_BOARD.parent
        else:
            base = load_fixture(Path(fixture)).base_dir
            doc = yaml.safe_load(Path(fixture).read_text(encoding="utf-8"))
        bench = NightlyBench(
            tmp_path / f"ate-panel-{next(runs)}",
            load_sequence(Path(sequence)),
            Path(profile) if profile is not None else None,
            doc,
            base,
            lot="pytest",
        )
        given = faults or {}
        draw = PanelDraw(
            seed=seed,
            index=0,
            sim_seed=seed,
            slots=tuple(
                SlotDraw(s["slot"], SlotFault("given", "given", (), "", given.get(s["slot"], {})))
                for s in doc["slots"]
            ),
        )
        result = bench.run(draw)
        records = [json.loads(p.read_text(encoding="utf-8")) for p in result.record_paths]
        return {int(r["slot"]): r for r in records}

    return run
