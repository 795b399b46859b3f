"""The fixture file of a simulated fixture of one board: the quad (or fewer slots) that
demos, benchmarks, the nightly matrix and the pytest plugin run on.

Owns `sim_fixture_doc`: the simulated controller, one slot per unit with its power and
current-sense channel, a DMM and a golden board (capacity 1 each), and a simulation
section naming the board file. Imports nothing of ate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def sim_fixture_doc(name: str, board: Path | str, slots: int = 4) -> dict[str, Any]:
    """A fixture document (as YAML would load it) for `slots` simulated units of `board`
    (a path the fixture file resolves, relative to itself or absolute)."""
    return {
        "fixture": name,
        "controller": {"driver": "sim"},
        "slots": [
            {"slot": n, "port": "sim", "power": n, "current_sense": n} for n in range(1, slots + 1)
        ],
        "resources": {
            "dmm": {"kind": "dmm", "capacity": 1},
            "golden": {"kind": "golden_board", "capacity": 1},
        },
        "simulation": {"board": str(board)},
    }
