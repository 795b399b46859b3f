"""A report that does not cry wolf, checked in headless Chromium from the DOM: the 4-unit
demo's measurements show n and no Cpk verdict (no alarm), pin levels and chip ids are
counted, not plotted as histograms, and no limit label overlaps another label or a bar,
even where the limits sit close together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ate.report.html import render_report
from ate.store.api import MeasurementSeries, ReportInput, RunRow

CHROMIUM = "/usr/bin/chromium"


def runs(n: int) -> list[RunRow]:
    return [
        RunRow(
            f"r{i}",
            f"aa:bb:cc:00:00:{i:02x}",
            None,
            "st",
            "fx",
            1 + i % 4,
            "op",
            f"2026-11-21T07:{i // 60:02d}:{i % 60:02d}+00:00",
            "PASS",
            1,
            None,
            9.0,
        )
        for i in range(n)
    ]


def report(units: int) -> str:
    close = [3.30 + 0.001 * (i % 7) for i in range(units)]
    series = [
        MeasurementSeries("rail_3v3", "rail.3v3", "V", 3.29, 3.32, close),  # labels close
        MeasurementSeries("current_idle", "ma", "mA", 20, 45, [30 + i % 9 for i in range(units)]),
        MeasurementSeries("boot_pin", "gpio0", "", 1, 1, [1.0] * units),
        MeasurementSeries("imu_whoami", "whoami", "", 104, 104, [104.0] * units),
    ]
    return render_report(ReportInput(None, None, runs(units), series))


@pytest.fixture(scope="module")
def browser() -> Any:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def open_report(browser: Any, html: str, tmp: Path, name: str) -> Any:
    path = tmp / f"{name}.html"
    path.write_text(html)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(path.as_uri())
    return page


OVERLAPS = """() => {
  const boxes = (sel, root) => [...root.querySelectorAll(sel)].map(e => e.getBoundingClientRect());
  const hit = (a, b) =>
    a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const found = [];
  for (const svg of document.querySelectorAll("svg.hist")) {
    const labels = boxes("text.limit", svg), bars = boxes("rect", svg);
    labels.forEach((a, i) =>
      labels.slice(i + 1).forEach(b => { if (hit(a, b)) found.push("labels"); }));
    labels.forEach(a => bars.forEach(b => { if (b.width > 0 && hit(a, b)) found.push("bar"); }));
  }
  return found;
}"""


def test_the_four_unit_demo_raises_no_alarm(browser: Any, tmp_path: Path) -> None:
    page = open_report(browser, report(4), tmp_path, "four")
    assert page.locator("li.cpk-low").count() == 0  # no "Cpk 0.4: too close to its limits"
    cells = page.locator(".cpk-table .cpk").all_inner_texts()
    assert cells == ["too few units", "too few units"]  # only the two physical quantities
    assert page.locator("svg.hist").count() == 2  # no histograms of 0/1 or of ids
    kinds = page.locator("figure.count-card").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds == ["passfail"]  # the pin level is counted
    assert "imu_whoami" in page.locator("p.identifiers").inner_text()  # the id only listed
    assert page.evaluate(OVERLAPS) == []
    page.screenshot(path="/tmp/ate-report-four.png", full_page=True)


def test_enough_units_get_a_cpk_and_labels_still_clear(browser: Any, tmp_path: Path) -> None:
    page = open_report(browser, report(60), tmp_path, "sixty")
    cells = page.locator(".cpk-table .cpk").all_inner_texts()
    assert len(cells) == 2 and not any("<" in c for c in cells)
    assert page.evaluate(OVERLAPS) == []
