"""The report benchmark's bulk fill stores exactly what the store's own ingest stores, so
its timing is of a real database; and the benchmark runs end to end (small, not timed)."""

from __future__ import annotations

from pathlib import Path

from ate.store.api import open_store
from bench.report import _fill, report_build_seconds, simulate_line, unit_record


def test_bulk_fill_equals_ingest(tmp_path: Path) -> None:
    runs = simulate_line(150, seed=9, days=2.0)
    ingested = open_store(f"sqlite://{tmp_path / 'a.db'}")
    filled_url = f"sqlite://{tmp_path / 'b.db'}"
    open_store(filled_url).close()
    _fill(tmp_path / "b.db", runs)
    filled = open_store(filled_url, migrate=False)
    try:
        assert all(ingested.ingest_many(unit_record(r) for r in runs))
        want, got = ingested.report_input(None, None), filled.report_input(None, None)
        assert got.runs == want.runs
        assert got.series == want.series
        assert len(got.runs) == len(runs) and got.series
        day = runs[0].started_at[:10]
        assert filled.report_input(day, None) == ingested.report_input(day, None)
    finally:
        ingested.close()
        filled.close()


def test_benchmark_runs_end_to_end() -> None:
    result = report_build_seconds(n_units=200)
    assert result["units"] == 200 and result["runs"] >= 200
    assert result["html_bytes"] > 20_000 and result["measurements"] > 1000
    assert result["total_s"] >= result["render_s"] > 0
