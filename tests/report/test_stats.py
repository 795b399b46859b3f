"""The report's numbers: yields, Cpk, Pareto, histograms and position flags, against values
worked out by hand, and their invariants under hypothesis."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.report import stats
from ate.report.plots import nice_ticks
from ate.store.api import MeasurementSeries, ReportInput, RunRow

_n = 0


def run(
    chip: str | None,
    verdict: str,
    attempt: int,
    at: str,
    *,
    failing: str | None = None,
    fixture: str = "fx1",
    slot: int = 1,
    station: str = "st1",
) -> RunRow:
    global _n
    _n += 1
    return RunRow(
        run_id=f"r{_n:05d}",
        chip_id=chip,
        serial=None,
        station=station,
        fixture=fixture,
        slot=slot,
        operator="op1",
        started_at=f"2026-11-21T{at}:00.000+00:00",
        verdict=verdict,
        attempt=attempt,
        failing_step=failing,
        duration_s=1.0,
    )


def hand_line() -> list[RunRow]:
    """Six units, every case of the definitions once."""
    return [
        run("a", "PASS", 1, "07:00"),  # first pass
        run("b", "FAIL", 1, "07:01", failing="rf"),
        run("b", "PASS", 2, "07:10"),  # retest passes: final only
        run("c", "ABORTED", 1, "07:02"),  # aborted is no test ...
        run("c", "PASS", 2, "07:11"),  # ... so this is c's first test: first pass
        run("d", "FAIL", 1, "07:03", failing="gpio"),  # fails, never retested
        run("e", "PASS", 3, "07:04"),  # first tested before the range: final only
        run(None, "EMPTY", 0, "07:05"),  # no board: counts nowhere
        run(None, "ERROR", 0, "07:06", failing="connect"),  # unidentified: a unit of its own
    ]


def test_yields_by_hand() -> None:
    s = stats.summarize(hand_line())
    assert (s.units, s.tests, s.empty, s.aborted, s.retests) == (6, 7, 1, 1, 1)
    assert (s.first_pass, s.final_pass, s.test_pass) == (2, 4, 4)
    assert s.first_pass_yield == pytest.approx(2 / 6)
    assert s.final_yield == pytest.approx(4 / 6)
    assert s.test_yield == pytest.approx(4 / 7)


def test_latest_test_decides_final_yield_whatever_the_input_order() -> None:
    runs = [run("u", "FAIL", 2, "08:00", failing="rf"), run("u", "PASS", 1, "07:00")]
    (u,) = stats.unit_outcomes(runs)
    assert u.first.verdict == "PASS" and u.last.verdict == "FAIL"
    assert u.first_pass and not u.final_pass


def test_no_tests_gives_no_yield_rather_than_zero() -> None:
    s = stats.summarize([run(None, "EMPTY", 0, "07:00")])
    assert s.units == 0 and s.first_pass_yield is None and s.final_yield is None


def _cpk(values: list[float], low: float | None, high: float | None) -> float | None:
    return stats.cpk(*stats.mean_sigma(values), low, high)


def test_cpk_by_hand() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]  # mean 3, sample sigma sqrt(2.5) = 1.58114
    cap = stats.capability(values, 0.0, 10.0)
    assert cap.mean == pytest.approx(3.0)
    assert cap.sigma == pytest.approx(1.5811388)
    assert _cpk(values, 0.0, 10.0) == pytest.approx(3.0 / (3 * 1.5811388))  # lower side
    assert _cpk(values, None, 10.0) == pytest.approx(7.0 / (3 * 1.5811388))
    assert _cpk(values, 0.0, None) == pytest.approx(0.6324555)
    assert _cpk(values, None, None) is None
    assert _cpk([3.0], 0.0, 10.0) is None  # one value: no sigma
    assert _cpk([], 0.0, 10.0) is None
    # all values equal: inside the limits infinitely capable, outside infinitely not
    assert _cpk([3.0, 3.0], 0.0, 10.0) == math.inf
    assert _cpk([11.0, 11.0], 0.0, 10.0) == -math.inf


def test_cpk_bands_and_worst_first() -> None:
    assert [stats.cpk_band(v) for v in (0.5, 0.999, 1.0, 1.329, 1.33, 2.0, None)] == [
        "bad",
        "bad",
        "warn",
        "warn",
        "good",
        "good",
        "na",
    ]
    series = [
        MeasurementSeries("s", "good", "V", 0.0, 10.0, [4.0, 5.0, 6.0]),
        MeasurementSeries("s", "nolimits", "V", None, None, [4.0, 5.0, 6.0]),
        MeasurementSeries("s", "bad", "V", 0.0, 10.0, [1.0, 5.0, 9.0]),
    ]
    order = [m.series.name for m in stats.worst_first(map(stats.series_stats, series))]
    assert order == ["bad", "good", "nolimits"]


def test_pareto_by_hand() -> None:
    runs = [
        *(run(f"a{i}", "FAIL", 1, "07:00", failing="rf") for i in range(5)),
        *(run(f"b{i}", "ERROR", 1, "07:00", failing="flash") for i in range(3)),
        run("c", "FAIL", 1, "07:00", failing=None),
        run("d", "FAIL", 1, "07:00", failing="gpio"),
        run("e", "PASS", 1, "07:00"),
        run("f", "ABORTED", 1, "07:00", failing="rf"),  # not a test: not counted
    ]
    bars = stats.pareto(runs)
    assert [(b.label, b.count) for b in bars] == [
        ("rf", 5),
        ("flash", 3),
        (stats.NO_STEP, 1),
        ("gpio", 1),
    ]
    assert [round(b.cumulative_pct, 6) for b in bars] == [50.0, 80.0, 90.0, 100.0]
    folded = stats.pareto(runs, top=2)
    assert [(b.label, b.count) for b in folded] == [("rf", 5), ("other (3 steps)", 5)]
    assert folded[-1].cumulative_pct == 100.0
    assert stats.pareto([run("g", "PASS", 1, "07:00")]) == []


def test_histogram_bins() -> None:
    h = stats.histogram([0.0, 0.5, 1.0, 1.5, 2.0], bins=4)
    assert h.edges == [0.0, 0.5, 1.0, 1.5, 2.0] and h.counts == [1, 1, 1, 2]
    whole = stats.histogram([1.0, 1.0, 0.0, 3.0])  # whole numbers: one bin a value
    assert whole.edges == [-0.5, 0.5, 1.5, 2.5, 3.5] and whole.counts == [1, 2, 0, 1]
    flat = stats.histogram([2.5, 2.5])
    assert flat.counts == [2] and flat.edges[0] < 2.5 < flat.edges[1]


def test_drift_is_seen_and_noise_is_not() -> None:
    steady = [float(i % 7) for i in range(700)]
    ramp = [i / 100 + (i % 7) for i in range(700)]
    assert not stats.series_stats(MeasurementSeries("s", "m", "", None, None, steady)).drifting
    ramped = stats.series_stats(MeasurementSeries("s", "m", "", None, None, ramp))
    assert ramped.drifting and ramped.drift is not None and ramped.drift > 0


def _units_at_slots(bad: dict[int, int], per_slot: int = 200, base_fail: int = 4) -> list[RunRow]:
    runs = []
    for slot in (1, 2, 3, 4):
        fails = bad.get(slot, base_fail)
        for i in range(per_slot):
            verdict = "FAIL" if i < fails else "PASS"
            runs.append(run(f"s{slot}-{i}", verdict, 1, "07:00", slot=slot, failing="gpio"))
    return runs


def test_a_bad_slot_is_flagged_and_a_healthy_line_is_not() -> None:
    units = stats.unit_outcomes(_units_at_slots({3: 34}))  # 83 % against 98 %
    slots = stats.position_yields(units, lambda r: (r.fixture, r.slot))
    assert [p.key for p in slots if p.flagged] == [("fx1", "3")]
    healthy = stats.position_yields(
        stats.unit_outcomes(_units_at_slots({})), lambda r: (r.fixture, r.slot)
    )
    assert not any(p.flagged for p in healthy)
    # a small shortfall that is significant is still not worth a flag (under 2 points)
    slight = stats.unit_outcomes(_units_at_slots({3: 7}, per_slot=5000, base_fail=4))
    assert not any(p.flagged for p in stats.position_yields(slight, lambda r: (r.slot,)))


def test_slots_sort_numerically() -> None:
    runs = [run(f"u{s}", "PASS", 1, "07:00", slot=s) for s in (10, 2, 1)]
    keys = [p.key for p in stats.position_yields(stats.unit_outcomes(runs), lambda r: (r.slot,))]
    assert keys == [("1",), ("2",), ("10",)]


def test_hourly_for_short_ranges_daily_for_long_ones() -> None:
    short = stats.unit_outcomes(
        [run("a", "PASS", 1, "07:00"), run("b", "FAIL", 1, "09:30", failing="x")]
    )
    gran, buckets = stats.yield_over_time(short)
    assert gran == "hour" and [b.units for b in buckets] == [1, 0, 1]  # 08:00 empty
    assert buckets[0].first_pass_yield == 1.0 and buckets[1].first_pass_yield is None
    late = RunRow(
        "z", "z", None, "st1", "fx1", 1, "op", "2026-11-25T10:00:00+00:00", "PASS", 1, None, 1.0
    )
    gran, buckets = stats.yield_over_time(stats.unit_outcomes([*hand_line(), late]))
    assert gran == "day" and len(buckets) == 5 and sum(b.units for b in buckets) == 7


def test_analyse_whole_input() -> None:
    report = ReportInput(
        None, None, hand_line(), [MeasurementSeries("s", "v", "V", 0.0, 1.0, [0.5, 0.6])]
    )
    a = stats.analyse(report)
    assert a.summary.units == 6 and len(a.measurements) == 1 and a.retests[0].tests == 1


# ---------------------------------------------------------------- invariants

VERDICTS = ["PASS", "FAIL", "ERROR", "ABORTED", "EMPTY"]

run_rows = st.builds(
    lambda chip, verdict, attempt, minute, step, slot: RunRow(
        f"r{minute}-{chip}-{attempt}-{verdict}",
        None if verdict == "EMPTY" else chip,
        None,
        "st1",
        "fx1",
        slot,
        "op",
        f"2026-11-21T{minute // 60:02d}:{minute % 60:02d}:00+00:00",
        verdict,
        0 if verdict == "EMPTY" else attempt,
        step,
        1.0,
    ),
    st.sampled_from(["a", "b", "c", "d", "e", "f"]) | st.none(),
    st.sampled_from(VERDICTS),
    st.integers(1, 4),
    st.integers(0, 24 * 60 * 3 - 1).map(lambda m: m % (24 * 60)),
    st.sampled_from(["rf", "gpio", "flash", "boot", "adc"]) | st.none(),
    st.integers(1, 4),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(run_rows, max_size=60))
def test_yields_stay_in_range(runs: list[RunRow]) -> None:
    s = stats.summarize(runs)
    assert 0 <= s.first_pass <= s.units <= s.tests
    assert 0 <= s.final_pass <= s.units
    for y in (s.first_pass_yield, s.final_yield, s.test_yield):
        assert y is None or 0.0 <= y <= 1.0
    assert s.retests >= 0
    _, buckets = stats.yield_over_time(stats.unit_outcomes(runs))
    assert sum(b.units for b in buckets) == s.units
    for b in buckets:
        for y in (b.first_pass_yield, b.final_yield):
            assert y is None or 0.0 <= y <= 1.0
    units = stats.unit_outcomes(runs)
    for pos in stats.position_yields(units, lambda r: (r.slot,)):
        assert 0.0 <= pos.test_yield <= 1.0
    assert sum(b.units for b in stats.retest_distribution(units)) == s.units


@settings(max_examples=150, deadline=None)
@given(st.lists(run_rows, max_size=60), st.integers(1, 6))
def test_pareto_is_sorted_and_ends_at_100(runs: list[RunRow], top: int) -> None:
    bars = stats.pareto(runs, top=top)
    failing = sum(1 for r in runs if r.verdict in ("FAIL", "ERROR"))
    assert sum(b.count for b in bars) == failing
    if not failing:
        assert bars == []
        return
    assert bars[-1].cumulative_pct == 100.0
    assert len(bars) <= top
    cums = [b.cumulative_pct for b in bars]
    assert cums == sorted(cums)
    ranked = [b.count for b in bars if not b.label.startswith("other (")]
    assert ranked == sorted(ranked, reverse=True)


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


# eighths: shifting them by another eighth loses nothing to rounding
eighths = st.integers(-(10**6), 10**6).map(lambda i: i / 8)


@settings(max_examples=200, deadline=None)
@given(st.lists(eighths, min_size=2, max_size=80), eighths, st.integers(1, 10**5), eighths)
def test_cpk_invariants(values: list[float], low: float, width: int, shift: float) -> None:
    high = low + width / 8
    both = _cpk(values, low, high)
    upper = _cpk(values, None, high)
    lower = _cpk(values, low, None)
    assert both is not None and upper is not None and lower is not None
    assert both == min(upper, lower)  # two-sided is the worse side
    moved = _cpk([v + shift for v in values], low + shift, high + shift)
    assert moved is not None
    if math.isfinite(both) and abs(both) < 1e3:
        assert moved == pytest.approx(both, rel=1e-6, abs=1e-6)  # only distances matter


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=300))
def test_histogram_keeps_every_value(values: list[float]) -> None:
    h = stats.histogram(values)
    assert h.n == len(values)
    assert len(h.edges) == len(h.counts) + 1
    assert h.edges == sorted(h.edges)
    assert h.edges[0] <= min(values) and max(values) <= h.edges[-1]


@given(finite, st.floats(1e-3, 1e6))
def test_nice_ticks_cover_the_range(lo: float, span: float) -> None:
    ticks = nice_ticks(lo, lo + span, 5)
    assert ticks == sorted(ticks) and 1 <= len(ticks) <= 11
    assert all(lo - span * 1e-6 <= t <= lo + span * (1 + 1e-6) for t in ticks)


def test_binomial_tail_by_hand() -> None:
    assert stats.binom_sf(1, 2, 0.5) == pytest.approx(0.75)
    assert stats.binom_sf(2, 2, 0.5) == pytest.approx(0.25)
    assert stats.binom_sf(3, 10, 0.1) == pytest.approx(0.0701908, abs=1e-7)
    assert stats.binom_sf(0, 10, 0.1) == 1.0 and stats.binom_sf(11, 10, 0.1) == 0.0
    assert stats.binom_sf(1, 10, 0.0) == 0.0


@given(st.integers(0, 40), st.floats(0.001, 0.999))
def test_binomial_tail_matches_the_sum_of_the_pmf(n: int, p: float) -> None:
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    tails = [stats.binom_sf(k, n, p) for k in range(n + 2)]
    for k in range(n + 1):
        assert tails[k] == pytest.approx(math.fsum(pmf[k:]), rel=1e-9, abs=1e-12)
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(tails))
