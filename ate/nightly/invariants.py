"""What must hold over a whole nightly run, and the confusion matrix.

Owns `Violation`, `check_panel` (per panel: no false PASS, nothing provisioned or burned
on a unit that did not pass, no PASS that is not locked, the verdict class the fault
declares, no record lost on disk or in the line database) and `check_audit` (the
station's audit chain in the line database is intact), and `confusion` (injected fault
by verdict class). Imports ate.nightly.bench/faults and ate.store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ate.model.verdict import Verdict
from ate.nightly.bench import PanelRun, SlotOutcome
from ate.nightly.faults import Outcome
from ate.store.api import open_store
from ate.store.audit import verify_chain

# The invariants, in the order the report lists them.
FALSE_PASS = "false PASS"
TOUCHED = "provisioning or burns on a unit that did not pass"
NOT_LOCKED = "PASS but not locked"
RECORD_LOST = "records lost"
AUDIT = "audit chain broken"
UNEXPECTED = "verdict class the fault does not allow"
INVARIANTS = (FALSE_PASS, TOUCHED, NOT_LOCKED, RECORD_LOST, AUDIT, UNEXPECTED)


@dataclass(frozen=True)
class Violation:
    invariant: str
    panel: int | None
    slot: int | None
    detail: str


def check_slot(o: SlotOutcome) -> list[Violation]:
    found: list[Violation] = []

    def bad(invariant: str, detail: str) -> None:
        found.append(Violation(invariant, o.panel, o.slot, f"{o.fault.name}: {detail}"))

    if o.fault.is_defect and o.final is Verdict.PASS:
        bad(FALSE_PASS, f"a unit with '{o.fault.what}' passed")
    if o.fault.stop == "test" and (o.efuses_changed or o.certified):
        what = "eFuses burned" if o.efuses_changed else "a certificate issued"
        bad(TOUCHED, f"{what} on a unit that failed its test ({o.first.value})")
    if o.fault.stop == "provision" and (o.efuses_changed or o.locked):
        bad(TOUCHED, "eFuses burned on a unit whose provisioning was refused")
    if o.final is Verdict.PASS and not (o.locked and o.provisioning == "locked"):
        bad(NOT_LOCKED, f"PASS with the chip {'locked' if o.locked else 'open'}, "
            f"station state {o.provisioning}")  # fmt: skip
    if o.outcome not in o.allowed:
        allowed = " or ".join(a.value for a in o.allowed)
        bad(UNEXPECTED, f"{o.outcome.value} where the fault allows {allowed}: {o.reason}")
    return found


def check_panel(run: PanelRun) -> list[Violation]:
    found = [v for o in run.outcomes for v in check_slot(o)]
    index = run.draw.index
    if run.error is not None:
        found.append(Violation(UNEXPECTED, index, None, f"the panel did not run: {run.error}"))
    if len(run.record_paths) != run.units_ended:
        found.append(
            Violation(
                RECORD_LOST,
                index,
                None,
                f"{run.units_ended} units ended, {len(run.record_paths)} records on disk",
            )
        )
    for record_id in run.records_missing_in_db:
        found.append(
            Violation(RECORD_LOST, index, None, f"{record_id} never reached the line database")
        )
    return found


def check_audit(db_url: str, station: str) -> list[Violation]:
    store = open_store(db_url)
    try:
        entries = store.audit_entries(station)
    finally:
        store.close()
    if not entries:
        return [Violation(AUDIT, None, None, f"station {station} left no audit entry at all")]
    return [Violation(AUDIT, None, None, p) for p in verify_chain(entries)]


def confusion(outcomes: list[SlotOutcome]) -> dict[str, Counter[Outcome]]:
    """Injected fault name -> how many of its units ended in each verdict class."""
    matrix: dict[str, Counter[Outcome]] = {}
    for o in outcomes:
        matrix.setdefault(o.fault.name, Counter())[o.outcome] += 1
    return matrix
