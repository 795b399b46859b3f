"""Inline SVG charts for the yield report, drawn from the numbers of ate.report.stats: no
plotting library, nothing fetched at view time. Imports only the standard library and
ate.report.stats. Text styling comes from the page's CSS (`svg text`, `.axis`, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from html import escape

from ate.report.stats import (
    Histogram,
    ParetoBar,
    PositionYield,
    RetestBar,
    SeriesStats,
    Trend,
    YieldBucket,
)

# The palette: solid fills use exactly these, so a screenshot can be checked for them.
BLUE = "#2f6fdb"
GREEN = "#1a9e5a"
RED = "#d64545"
AMBER = "#e0a030"
ORANGE = "#ef8a3c"
INK = "#1e293b"
GRID = "#e2e8f0"
MUTED = "#64748b"
VOLUME = "#cbd5e1"
BAND = "#c9d9f5"
MINUS = "\u2212"  # typographic minus sign
SIGMA = "\u03c3"
CHART_COLORS = {"blue": BLUE, "green": GREEN, "red": RED, "orange": ORANGE}


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _t(text: str) -> str:
    return escape(text, quote=True)


def _svg(width: float, height: float, body: Iterable[str], label: str, cls: str = "chart") -> str:
    return (
        f'<svg class="{cls}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_f(width)} '
        f'{_f(height)}" width="{_f(width)}" height="{_f(height)}" role="img" '
        f'aria-label="{_t(label)}">' + "".join(body) + "</svg>"
    )


def _text(
    x: float, y: float, text: str, anchor: str = "start", cls: str = "", extra: str = ""
) -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}"{c}{extra}>{_t(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str, extra: str = "") -> str:
    return (
        f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke="{stroke}"{extra}/>'
    )


def _rect(x: float, y: float, w: float, h: float, fill: str, extra: str = "") -> str:
    return (
        f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(max(w, 0.0))}" height="{_f(max(h, 0.0))}" '
        f'fill="{fill}"{extra}/>'
    )


def _tip(text: str) -> str:
    return f"<title>{_t(text)}</title>"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 x 10^k apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _ticks_to(most: float, count: int) -> list[float]:
    """Ticks from 0 whose last one is at or above `most` (a count axis: whole numbers)."""
    ticks = [t for t in nice_ticks(0, max(most, 1), count) if t == int(t)]
    if len(ticks) < 2:
        ticks = [0.0, float(math.ceil(max(most, 1)))]
    if ticks[-1] < most:
        step = ticks[1] - ticks[0] if len(ticks) > 1 else max(most, 1)
        ticks.append(ticks[-1] + step)
    return ticks


def fmt_num(v: float | None) -> str:
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else MINUS + "∞"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.3g}".replace("-", MINUS)
    return f"{v:.4g}".replace("-", MINUS)


def fmt_cpk(v: float | None) -> str:
    if v is None or math.isinf(v):
        return fmt_num(v)
    return f"{v:.2f}".replace("-", MINUS)


def fmt_pct(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v * 100:.{digits}f} %"


def _pct_floor(values: Iterable[float | None]) -> float:
    """A y-axis floor (0..0.9 in steps of 0.1) a little below the lowest yield."""
    known = [v for v in values if v is not None]
    if not known:
        return 0.0
    return max(0.0, math.floor((min(known) - 0.02) * 10) / 10)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- yield over time


def yield_trend_svg(buckets: Sequence[YieldBucket], granularity: str, width: int = 1160) -> str:
    """First-pass yield as an area, final yield as a line, units per bucket as a strip."""
    height, left, right, top = 312, 52, 20, 28
    plot_h, strip_h, gap = 200, 44, 14
    plot_w = width - left - right
    body: list[str] = []
    if not buckets:
        body.append(_text(width / 2, height / 2, "no tests in range", "middle", "muted"))
        return _svg(width, height, body, "yield over time")
    floor = _pct_floor([b.first_pass_yield for b in buckets] + [b.final_yield for b in buckets])

    def y(v: float) -> float:
        return top + plot_h * (1.0 - (v - floor) / (1.0 - floor))

    band = plot_w / len(buckets)

    def x(i: int) -> float:
        return left + band * (i + 0.5)

    for tick in nice_ticks(floor, 1.0, 5):
        body.append(_line(left, y(tick), left + plot_w, y(tick), GRID))
        body.append(_text(left - 6, y(tick) + 4, f"{tick * 100:.0f} %", "end", "axis"))
    # contiguous runs of buckets with units: areas and lines break over empty hours/days
    segments: list[list[int]] = []
    for i, b in enumerate(buckets):
        if b.units:
            if segments and segments[-1][-1] == i - 1:
                segments[-1].append(i)
            else:
                segments.append([i])
    for seg in segments:
        fpy = [(x(i), y(buckets[i].first_pass_yield or 0.0)) for i in seg]
        fin = [(x(i), y(buckets[i].final_yield or 0.0)) for i in seg]
        if len(seg) == 1:  # a lone bucket: a short flat segment so it can be seen
            half = min(band * 0.35, 8)
            fpy = [(fpy[0][0] - half, fpy[0][1]), (fpy[0][0] + half, fpy[0][1])]
            fin = [(fin[0][0] - half, fin[0][1]), (fin[0][0] + half, fin[0][1])]
        base = y(floor)
        area = [(fpy[0][0], base), *fpy, (fpy[-1][0], base)]
        body.append(
            f'<polygon points="{_pts(area)}" fill="{BLUE}" fill-opacity="0.14" stroke="none"/>'
        )
        body.append(_poly(fpy, BLUE, 2.2))
        body.append(_poly(fin, GREEN, 2.2))
    if len(buckets) <= 72:
        for i, b in enumerate(buckets):
            if b.units:
                body.append(_dot(x(i), y(b.first_pass_yield or 0.0), BLUE))
                body.append(_dot(x(i), y(b.final_yield or 0.0), GREEN))
    # volume strip
    strip_top = top + plot_h + gap
    most = max(b.units for b in buckets) or 1
    bar_w = max(1.0, band * 0.7)
    for i, b in enumerate(buckets):
        h = strip_h * b.units / most
        body.append(_rect(x(i) - bar_w / 2, strip_top + strip_h - h, bar_w, h, VOLUME))
    body.append(_text(left - 6, strip_top + 10, f"{most:,}", "end", "axis"))
    body.append(_text(left - 6, strip_top + strip_h, "units", "end", "axis"))
    body.append(_line(left, strip_top + strip_h, left + plot_w, strip_top + strip_h, GRID))
    # x labels, thinned to about a dozen
    every = max(1, math.ceil(len(buckets) / 12))
    for i in range(0, len(buckets), every):
        body.append(
            _text(
                x(i),
                strip_top + strip_h + 16,
                _bucket_label(buckets[i], granularity),
                "middle",
                "axis",
            )
        )
    # hover targets with the numbers
    for i, b in enumerate(buckets):
        tip = f"{_bucket_label(b, granularity, full=True)}: {b.units:,} units"
        if b.units:
            tip += f", first-pass {fmt_pct(b.first_pass_yield)}, final {fmt_pct(b.final_yield)}"
        body.append(
            _rect(
                left + band * i, top, band, strip_top + strip_h - top, "transparent", ' class="hit"'
            ).replace("/>", f">{_tip(tip)}</rect>")
        )
    body.append(_legend(left + plot_w, 14, [("First-pass yield", BLUE), ("Final yield", GREEN)]))
    return _svg(width, height, body, "first-pass and final yield over time")


def _bucket_label(b: YieldBucket, granularity: str, full: bool = False) -> str:
    if granularity == "hour":
        return b.start.strftime("%Y-%m-%d %H:00" if full else "%b %d %H:00")
    return b.start.strftime("%Y-%m-%d" if full else "%b %d")


def _pts(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{_f(px)},{_f(py)}" for px, py in points)


def _poly(points: Sequence[tuple[float, float]], color: str, width: float) -> str:
    return (
        f'<polyline points="{_pts(points)}" fill="none" stroke="{color}" '
        f'stroke-width="{width}" stroke-linejoin="round" stroke-linecap="round"/>'
    )


def _dot(cx: float, cy: float, color: str, r: float = 3.0) -> str:
    return (
        f'<circle cx="{_f(cx)}" cy="{_f(cy)}" r="{_f(r)}" fill="#fff" stroke="{color}" '
        f'stroke-width="1.8"/>'
    )


def _legend(x_right: float, y: float, items: Sequence[tuple[str, str]]) -> str:
    parts: list[str] = []
    x = x_right
    for label, color in reversed(items):
        w = 7.0 * len(label) + 26
        x -= w
        parts.append(_rect(x, y - 9, 14, 10, color, ' rx="2"'))
        parts.append(_text(x + 19, y, label, "start", "legend"))
    return "".join(parts)


# ---------------------------------------------------------------- Pareto


def pareto_svg(bars: Sequence[ParetoBar], width: int = 1160) -> str:
    height, left, right, top, plot_h = 318, 52, 52, 24, 220
    plot_w = width - left - right
    body: list[str] = []
    if not bars:
        body.append(_text(width / 2, 120, "no failing tests in range", "middle", "muted"))
        return _svg(width, 240, body, "Pareto of failing steps")
    most = max(b.count for b in bars)
    ticks = _ticks_to(most, 5)
    top_count = ticks[-1]

    def yc(v: float) -> float:
        return top + plot_h * (1 - v / top_count)

    def yp(p: float) -> float:
        return top + plot_h * (1 - p / 100)

    for tick in ticks:
        body.append(_line(left, yc(tick), left + plot_w, yc(tick), GRID))
        body.append(_text(left - 6, yc(tick) + 4, f"{tick:,.0f}", "end", "axis"))
    for p in (0, 25, 50, 75, 100):
        body.append(_text(left + plot_w + 6, yp(p) + 4, f"{p} %", "start", "axis"))
    body.append(
        _line(left, yp(80), left + plot_w, yp(80), MUTED, ' stroke-dasharray="3 4" opacity="0.6"')
    )
    band = plot_w / len(bars)
    bw = min(band * 0.66, 90)
    centres = [left + band * (i + 0.5) for i in range(len(bars))]
    for cx, bar in zip(centres, bars, strict=True):
        body.append(
            _rect(cx - bw / 2, yc(bar.count), bw, yc(0) - yc(bar.count), ORANGE, ' rx="2"').replace(
                "/>", f">{_tip(f'{bar.label}: {bar.count:,} failing tests')}</rect>"
            )
        )
        body.append(_text(cx, yc(bar.count) - 5, f"{bar.count:,}", "middle", "value"))
        label_y = top + plot_h + 14
        body.append(
            f'<text x="{_f(cx)}" y="{_f(label_y)}" text-anchor="end" class="axis" '
            f'transform="rotate(-28 {_f(cx)} {_f(label_y)})">{_t(_short(bar.label, 26))}'
            f"{_tip(bar.label)}</text>"
        )
    cum = [(cx, yp(b.cumulative_pct)) for cx, b in zip(centres, bars, strict=True)]
    body.append(_poly(cum, INK, 2.0))
    for (cx, cy), b in zip(cum, bars, strict=True):
        body.append(
            _dot(cx, cy, INK, 3.2).replace("/>", f">{_tip(f'{b.cumulative_pct:.1f} %')}</circle>")
        )
    body.append(_line(left, yc(0), left + plot_w, yc(0), MUTED))
    body.append(_legend(left + plot_w, 12, [("Failing tests", ORANGE), ("Cumulative %", INK)]))
    return _svg(width, height, body, "Pareto of failing steps")


# ---------------------------------------------------------------- measurements


def _axis_range(
    data_lo: float, data_hi: float, low: float | None, high: float | None
) -> tuple[float, float]:
    """The data's range, widened to show a limit that lies within one data span of it."""
    span = data_hi - data_lo or abs(data_hi) * 0.1 or 1.0
    lo, hi = data_lo, data_hi
    if low is not None and data_lo - span <= low < lo:
        lo = low
    if high is not None and hi < high <= data_hi + span:
        hi = high
    if hi == lo:  # one value, or all equal, and no limit near: centre it
        return lo - span / 2, hi + span / 2
    pad = (hi - lo) * 0.04
    return lo - pad, hi + pad


def histogram_svg(stats: SeriesStats, width: int = 372) -> str:
    height, left, right, top, plot_h = 196, 12, 12, 22, 138
    plot_w = width - left - right
    h: Histogram = stats.histogram
    s = stats.series
    body: list[str] = []
    if not h.counts:
        body.append(_text(width / 2, height / 2, "no numeric values", "middle", "muted"))
        return _svg(width, height, body, f"histogram of {stats.label}", "chart hist")
    lo, hi = _axis_range(h.edges[0], h.edges[-1], s.low, s.high)

    def x(v: float) -> float:
        return left + plot_w * (v - lo) / (hi - lo)

    most = max(h.counts)
    base = top + plot_h
    for tick in nice_ticks(lo, hi, 5):
        body.append(_line(x(tick), top, x(tick), base, GRID))
        body.append(_text(x(tick), base + 14, fmt_num(tick), "middle", "axis"))
    for i, count in enumerate(h.counts):
        if not count:
            continue
        x0, x1 = x(h.edges[i]), x(h.edges[i + 1])
        mid = (h.edges[i] + h.edges[i + 1]) / 2
        out = (s.low is not None and mid < s.low) or (s.high is not None and mid > s.high)
        bh = plot_h * count / most
        body.append(
            _rect(x0 + 0.5, base - bh, max(x1 - x0 - 1, 0.8), bh, RED if out else BLUE).replace(
                "/>",
                f">{_tip(f'{fmt_num(h.edges[i])} to {fmt_num(h.edges[i + 1])}: {count:,}')}</rect>",
            )
        )
    body.append(_line(left, base, left + plot_w, base, MUTED))
    mean = stats.capability.mean
    if mean is not None:
        body.append(_line(x(mean), top - 4, x(mean), base, INK, ' stroke-width="1.5"'))
    # The limit labels sit in the margin above the plot, LSL at the left, USL at the right:
    # never on a bar, never on each other (the page's test measures their boxes).
    for name, limit, anchor, arrow in (("LSL", s.low, "start", "←"), ("USL", s.high, "end", "→")):
        if limit is None:
            continue
        label = f"{name} {fmt_num(limit)}"
        if lo <= limit <= hi:
            lx = x(limit)
            body.append(_line(lx, top, lx, base, RED, ' stroke-width="1.6" stroke-dasharray="5 3"'))
        else:  # off the axis: say where it is
            label = f"{arrow} {label}" if anchor == "start" else f"{label} {arrow}"
        edge = left if anchor == "start" else left + plot_w
        body.append(_text(edge, top - 8, label, anchor, "limit"))
    return _svg(width, height, body, f"histogram of {stats.label}", "chart hist")


def count_svg(stats: SeriesStats, width: int = 372) -> str:
    """A pass/fail measurement as what it is: pass n / fail m on one bar."""
    height, left, right, top, bar_h = 44, 12, 12, 20, 14
    plot_w = width - left - right
    passed, failed = stats.passes, stats.fails
    total = passed + failed or 1
    pw = plot_w * passed / total
    body = [
        _text(left, 13, f"pass {passed:,}", "start", "count-pass"),
        _text(left + plot_w, 13, f"fail {failed:,}", "end", "count-fail"),
        _rect(left, top, pw, bar_h, GREEN, ' class="count-bar pass"'),
        _rect(left + pw, top, plot_w - pw, bar_h, RED, ' class="count-bar fail"'),
    ]
    return _svg(width, height, body, f"pass/fail count of {stats.label}", "chart count")


def control_chart_svg(stats: SeriesStats, width: int = 760) -> str:
    """An I-MR chart: the values in order with centre line, +/-3 sigma control limits and the
    spec limits as they were at the time (a step line per sequence version), Western Electric
    violations circled; the moving ranges under it. Labels live in a right-hand margin,
    staggered, so they meet neither the data nor each other."""
    cc = stats.control
    label = f"control chart of {stats.label}"
    if cc is None:
        return _svg(width, 40, [_text(12, 24, "fewer than two values", "start", "muted")], label)
    left, right, top, plot_h, gap, mr_h = 46, 150, 12, 170, 34, 70
    plot_w = width - left - right
    height = top + plot_h + gap + mr_h + 20
    n = len(cc.values)
    spec = [v for seg in cc.segments for v in (seg.low, seg.high) if v is not None]
    data_lo = min(min(cc.values), cc.lcl)
    data_hi = max(max(cc.values), cc.ucl)
    lo, hi = _axis_range(data_lo, data_hi, min(spec, default=None), max(spec, default=None))

    def x(i: float) -> float:
        return left + plot_w * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    body: list[str] = []
    for tick in nice_ticks(lo, hi, 5):
        body.append(_line(left, y(tick), left + plot_w, y(tick), GRID))
        body.append(_text(left - 4, y(tick) + 3, fmt_num(tick), "end", "axis"))
    body.append(_rect(left, top, plot_w, plot_h, "none", f' stroke="{MUTED}" class="plot-area"'))
    # spec limits as they were: one horizontal piece per segment, joined by vertical steps
    for side in ("low", "high"):
        for k, seg in enumerate(cc.segments):
            v = seg.low if side == "low" else seg.high
            if v is None or not lo <= v <= hi:
                continue
            x0, x1 = x(seg.start - 0.5 if k else 0), x(min(seg.end - 0.5, n - 1))
            body.append(
                _line(
                    x0,
                    y(v),
                    x1,
                    y(v),
                    RED,
                    f' stroke-width="1.6" stroke-dasharray="5 3" class="spec-limit {side}"'
                    f' data-version="{_t(seg.version)}" data-start="{seg.start}"'
                    f' data-value="{_t(fmt_num(v))}"',
                )
            )
            if k:
                prev = cc.segments[k - 1].low if side == "low" else cc.segments[k - 1].high
                if prev is not None and prev != v and lo <= prev <= hi:
                    body.append(_line(x0, y(prev), x0, y(v), RED, f' class="spec-step {side}"'))
    for v, dash in ((cc.ucl, "2 2"), (cc.lcl, "2 2"), (cc.centre, "")):
        if lo <= v <= hi:
            extra = f' stroke-dasharray="{dash}"' if dash else ' stroke-width="1.4"'
            body.append(_line(left, y(v), left + plot_w, y(v), INK, extra + ' class="control"'))
    body.append(_poly(_thin(cc.values, x, y, plot_w), BLUE, 1.0))
    if n <= 400:
        body.extend(_dot(x(i), y(v), BLUE, 1.8) for i, v in enumerate(cc.values))
    rules: dict[int, list[int]] = {}
    for vi in cc.violations:
        rules.setdefault(vi.index, []).append(vi.rule)
    for i, rs in sorted(rules.items())[:MAX_MARKS]:  # the table below counts them all
        tip = _tip(f"value {i + 1}: {fmt_num(cc.values[i])}, rule {', '.join(map(str, rs))}")
        body.append(
            f'<circle class="we-violation" data-rule="{" ".join(map(str, sorted(set(rs))))}" '
            f'data-index="{i}" cx="{_f(x(i))}" cy="{_f(y(cc.values[i]))}" r="4.5" fill="none" '
            f'stroke="{RED}" stroke-width="1.8">{tip}</circle>'
        )
    # labels in the right margin, pushed apart to at least one line height
    latest = cc.segments[-1] if cc.segments else None
    marks = [
        (cc.ucl, f"UCL {fmt_num(cc.ucl)}", "control"),
        (cc.centre, f"CL {fmt_num(cc.centre)}", "control"),
        (cc.lcl, f"LCL {fmt_num(cc.lcl)}", "control"),
    ]
    if latest is not None:
        v_tag = f" (v{latest.version})" if latest.version else ""
        for name, v in (("USL", latest.high), ("LSL", latest.low)):
            if v is not None:
                marks.append((v, f"{name} {fmt_num(v)}{v_tag}", "limit"))
    body.extend(_margin_labels(marks, left + plot_w + 8, y, top, top + plot_h))
    # the moving-range chart
    mtop = top + plot_h + gap
    mr_hi = max(max(cc.moving_ranges), cc.mr_ucl) * 1.05 or 1.0

    def my(v: float) -> float:
        return mtop + mr_h * (1 - v / mr_hi)

    body.append(_text(left, mtop - 6, "moving range", "start", "axis"))
    body.append(_rect(left, mtop, plot_w, mr_h, "none", f' stroke="{MUTED}" class="plot-area mr"'))
    body.append(_poly(_thin(cc.moving_ranges, lambda i: x(i + 1), my, plot_w), BLUE, 1.0))
    for v, dash in ((cc.mr_ucl, "2 2"), (cc.mr_bar, "")):
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(_line(left, my(v), left + plot_w, my(v), INK, extra))
    body.extend(
        _margin_labels(
            [
                (cc.mr_ucl, f"UCL {fmt_num(cc.mr_ucl)}", "control"),
                (cc.mr_bar, f"MR {fmt_num(cc.mr_bar)}", "control"),
            ],
            left + plot_w + 8,
            my,
            mtop,
            mtop + mr_h,
        )
    )
    return _svg(width, height, body, label, "chart control")


MAX_MARKS = 500  # violation circles drawn a chart; more would only paint it red


def _thin(
    values: Sequence[float], x: Callable[[float], float], y: Callable[[float], float], px: float
) -> list[tuple[float, float]]:
    """The polyline's points; beyond two a pixel column, each column's min and max in
    order of occurrence (what the full line would paint, at a fraction of the size)."""
    n = len(values)
    if n <= 2 * px:
        return [(x(i), y(v)) for i, v in enumerate(values)]
    chunk = math.ceil(n / px)
    out: list[tuple[float, float]] = []
    for start in range(0, n, chunk):
        part = range(start, min(start + chunk, n))
        lo_i = min(part, key=values.__getitem__)
        hi_i = max(part, key=values.__getitem__)
        for i in sorted({lo_i, hi_i}):
            out.append((x(i), y(values[i])))
    return out


def _margin_labels(
    marks: list[tuple[float, str, str]],
    lx: float,
    y: Callable[[float], float],
    y_min: float,
    y_max: float,
    step: float = 13.0,
) -> list[str]:
    """Labels beside their lines in the margin, top to bottom, each at least `step` below the
    one above it (clamped into [y_min, y_max + step * len])."""
    placed: list[str] = []
    last = -math.inf
    for v, text, cls in sorted(marks, key=lambda m: y(m[0])):
        ty = max(min(max(y(v), y_min), y_max) + 4, last + step)
        last = ty
        placed.append(_text(lx, ty, text, "start", f"margin-label {cls}"))
    return placed


def trend_svg(stats: SeriesStats, width: int = 372) -> str:
    """The values in time order (chunk means with their min-max band) against the limits:
    drift is what a histogram hides."""
    height, left, right, top, plot_h = 62, 12, 12, 6, 48
    plot_w = width - left - right
    tr: Trend = stats.trend
    s = stats.series
    body: list[str] = []
    if not tr.means:
        return _svg(width, height, body, f"run chart of {stats.label}", "chart run")
    lo, hi = _axis_range(min(tr.lows), max(tr.highs), s.low, s.high)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    n = len(tr.means)

    def x(i: int) -> float:
        return left + plot_w * (i / (n - 1) if n > 1 else 0.5)

    upper = [(x(i), y(v)) for i, v in enumerate(tr.highs)]
    lower = [(x(i), y(v)) for i, v in enumerate(tr.lows)]
    body.append(f'<polygon points="{_pts(upper + lower[::-1])}" fill="{BAND}" stroke="none"/>')
    for limit in (s.low, s.high):
        if limit is not None and lo <= limit <= hi:
            body.append(
                _line(left, y(limit), left + plot_w, y(limit), RED, ' stroke-dasharray="5 3"')
            )
    body.append(_poly([(x(i), y(v)) for i, v in enumerate(tr.means)], BLUE, 1.6))
    return _svg(width, height, body, f"run chart of {stats.label}", "chart run")


# ---------------------------------------------------------------- retests


def retest_svg(bars: Sequence[RetestBar], width: int = 560) -> str:
    height, left, right, top, plot_h = 260, 52, 16, 30, 180
    plot_w = width - left - right
    body: list[str] = []
    if not bars:
        body.append(_text(width / 2, height / 2, "no units in range", "middle", "muted"))
        return _svg(width, height, body, "units by number of tests")
    most = max(b.units for b in bars)
    ticks = _ticks_to(most, 4)
    top_v = ticks[-1]

    def y(v: float) -> float:
        return top + plot_h * (1 - v / top_v)

    for tick in ticks:
        body.append(_line(left, y(tick), left + plot_w, y(tick), GRID))
        body.append(_text(left - 6, y(tick) + 4, f"{tick:,.0f}", "end", "axis"))
    band = plot_w / len(bars)
    bw = min(band * 0.6, 70)
    for i, b in enumerate(bars):
        cx = left + band * (i + 0.5)
        failed = b.units - b.passed
        tip = f"{b.units:,} units tested {b.tests}x: {b.passed:,} passed in the end"
        body.append(
            _rect(cx - bw / 2, y(b.passed), bw, y(0) - y(b.passed), GREEN).replace(
                "/>", f">{_tip(tip)}</rect>"
            )
        )
        if failed:
            body.append(
                _rect(cx - bw / 2, y(b.units), bw, y(b.passed) - y(b.units), RED).replace(
                    "/>", f">{_tip(tip)}</rect>"
                )
            )
        body.append(_text(cx, y(b.units) - 5, f"{b.units:,}", "middle", "value"))
        label = f"{b.tests} test" + ("" if b.tests == 1 else "s")
        body.append(_text(cx, top + plot_h + 16, label, "middle", "axis"))
    body.append(_line(left, y(0), left + plot_w, y(0), MUTED))
    body.append(_legend(left + plot_w, 14, [("Passed in the end", GREEN), ("Still failing", RED)]))
    return _svg(width, height, body, "units by number of tests")


# ---------------------------------------------------------------- positions


def _position_tip(p: PositionYield) -> str:
    return (
        f"{p.label}: {p.passed:,} of {p.tests:,} units passed their first test "
        f"({fmt_pct(p.test_yield)})"
    )


def position_bars_svg(
    positions: Sequence[PositionYield], reference: float | None, width: int = 560
) -> str:
    """Horizontal bars of first-pass yield, one a position, against the line's."""
    row, left, right, top = 26, 92, 64, 22
    height = top + row * len(positions) + 26
    plot_w = width - left - right
    body: list[str] = []
    floor = _pct_floor([p.test_yield for p in positions] + [reference])

    def x(v: float) -> float:
        return left + plot_w * (v - floor) / (1 - floor)

    for tick in nice_ticks(floor, 1.0, 4):
        body.append(_line(x(tick), top - 4, x(tick), height - 22, GRID))
        body.append(_text(x(tick), height - 8, f"{tick * 100:.0f} %", "middle", "axis"))
    for i, p in enumerate(positions):
        y0 = top + row * i
        color = RED if p.flagged else BLUE
        tip = _position_tip(p)
        body.append(_text(left - 8, y0 + row / 2 + 4, _short(p.label, 13), "end", "axis"))
        body.append(
            _rect(left, y0 + 4, x(p.test_yield) - left, row - 8, color, ' rx="2"').replace(
                "/>", f">{_tip(tip)}</rect>"
            )
        )
        body.append(
            _text(
                x(p.test_yield) + 6,
                y0 + row / 2 + 4,
                fmt_pct(p.test_yield),
                "start",
                "value flag" if p.flagged else "value",
            )
        )
    if reference is not None:
        rx = x(reference)
        body.append(
            _line(rx, top - 10, rx, height - 22, INK, ' stroke-width="1.4" stroke-dasharray="4 3"')
        )
        body.append(_text(rx, top - 12, f"line {fmt_pct(reference)}", "middle", "legend"))
    return _svg(width, height, body, "test yield per position")


def slot_multiples_svg(
    slots: Sequence[PositionYield], reference: float | None, width: int = 1160
) -> str:
    """One small chart a fixture, one bar a slot, all on one scale with the line's
    first-pass yield drawn across: a bad pogo pin is the one short red bar."""
    fixtures: dict[str, list[PositionYield]] = {}
    for p in slots:
        fixtures.setdefault(p.key[0], []).append(p)
    if not fixtures:
        return _svg(
            width,
            60,
            [_text(width / 2, 30, "no tests in range", "middle", "muted")],
            "test yield per slot",
        )
    cols = min(len(fixtures), 6)
    rows = math.ceil(len(fixtures) / cols)
    cell_w, cell_h = width / cols, 196
    left, top, plot_h = 40, 34, 118
    floor = _pct_floor([p.test_yield for p in slots] + [reference])
    ticks = nice_ticks(floor, 1.0, 4)
    body: list[str] = []
    for k, (fixture, members) in enumerate(fixtures.items()):
        ox, oy = cell_w * (k % cols), cell_h * (k // cols)
        plot_w = cell_w - left - 14

        def y(v: float, oy: float = oy) -> float:
            return oy + top + plot_h * (1 - (v - floor) / (1 - floor))

        body.append(_text(ox + left, oy + 16, _short(fixture, 26), "start", "panel-title"))
        for tick in ticks:
            body.append(_line(ox + left, y(tick), ox + left + plot_w, y(tick), GRID))
            body.append(_text(ox + left - 5, y(tick) + 4, f"{tick * 100:.0f}", "end", "axis"))
        band = plot_w / len(members)
        bw = min(band * 0.62, 34)
        for i, p in enumerate(members):
            cx = ox + left + band * (i + 0.5)
            color = RED if p.flagged else BLUE
            tip = _position_tip(p)
            body.append(
                _rect(
                    cx - bw / 2, y(p.test_yield), bw, y(floor) - y(p.test_yield), color, ' rx="2"'
                ).replace("/>", f">{_tip(tip)}</rect>")
            )
            body.append(
                _text(
                    cx,
                    y(p.test_yield) - 4,
                    f"{p.test_yield * 100:.1f}",
                    "middle",
                    "value flag" if p.flagged else "value small",
                )
            )
            body.append(_text(cx, oy + top + plot_h + 15, p.key[1], "middle", "axis"))
        body.append(_line(ox + left, y(floor), ox + left + plot_w, y(floor), MUTED))
        body.append(_text(ox + left + plot_w / 2, oy + top + plot_h + 30, "slot", "middle", "axis"))
        if reference is not None:
            body.append(
                _line(
                    ox + left,
                    y(reference),
                    ox + left + plot_w,
                    y(reference),
                    INK,
                    ' stroke-width="1.3" stroke-dasharray="4 3"',
                )
            )
    return _svg(width, rows * cell_h + 4, body, "test yield per slot, one chart a fixture")
