"""The pytest plugin as a test engineer uses it: `ate_panel` runs their sequence on a
simulated fixture with the faults they give and returns the unit records, by slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def test_a_stuck_pin_fails_the_loopback_step_and_nothing_else(ate_panel: Any) -> None:
    records = ate_panel(
        REPO / "sequences" / "s3-devkit-functional.yaml",
        {2: {"stuck_gpio": [{"pin": 5, "level": 0}]}},
        slots=2,
    )
    assert sorted(records) == [1, 2]
    assert records[1]["verdict"] == "PASS", records[1]["reason"]
    assert records[2]["verdict"] == "FAIL"
    failed = [s["name"] for s in records[2]["steps"] if s["verdict"] == "FAIL"]
    assert failed == ["gpio_loopback"]
    assert records[1]["unit"]["mac"] != records[2]["unit"]["mac"]
