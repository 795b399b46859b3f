"""Control charts, the Cpk gate, pass/fail counts and identifiers: the statistics from
hand-built series (each Western Electric rule caught, an in-control series clean, random
series flagged only where a rule holds), the limit history a real SQLite store derives from
its measurement rows, and the chart as headless Chromium lays it out (boxes measured)."""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.report import stats
from ate.report.html import render_report
from ate.report.stats import CPK_MIN_UNITS, Violation, we_violations
from ate.store.api import MeasurementSeries, ReportInput, RunRow, open_store
from bench.report import SEQUENCE, simulate_line, unit_record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)"
)


def rules_at(values: list[float], centre: float = 0.0, sigma: float = 1.0) -> set[tuple[int, int]]:
    return {(v.index, v.rule) for v in we_violations(values, centre, sigma)}


# ---------------------------------------------------------------- Western Electric rules


def test_rule_1_a_point_beyond_3_sigma() -> None:
    values = [0.5, -0.5, 3.5, 0.5, -0.5, -3.2]
    assert rules_at(values) == {(2, 1), (5, 1)}


def test_rule_2_two_of_three_beyond_2_sigma_same_side() -> None:
    assert rules_at([0.0, 2.5, -0.3, 2.2, 0.0]) == {(3, 2)}
    # two beyond 2 sigma but on opposite sides: no rule 2
    assert rules_at([0.0, 2.5, -2.5, 0.0]) == set()


def test_rule_3_four_of_five_beyond_1_sigma_same_side() -> None:
    assert rules_at([0.0, -1.5, -1.2, 0.3, -1.1, -1.4, 0.2]) == {(5, 3)}


def test_rule_4_eight_in_a_row_on_one_side() -> None:
    values = [-0.2, 0.1, 0.3, 0.2, 0.4, 0.1, 0.5, 0.2, 0.3, -0.1]
    assert rules_at(values) == {(8, 4)}
    assert rules_at(values[:8]) == set()  # seven above the centre are not eight


def test_an_in_control_series_is_clean() -> None:
    rng = random.Random(7)
    values = [rng.gauss(10.0, 0.5) for _ in range(60)]
    # alternate sides so rule 4 cannot hold, stay within 1 sigma so 1-3 cannot
    values = [10.0 + (0.4 if i % 2 else -0.4) * abs(v - 10.0) / 2 for i, v in enumerate(values)]
    chart = stats.control_chart(MeasurementSeries("s", "v", "V", 9.0, 11.0, values))
    assert chart is not None and chart.violations == []


def test_no_spread_no_flags() -> None:
    assert we_violations([1.0] * 20, 1.0, 0.0) == []


def _holds(rule: int, z: list[float], i: int) -> bool:
    """The rule's pattern ends at i: an independent statement of each rule."""
    if rule == 1:
        return abs(z[i]) > 3
    if rule == 4:
        return i >= 7 and (
            all(p > 0 for p in z[i - 7 : i + 1]) or all(p < 0 for p in z[i - 7 : i + 1])
        )
    window, need, zone = (3, 2, 2.0) if rule == 2 else (5, 4, 1.0)
    if i + 1 < window:
        return False
    part = z[i + 1 - window : i + 1]
    up = z[i] > zone and sum(p > zone for p in part) >= need
    down = z[i] < -zone and sum(p < -zone for p in part) >= need
    return up or down


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=0, max_size=60))
def test_random_series_flag_exactly_where_a_rule_holds(values: list[float]) -> None:
    chart = stats.control_chart(MeasurementSeries("s", "v", "V", None, None, values))
    if len(values) < 2:
        assert chart is None
        return
    assert chart is not None
    assert all(math.isfinite(x) for x in (chart.centre, chart.sigma, chart.mr_ucl))
    got = {(v.index, v.rule) for v in chart.violations}
    if chart.sigma > 0:
        z = [(v - chart.centre) / chart.sigma for v in values]
        want = {(i, r) for i in range(len(values)) for r in (1, 2, 3, 4) if _holds(r, z, i)}
        assert got == want
    else:
        assert got == set()
    assert all(isinstance(v, Violation) and v.value == values[v.index] for v in chart.violations)


# ---------------------------------------------------------------- gate, counts, identifiers


def _series(name: str, unit: str, values: list[float], step_type: str = "") -> MeasurementSeries:
    return MeasurementSeries("step", name, unit, 0.0, 10.0, values, step_type=step_type)


def test_cpk_only_from_enough_units() -> None:
    few = stats.series_stats(
        _series("v", "V", [5.0 + 0.1 * (i % 3) for i in range(CPK_MIN_UNITS - 1)])
    )
    enough = stats.series_stats(
        _series("v", "V", [5.0 + 0.1 * (i % 3) for i in range(CPK_MIN_UNITS)])
    )
    assert few.too_few and few.capability.cpk is None and stats.cpk_band(few.capability.cpk) == "na"
    assert not enough.too_few and enough.capability.cpk is not None
    ranked = stats.worst_first([few, enough])
    assert ranked[0] is enough  # the one with too few units is not ranked among the worst


@pytest.mark.parametrize(
    ("name", "unit", "values", "step_type", "kind"),
    [
        ("level", "", [0.0, 1.0, 1.0], "", "passfail"),
        ("ok", "bool", [1.0, 1.0], "", "passfail"),
        ("ok", "pass", [1.0], "", "passfail"),
        ("seen", "", [1.0, 2.0], "check", "passfail"),
        ("mac", "", [1.0e12, 2.0e12], "", "identifier"),
        ("chip_rev", "", [0.0, 3.0], "", "identifier"),
        ("serial", "", [1.0, 2.0], "", "identifier"),
        ("code", "hex", [17.0, 18.0], "", "identifier"),
        ("spi0.jedec", "", [0xEF4018] * 3, "", "identifier"),
        ("i2c0@0x48[0x0f]", "", [0x5A, 0x5A], "", "identifier"),
        ("i2c0@0x48.ack", "", [1.0, 1.0], "", "passfail"),
        ("gpio4->gpio5@1", "", [1.0, 0.0], "", "passfail"),
        ("vdd33", "V", [3.3, 3.31], "", "quantity"),
        ("chip_temp", "C", [41.0, 42.5], "", "quantity"),
        ("idle", "mA", [0.0, 1.0, 2.0], "", "quantity"),
    ],
)
def test_kinds(name: str, unit: str, values: list[float], step_type: str, kind: str) -> None:
    assert stats.measurement_kind(_series(name, unit, values, step_type)) == kind


def _runs(n: int) -> list[RunRow]:
    return [
        RunRow(
            f"r{i}",
            f"c{i}",
            None,
            "st1",
            "fx1",
            1,
            "op",
            f"2026-11-16T06:{i:02d}:00+00:00",
            "PASS",
            1,
            None,
            1.0,
        )
        for i in range(n)
    ]


def test_the_page_counts_pass_fail_and_leaves_identifiers_out() -> None:
    report = ReportInput(
        None,
        None,
        _runs(4),
        [
            _series("level", "", [0.0, 1.0, 1.0, 1.0]),
            _series("mac", "", [1.0e12, 2.0e12, 3.0e12, 4.0e12]),
            _series("vdd33", "V", [3.3, 3.31, 3.29, 3.30]),
        ],
    )
    page = render_report(report)
    assert 'data-kind="passfail"' in page and "pass 3 / fail 1" in page
    assert "too few units" in page and 'class="cpk-low"' not in page
    assert "Identifiers, not plotted as numbers" in page and "step / mac" in page
    assert page.count('class="chart hist"') == 1  # only vdd33 has a histogram
    assert 'aria-label="control chart of step / vdd33"' in page
    assert "control chart of step / mac" not in page and "control chart of step / level" not in page


# ---------------------------------------------------------------- the limit history in the store


def test_the_store_derives_the_limits_each_value_was_judged_against(tmp_path: Path) -> None:
    runs = simulate_line(80, seed=3, days=1.0)
    store = open_store(f"sqlite://{tmp_path / 'ate.db'}")
    try:
        for k, run in enumerate(runs):
            record: dict[str, Any] = unit_record(run)
            if k >= len(runs) // 2:  # version 1.3.0 tightened the supply limits
                record["sequence"] = {**SEQUENCE, "version": "1.3.0"}
                for step in record["steps"]:
                    for m in step["measurements"]:
                        if m["name"] == "vdd33" and m["limits"]:
                            m["limits"] = {**m["limits"], "low": 3.2, "high": 3.4}
            assert store.ingest_many([record])
        report = store.report_input(None, None)
    finally:
        store.close()
    (vdd,) = [s for s in report.series if s.name == "vdd33"]
    assert len(vdd.lows) == len(vdd.highs) == len(vdd.versions) == len(vdd.values)
    segments = stats.limit_segments(vdd)
    assert [(s.version, s.low, s.high) for s in segments][-1] == ("1.3.0", 3.2, 3.4)
    assert [s.version for s in segments] == ["1.2.0", "1.3.0"]
    assert (vdd.low, vdd.high) == (3.2, 3.4)  # the latest run's limits
    assert segments[0].high != 3.4


# ---------------------------------------------------------------- in Chromium


def _versioned_report() -> ReportInput:
    rng = random.Random(5)
    values = [rng.gauss(3.30, 0.01) for _ in range(60)]
    values[20] = 3.40  # rule 1
    values[40:48] = [3.31 + 0.002 * k for k in range(8)]  # eight above the centre: rule 4
    n = len(values)
    versions = ["1.0.0"] * 30 + ["1.1.0"] * (n - 30)
    lows = [3.20] * 30 + [3.25] * (n - 30)
    highs = [3.45] * 30 + [3.38] * (n - 30)
    series = [
        MeasurementSeries("supply", "vdd33", "V", 3.25, 3.38, values, lows, highs, versions),
        MeasurementSeries(
            "idle", "current", "mA", 30.0, 60.0, [45 + rng.gauss(0, 2) for _ in range(n)]
        ),
    ]
    return ReportInput(None, None, _runs(n), series)


@needs_chromium
def test_the_control_chart_in_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    report = _versioned_report()
    chart = stats.control_chart(report.series[0])
    assert chart is not None
    expected = {(v.index, v.rule) for v in chart.violations}
    assert (20, 1) in expected and any(r == 4 for _, r in expected)
    page_file = tmp_path / "report.html"
    page_file.write_text(render_report(report), encoding="utf-8")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(page_file.as_uri())
            cards = page.eval_on_selector_all(
                "figure.control-card", "fs => fs.map(f => f.dataset.measurement)"
            )
            assert sorted(cards) == ["idle / current", "supply / vdd33"]
            marks = page.eval_on_selector_all(
                "#control figure[data-measurement='supply / vdd33'] circle.we-violation",
                "cs => cs.map(c => [Number(c.dataset.index), c.dataset.rule])",
            )
            got = {(i, int(r)) for i, rules in marks for r in rules.split()}
            assert got == expected
            steps = page.eval_on_selector_all(
                "#control figure[data-measurement='supply / vdd33'] line.spec-limit",
                "ls => ls.map(l => [l.dataset.version, l.dataset.start, l.dataset.value])",
            )
            assert sorted(steps) == sorted(
                [
                    ["1.0.0", "0", "3.2"],
                    ["1.0.0", "0", "3.45"],
                    ["1.1.0", "30", "3.25"],
                    ["1.1.0", "30", "3.38"],
                ]
            )
            assert page.locator("#control line.spec-step").count() == 2
            assert page.locator("#capability tr.we-row[data-rule='1']").count() >= 1
            overlaps = page.evaluate(_OVERLAPS)
            assert overlaps == [], overlaps
            page.screenshot(path="/tmp/report-shots/control.png", full_page=True)
        finally:
            browser.close()


# For every chart: the boxes of its text labels against each other and against its data
# marks (bars, dots, violation circles) as Chromium laid them out.
_OVERLAPS = """() => {
  const hit = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 &&
                        a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  const out = [];
  for (const svg of document.querySelectorAll('svg.hist, svg.control, svg.count')) {
    const labels = [...svg.querySelectorAll('text.limit, text.margin-label, text[class^=count]')]
      .map(t => [t.textContent, t.getBoundingClientRect()]);
    const marks = [...svg.querySelectorAll('rect:not(.plot-area), circle')]
      .map(m => m.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0);
    for (let i = 0; i < labels.length; i++) {
      for (let j = i + 1; j < labels.length; j++)
        if (hit(labels[i][1], labels[j][1])) out.push([svg.ariaLabel, labels[i][0], labels[j][0]]);
      for (const m of marks)
        if (hit(labels[i][1], m)) out.push([svg.ariaLabel, labels[i][0], 'mark']);
    }
  }
  return out;
}"""


def test_a_long_series_is_thinned_to_its_pixel_columns() -> None:
    from ate.report import plots

    rng = random.Random(1)
    values = [rng.gauss(0.0, 1.0) for _ in range(50_000)]
    values[31_337] = 25.0  # a spike must survive the thinning
    m = stats.series_stats(MeasurementSeries("s", "v", "V", -5.0, 5.0, values))
    svg = plots.control_chart_svg(m)
    assert len(svg) < 200_000
    assert svg.count('class="we-violation"') <= plots.MAX_MARKS
    points = plots._thin(values, float, lambda v: v, 500)
    assert max(p[1] for p in points) == 25.0 and len(points) <= 2 * 500 + 2


@needs_chromium
def test_no_label_meets_a_bar_or_another_label_on_the_line_report(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from bench.report import report_input_of

    page_file = tmp_path / "line.html"
    page_file.write_text(render_report(report_input_of(simulate_line(300, seed=11))), "utf-8")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(page_file.as_uri())
            assert page.locator("svg.hist").count() >= 5
            assert page.locator("svg.control").count() >= 5
            assert page.locator("svg.count").count() >= 1  # boot_pin level: 0/1 values
            assert page.evaluate(_OVERLAPS) == []
            # nothing wider than the window: the violations table sits under the Cpk table
            assert page.evaluate("document.documentElement.scrollWidth") <= 1400
            page.screenshot(path="/tmp/report-shots/line.png", full_page=True)
        finally:
            browser.close()


@needs_chromium
def test_the_overlap_check_sees_an_overlap() -> None:
    from playwright.sync_api import sync_playwright

    svg = (
        '<svg class="chart hist" aria-label="x" width="200" height="100">'
        '<rect x="0" y="0" width="100" height="100" fill="#000"/>'
        '<text x="10" y="50" class="limit">LSL 1</text>'
        '<text x="12" y="52" class="limit">USL 2</text></svg>'
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_content(f"<html><body>{svg}</body></html>")
            found = page.evaluate(_OVERLAPS)
        finally:
            browser.close()
    assert ["x", "LSL 1", "USL 2"] in found and ["x", "LSL 1", "mark"] in found
