"""Secrets that reach the event stream (a careless plugin, a chatty DUT) are redacted
before the logs and records are written."""

from __future__ import annotations

from pathlib import Path

from ate.model.events import DutLog, PanelStarted, SlotEnded
from ate.model.results import SlotResult, UnitIdentity
from ate.model.verdict import Verdict
from ate.records.redact import redact
from ate.records.slot_log import SlotLogWriter
from ate.records.unit_record import build_record

PEM = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB7s\n-----END EC PRIVATE KEY-----"


def test_pem_private_key_in_a_dut_line_never_reaches_the_log(tmp_path: Path) -> None:
    logs = SlotLogWriter(tmp_path)
    logs(DutLog("p1", 1, f"oops {PEM} done"))
    logs(SlotEnded("p1", SlotResult(slot=1, verdict=Verdict.PASS)))
    text = (tmp_path / "logs" / "p1-slot1.jsonl").read_text()
    assert "MHcCAQEEIB7s" not in text and "[redacted private key]" in text
    assert "oops" in text and "done" in text


def test_secret_named_fields_are_masked() -> None:
    clean = redact({"serial": "A1", "factory_secret": "s3cr3t", "nested": [{"pin": "1234"}]})
    assert clean == {
        "serial": "A1",
        "factory_secret": "[redacted]",
        "nested": [{"pin": "[redacted]"}],
    }


def test_record_reason_is_redacted() -> None:
    panel = PanelStarted("p1", "fx", "st", "op", {"name": "s"}, (1,), "2026-01-01T00:00:00Z")
    result = SlotResult(
        slot=1,
        verdict=Verdict.FAIL,
        reason=f"plugin said {PEM}",
        unit=UnitIdentity(mac="24:0a:c4:00:00:01"),
    )
    record = build_record(panel, result)
    assert "MHcCAQEEIB7s" not in str(record)
    assert record["unit"]["mac"] == "24:0a:c4:00:00:01"
