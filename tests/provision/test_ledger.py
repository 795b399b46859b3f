"""The provisioning ledger's state order is the order the flow goes, and only forward."""

from __future__ import annotations

from pathlib import Path

from ate.provision.ledger import Ledger


def test_every_state_the_flow_reaches_is_recorded_and_never_undone(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        mac = "24:0a:c4:00:00:01"
        for state in ("tested", "certified", "proven", "serial", "written", "locking", "locked"):
            assert ledger.advance(mac, state, profile="p") == state
        assert ledger.advance(mac, "serial", profile="p") == "locked"
        unit = ledger.unit(mac)
        assert unit is not None and unit.state == "locked"
    finally:
        ledger.close()
