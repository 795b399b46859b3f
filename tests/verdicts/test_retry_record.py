"""A step that passed only on a retry: every attempt's measurements reach the line
database marked by attempt, the report counts the step, and Cpk sees only the attempt
that decided it."""

from __future__ import annotations

import copy
from pathlib import Path

from ate.report.html import render_report
from ate.store.api import open_store
from tests.store.records import make_record


def test_a_pass_on_retry_is_kept_counted_and_said(tmp_path: Path) -> None:
    rec = make_record(1, n_steps=1)
    step = rec["steps"][0]
    (m,) = step["measurements"][:1]
    first = copy.deepcopy(m)
    first.update(attempt=0, verdict="FAIL", value=-999.0 if isinstance(m["value"], float) else 0)
    step["measurements"] = [first, {**m, "attempt": 1}]
    step["retries"] = 1
    store = open_store(f"sqlite:///{tmp_path / 'line.db'}")
    try:
        assert store.ingest(rec)
        report = store.report_input(None, None)
        (history,) = [store.unit_history(rec["unit"]["mac"])]
    finally:
        store.close()
    assert history is not None
    (run,) = history.runs
    got = [(x.attempt, x.verdict) for x in run.steps[0].measurements]
    assert got == [(0, "FAIL"), (1, "PASS")]
    assert report.passed_on_retry == {step["name"]: 1}
    # the failed first attempt's value is not in the capability series
    assert all(-999.0 not in s.values for s in report.series)
    page = render_report(report)
    assert f"1 step results passed only on a retry: {step['name']} (1)." in page
