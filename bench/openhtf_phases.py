"""OpenHTF side of the overhead benchmark: N phases, optionally M measurements each.

(A module of its own because OpenHTF reads each phase's source file.)
"""

from __future__ import annotations

import time
from typing import Any

import openhtf as htf
from openhtf.util import conf

MEASUREMENTS = 10
conf.load(capture_source=False)


def _noop_phase(test: Any) -> None:
    return None


@htf.measures(
    *[htf.Measurement(f"m{j}").in_range(0, 10).with_units("mA") for j in range(MEASUREMENTS)]
)
def _measure_phase(test: Any) -> None:
    for j in range(MEASUREMENTS):
        test.measurements[f"m{j}"] = 5.0


def run(n: int, measured: bool) -> float:
    phase = _measure_phase if measured else _noop_phase
    phases = [htf.PhaseOptions(name=f"p{i}")(phase) for i in range(n)]
    test = htf.Test(*phases)
    t0 = time.perf_counter()
    test.execute(test_start=lambda: "dut")
    return time.perf_counter() - t0
