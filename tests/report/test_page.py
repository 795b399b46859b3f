"""The rendered page in real headless Chromium: a seeded simulated line (3 stations x 2
fixtures x 4 slots, one worn pogo pin, one drifting measurement), its DOM as Chromium built
it, and a screenshot that must hold the charts' colours."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.report import plots, stats
from ate.report.html import SECTIONS, render_report
from ate.store.api import MeasurementSeries, ReportInput, RunRow
from bench.report import BAD_SLOT, DRIFTING, report_input_of, simulate_line

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)"
)
BAD = f"{BAD_SLOT[0]} slot {BAD_SLOT[1]}"


class Elements(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        def match(a: dict[str, str]) -> bool:
            for key, want in attrs.items():
                key = key.rstrip("_").replace("_", "-")
                have = a.get(key)
                if have is None:
                    return False
                if key == "class" and want not in have.split():
                    return False
                if key != "class" and have != want:
                    return False
            return True

        return [a for t, a in self.tags if t == tag and match(a)]


def parse(html: str) -> Elements:
    p = Elements()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def line_report() -> ReportInput:
    report = report_input_of(simulate_line(2000, seed=11))
    assert isinstance(report, ReportInput)
    return report


@pytest.fixture(scope="module")
def page(line_report: ReportInput, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    out.write_text(render_report(line_report, source="sqlite:///line/ate.db"), encoding="utf-8")
    return out


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            "--force-device-scale-factor=1",
            f"--user-data-dir={tmp / 'profile'}",
            "--window-size=1400,4000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="module")
def dom(page: Path, tmp_path_factory: pytest.TempPathFactory) -> Elements:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    proc = chromium("--dump-dom", page.as_uri(), tmp=tmp_path_factory.mktemp("chromium"))
    assert "</html>" in proc.stdout, proc.stderr[-2000:]
    return parse(proc.stdout)


@pytest.fixture(scope="module")
def screenshot(page: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    tmp = tmp_path_factory.mktemp("shot")
    png = tmp / "report.png"
    chromium(f"--screenshot={png}", page.as_uri(), tmp=tmp)
    assert png.exists() and png.stat().st_size > 10_000
    yield png


# ---------------------------------------------------------------- the DOM Chromium built


@needs_chromium
def test_every_section_is_there_in_order(dom: Elements) -> None:
    ids = [a["id"] for t, a in dom.tags if t == "section" and "id" in a]
    assert ids == list(SECTIONS)
    assert dom.find("footer", id="definitions")
    assert len(dom.find("svg", class_="chart")) >= 6
    text = " ".join(dom.text)
    for words in ("First-pass yield", "Final yield", "Retests", "Cpk", "Pareto"):
        assert words in text


@needs_chromium
def test_the_worn_pogo_pin_is_flagged_and_only_it(dom: Elements) -> None:
    flagged_rows = dom.find("tr", class_="flagged")
    slot_rows = [r for r in flagged_rows if " slot " in r["data-position"]]
    assert [r["data-position"] for r in slot_rows] == [BAD]
    assert [a["data-position"] for a in dom.find("li", class_="flag", data_kind="slot")] == [BAD]
    alert = dom.find("p", id="low-slots", class_="alert")
    assert alert, "the positions section must open with the low-slot alert"
    # every slot has its row, and the healthy ones say so
    rows = [a for a in dom.find("tr") if " slot " in a.get("data-position", "")]
    assert len(rows) == 24
    assert sum(r["data-flagged"] == "true" for r in rows) == 1


@needs_chromium
def test_drift_and_cpk_are_called_out(dom: Elements) -> None:
    drift = " ".join(dom.text)
    assert f"{DRIFTING[0]} / {DRIFTING[1]}" in drift and "drifting" in drift
    bands = [a["data-cpk-band"] for a in dom.find("figure", class_="hist-card")]
    order = {"bad": 0, "warn": 1, "good": 2, "na": 3}
    assert bands == sorted(bands, key=order.__getitem__), "histograms go worst Cpk first"
    assert dom.find("span", class_="cpk")


@needs_chromium
def test_nothing_is_fetched_at_view_time(dom: Elements) -> None:
    assert not dom.find("script") and not dom.find("link") and not dom.find("img")
    for _, attrs in dom.tags:
        for key in ("src", "href"):
            assert not attrs.get(key, "").startswith(("http:", "https:", "//")), attrs


# ---------------------------------------------------------------- the pixels


def _count_near(colors: list[tuple[int, tuple[int, int, int]]], color: str, tol: int = 3) -> int:
    want = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
    return sum(n for n, c in colors if all(abs(c[k] - want[k]) <= tol for k in range(3)))


@needs_chromium
def test_screenshot_shows_the_charts(screenshot: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    with Image.open(screenshot) as im:
        rgb = im.convert("RGB")
    assert rgb.size == (1400, 4000)
    colors = rgb.getcolors(maxcolors=1 << 24)
    assert colors is not None
    # not blank: many colours, and the background and white are far from all of it
    assert len(colors) > 200
    top_two = sum(sorted((n for n, _ in colors), reverse=True)[:2])
    assert top_two < 0.9 * rgb.size[0] * rgb.size[1]
    counts = {name: _count_near(colors, color) for name, color in plots.CHART_COLORS.items()}
    # bars and lines of every chart colour are painted, with room to spare
    assert counts["blue"] > 20_000, counts  # histograms, slot bars, FPY line
    assert counts["orange"] > 5_000, counts  # Pareto bars
    assert counts["green"] > 5_000, counts  # final yield, retest bars
    assert counts["red"] > 500, counts  # the worn slot's bar, limits, still-failing units


# ---------------------------------------------------------------- without a browser


def test_a_healthy_line_flags_no_slot() -> None:
    report = report_input_of(simulate_line(2000, seed=11, bad_slot_extra=0.0))
    a = stats.analyse(report)
    assert not [p for p in a.slots if p.flagged]
    page = parse(render_report(report))
    assert not page.find("tr", class_="flagged") and page.find("p", id="low-slots", class_="calm")


def test_the_simulated_line_flags_its_worn_slot(line_report: ReportInput) -> None:
    a = stats.analyse(line_report)
    assert [p.label for p in a.slots if p.flagged] == [BAD]
    drifting = [m.label for m in a.measurements if m.drifting]
    assert drifting == [f"{DRIFTING[0]} / {DRIFTING[1]}"]


def test_text_from_the_database_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    runs = [
        RunRow(
            "r1", "aa", None, evil, evil, 1, evil, "2026-11-21T07:00:00+00:00", "FAIL", 1, evil, 1.0
        ),
        RunRow(
            "r2", "bb", None, "st", "fx", 2, "op", "2026-11-21T07:01:00+00:00", "PASS", 1, None, 1.0
        ),
    ]
    html = render_report(
        ReportInput(None, None, runs, [MeasurementSeries(evil, evil, evil, 0, 1, [0.2, 0.4])]),
        source=evil,
    )
    assert "<script" not in html and "&lt;script&gt;" in html
    assert not parse(html).find("script")


def test_empty_and_degenerate_inputs_render() -> None:
    for report in (
        ReportInput(None, None, [], []),
        ReportInput(
            "2026-11-21T00:00:00.000+00:00",
            None,
            [
                RunRow(
                    "r",
                    None,
                    None,
                    "st",
                    "fx",
                    1,
                    "op",
                    "2026-11-21T07:00:00+00:00",
                    "EMPTY",
                    0,
                    None,
                    0.1,
                )
            ],
            [MeasurementSeries("s", "one", "V", 0.0, 1.0, [0.5])],
        ),
    ):
        page = parse(render_report(report))
        assert [a["id"] for t, a in page.tags if t == "section"] == list(SECTIONS)
        assert "n/a" in " ".join(page.text)


values = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(values, max_size=60),
    st.none() | values,
    st.none() | values,
    st.lists(st.sampled_from(["PASS", "FAIL", "ERROR", "ABORTED", "EMPTY"]), max_size=12),
)
def test_any_measurements_and_verdicts_render(
    vals: list[float], low: float | None, high: float | None, verdicts: list[str]
) -> None:
    runs = [
        RunRow(
            f"r{i}",
            f"u{i % 3}",
            None,
            "st",
            "fx",
            1 + i % 4,
            "op",
            f"2026-11-21T{7 + i % 3:02d}:00:00+00:00",
            v,
            1 + i // 3,
            "s" if v != "PASS" else None,
            1.0,
        )
        for i, v in enumerate(verdicts)
    ]
    page = render_report(
        ReportInput(None, None, runs, [MeasurementSeries("s", "m", "u", low, high, vals)])
    )
    tree = parse(page)
    assert [a["id"] for t, a in tree.tags if t == "section"] == list(SECTIONS)
    for _, attrs in tree.tags:  # every coordinate drawn is a finite number
        for key in ("x", "y", "x1", "x2", "y1", "y2", "width", "height", "cx", "cy", "points"):
            text = attrs.get(key, "").lower()
            assert "nan" not in text and "inf" not in text, (key, text)
