"""A USB-serial adapter pulled mid-sequence (the port goes away for good): ERROR for that
slot with the reason, never a verdict on what was not measured; the others PASS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def test_a_port_that_vanishes_is_error_for_its_slot_alone(ate_panel: Any) -> None:
    records = ate_panel(
        REPO / "sequences" / "s3-devkit-functional.yaml", {1: {"port_vanishes_after": 15}}, slots=3
    )
    gone = records[1]
    assert gone["verdict"] == "ERROR"
    assert "port closed" in gone["reason"], gone["reason"]
    assert not any(s["verdict"] == "FAIL" for s in gone["steps"])
    assert [records[n]["verdict"] for n in (2, 3)] == ["PASS", "PASS"]
