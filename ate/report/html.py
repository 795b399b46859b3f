"""Renders a ReportInput as one self-contained HTML page (inline CSS and SVG, no script, no
external resource). Imports only the standard library, ate.store.api's dataclasses and
ate.report.stats / ate.report.plots.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape

import ate
from ate.report import plots
from ate.report.plots import MINUS, SIGMA, fmt_cpk, fmt_num, fmt_pct
from ate.report.stats import (
    CPK_AMBER,
    CPK_MIN_UNITS,
    CPK_RED,
    DRIFT_SIGMA,
    FLAG_ALPHA,
    FLAG_MIN_GAP,
    WE_RULES,
    Analysis,
    PositionYield,
    SeriesStats,
    Summary,
    analyse,
    cpk_band,
    parse_time,
)
from ate.store.api import ReportInput

SECTIONS = (
    "summary",
    "yield-trend",
    "pareto",
    "capability",
    "histograms",
    "retests",
    "positions",
    "control",
)


def render_report(
    report: ReportInput,
    *,
    source: str = "",
    title: str = "Yield report",
    generated_at: datetime | None = None,
) -> str:
    """The whole page. `source` names the database (a URL with any password masked)."""
    return render_analysis(analyse(report), source=source, title=title, generated_at=generated_at)


def render_analysis(
    a: Analysis,
    *,
    source: str = "",
    title: str = "Yield report",
    generated_at: datetime | None = None,
) -> str:
    when = (generated_at or datetime.now(UTC)).astimezone(UTC)
    span = f"{_when(a.since or a.summary.first_at)} to {_when(a.until or a.summary.last_at)}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}: {_e(span)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        '<header class="top"><div><h1>',
        _e(title),
        f'</h1><p class="sub">{_e(span)}</p></div><p class="meta">',
        f"{_e(source)}<br>" if source else "",
        f"generated {when:%Y-%m-%d %H:%M} UTC by ate {_e(ate.__version__)}</p></header>",
        _summary(a),
        _trend(a),
        _pareto(a),
        _capability(a),
        _histograms(a),
        _retests(a),
        _positions(a),
        _control(a),
        _footer(),
        "</main></body></html>\n",
    ]
    return "".join(parts)


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _when(text: str | None) -> str:
    if text is None:
        return "the start"
    try:
        t = parse_time(text)
    except ValueError:
        return text
    return f"{t:%Y-%m-%d %H:%M} UTC"


def _section(sid: str, heading: str, lede: str, *body: str) -> str:
    return (
        f'<section id="{sid}" class="card"><h2>{_e(heading)}</h2>'
        + (f'<p class="lede">{lede}</p>' if lede else "")
        + "".join(body)
        + "</section>"
    )


# ---------------------------------------------------------------- summary


def _kpi(label: str, value: str, note: str = "", cls: str = "") -> str:
    return (
        f'<div class="kpi {cls}" data-kpi="{_e(label)}"><div class="l">{_e(label)}</div>'
        f'<div class="v">{_e(value)}</div><div class="n">{_e(note)}</div></div>'
    )


def _yield_cls(v: float | None) -> str:
    if v is None:
        return ""
    return "good" if v >= 0.95 else "warn" if v >= 0.9 else "bad"


def _summary(a: Analysis) -> str:
    s: Summary = a.summary
    not_tests = []
    if s.empty:
        not_tests.append(f"{s.empty:,} empty")
    if s.aborted:
        not_tests.append(f"{s.aborted:,} aborted")
    tiles = [
        _kpi("Units tested", f"{s.units:,}"),
        _kpi(
            "Tests", f"{s.tests:,}", ", ".join(not_tests) + (" (not counted)" if not_tests else "")
        ),
        _kpi(
            "First-pass yield",
            fmt_pct(s.first_pass_yield),
            f"{s.first_pass:,} units",
            _yield_cls(s.first_pass_yield),
        ),
        _kpi(
            "Final yield",
            fmt_pct(s.final_yield),
            f"{s.final_pass:,} units",
            _yield_cls(s.final_yield),
        ),
        _kpi("Retests", f"{s.retests:,}", f"{s.retests / s.units:.2f} per unit" if s.units else ""),
        _kpi("Test yield", fmt_pct(s.test_yield), "passing tests / tests"),
    ]
    items = list(_attention(a))
    if items:
        notes = '<ul class="attention">' + "".join(items) + "</ul>"
    else:
        notes = (
            '<p class="calm">Nothing stands out: no station, fixture or slot below the line, '
            f"no Cpk under {CPK_RED:g}, no drifting measurement.</p>"
        )
    return _section("summary", "Summary", "", f'<div class="kpis">{"".join(tiles)}</div>', notes)


def _attention(a: Analysis) -> Iterable[str]:
    s = a.summary
    for p in a.flagged:
        kind = "slot" if len(p.key) == 2 else "station" if p in a.stations else "fixture"
        name = f"Fixture {p.key[0]} slot {p.key[1]}" if kind == "slot" else f"{kind} {p.label}"
        rest = (s.first_pass - p.passed) / (s.units - p.tests) if s.units > p.tests else None
        yield (
            f'<li class="flag" data-kind="{kind}" data-position="{_e(p.label)}">'
            f"<b>{_e(name.capitalize() if kind != 'slot' else name)}</b>: first-pass yield "
            f"{fmt_pct(p.test_yield)} against {fmt_pct(rest)} for the rest of the line "
            f"({p.tests:,} units); "
            f"{'check its pogo pins and cabling' if kind == 'slot' else 'look at its slots'}."
            "</li>"
        )
    for m in a.measurements:
        c = m.capability.cpk
        if c is not None and c < CPK_RED:
            yield (
                f'<li class="cpk-low"><b>Cpk {fmt_cpk(c)}</b> for {_e(m.label)}: '
                "too close to its limits.</li>"
            )
    for m in a.measurements:
        if m.kind == "quantity" and m.drifting and m.drift is not None:
            yield (
                f'<li class="drift"><b>Drift</b> in {_e(m.label)}: its mean moved '
                f"{_signed(m.drift)} {SIGMA} from the first to the last tenth of the values.</li>"
            )


def _signed(v: float) -> str:
    text = f"{v:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text.replace("-", MINUS)


# ---------------------------------------------------------------- charts


def _trend(a: Analysis) -> str:
    per = "hour" if a.granularity == "hour" else "day"
    return _section(
        "yield-trend",
        f"First-pass and final yield per {per}",
        f"Units grouped by the {per} of their first test in range; the grey strip is units "
        "tested. Hover a point for the numbers.",
        plots.yield_trend_svg(a.buckets, a.granularity),
    )


def _pareto(a: Analysis) -> str:
    total = sum(b.count for b in a.pareto)
    lede = (
        f"{total:,} failing tests (FAIL or ERROR) by the step that failed, most first, with the "
        "cumulative share; the dotted line marks 80 %."
    )
    return _section("pareto", "Failing steps (Pareto)", lede, plots.pareto_svg(a.pareto))


def _cpk_cell(c: float | None) -> str:
    return f'<span class="cpk {cpk_band(c)}">{_e(fmt_cpk(c))}</span>'


def _quantities(a: Analysis) -> list[tuple[int, SeriesStats]]:
    return [(i, m) for i, m in enumerate(a.measurements) if m.kind == "quantity"]


def _capability(a: Analysis) -> str:
    quantities = _quantities(a)
    if not quantities:
        return _section("capability", "Measurement capability (Cpk)", "No numeric measurements.")
    rows = []
    for i, m in quantities:
        s, c = m.series, m.capability
        drift = "n/a"
        if m.drift is not None:
            flag = "driftflag" if m.drifting else ""
            drift = f'<span class="{flag}">{_signed(m.drift)} {SIGMA}</span>'
        band = "few" if m.too_few else cpk_band(c.cpk)
        cell = '<span class="cpk na">too few units</span>' if m.too_few else _cpk_cell(c.cpk)
        rows.append(
            f'<tr class="{band}" data-cpk="{_e(fmt_cpk(c.cpk))}">'
            f'<td class="t"><a href="#m{i}">{_e(s.step)}</a></td><td class="t">{_e(s.name)}</td>'
            f'<td class="t">{_e(s.unit)}</td><td>{c.n:,}</td><td>{fmt_num(s.low)}</td>'
            f"<td>{fmt_num(s.high)}</td><td>{fmt_num(c.mean)}</td><td>{fmt_num(c.sigma)}</td>"
            f"<td>{cell}</td><td>{drift}</td></tr>"
        )
    table = (
        '<table class="cpk-table"><thead><tr><th class="t">Step</th><th class="t">Measurement'
        '</th><th class="t">Unit</th><th>n</th><th>LSL</th><th>USL</th><th>Mean</th>'
        '<th class="sym">&sigma;</th><th>Cpk</th><th>Drift</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )
    lede = (
        f"Worst first. Cpk only from {CPK_MIN_UNITS} units up (fewer: too few units, no "
        f"verdict, not ranked); under {CPK_RED:g} is red, under {CPK_AMBER:g} amber; n/a "
        "without limits. Drift: mean of the last tenth of the values minus "
        f"the first tenth, in {SIGMA} (flagged from {DRIFT_SIGMA:g} {SIGMA}). Under it, the "
        "Western Electric rule violations of the control charts."
    )
    return _section(
        "capability",
        "Measurement capability (Cpk), worst first",
        lede,
        table,
        '<h3 class="we-head">Control-chart rule violations (Western Electric)</h3>',
        _violations_table(a),
    )


def _violations_table(a: Analysis) -> str:
    """One row per measurement and rule: how many points, and the first few of them."""
    rows = []
    for i, m in _quantities(a):
        if m.control is None:
            continue
        by_rule: dict[int, list[int]] = {}
        for v in m.control.violations:
            by_rule.setdefault(v.rule, []).append(v.index)
        for rule in sorted(by_rule):
            where = by_rule[rule]
            first = ", ".join(f"{k + 1:,}" for k in where[:5]) + (" …" if len(where) > 5 else "")
            rows.append(
                f'<tr class="we-row" data-rule="{rule}" data-count="{len(where)}">'
                f'<td class="t"><a href="#cc{i}">{_e(m.label)}</a></td><td>{rule}</td>'
                f'<td class="t">{_e(WE_RULES[rule])}</td><td>{len(where):,}</td>'
                f'<td class="t">{first}</td></tr>'
            )
    if not rows:
        return '<p class="we-none">No Western Electric rule violated.</p>'
    return (
        '<table class="we-table"><thead><tr><th class="t">Measurement</th><th>Rule</th>'
        '<th class="t">Pattern</th><th>Points</th><th class="t">First (value #)</th></tr>'
        "</thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _histogram_card(i: int, m: SeriesStats) -> str:
    s, c = m.series, m.capability
    unit = f" [{_e(s.unit)}]" if s.unit else ""
    if m.kind == "passfail":
        return (
            f'<figure class="hist-card count-card" id="m{i}" data-kind="passfail" '
            'data-cpk-band="na">'
            f"<figcaption><b>{_e(s.step)}</b> / {_e(s.name)}{unit}"
            f'<div class="stats">pass {m.passes:,} / fail {m.fails:,}</div></figcaption>'
            f"{plots.count_svg(m)}</figure>"
        )
    cpk = "too few units" if m.too_few else _cpk_cell(c.cpk)
    stats = f"n {c.n:,} · mean {fmt_num(c.mean)} · {SIGMA} {fmt_num(c.sigma)} · Cpk {cpk}"
    band = "na" if m.too_few else cpk_band(c.cpk)
    return (
        f'<figure class="hist-card" id="m{i}" data-kind="quantity" data-cpk-band="{band}">'
        f"<figcaption><b>{_e(s.step)}</b> / {_e(s.name)}{unit}"
        f'<div class="stats">{stats}</div></figcaption>'
        f"{plots.histogram_svg(m)}"
        f'<div class="runlabel">in time order{" · drifting" if m.drifting else ""}</div>'
        f"{plots.trend_svg(m)}</figure>"
    )


def _histograms(a: Analysis) -> str:
    cards = "".join(
        _histogram_card(i, m) for i, m in enumerate(a.measurements) if m.kind != "identifier"
    )
    ids = [m for m in a.measurements if m.kind == "identifier"]
    id_note = (
        '<p class="identifiers">Identifiers, not plotted as numbers: '
        + ", ".join(f"<span>{_e(m.label)}</span>" for m in ids)
        + ".</p>"
        if ids
        else ""
    )
    lede = (
        "Each with its limits (red dashed), its mean (dark line) and, below, its values in time "
        "order (chunk means, min-max band). Bins beyond a limit are red. Pass/fail measurements "
        "(unit bool/pass, a pass/fail step, or only 0 and 1) are counted instead; identifiers "
        "(unit id/hex/mac/text, an id-like name: mac, serial, id, rev, version, jedec..., "
        "or a register read) are not plotted."
    )
    return _section(
        "histograms",
        "Measurement distributions",
        lede,
        f'<div class="hist-grid">{cards}</div>',
        id_note,
    )


def _control(a: Analysis) -> str:
    cards = "".join(
        f'<figure class="control-card" id="cc{i}" data-measurement="{_e(m.label)}">'
        f"<figcaption><b>{_e(m.series.step)}</b> / {_e(m.series.name)}"
        f"{f' [{_e(m.series.unit)}]' if m.series.unit else ''}</figcaption>"
        f"{plots.control_chart_svg(m)}</figure>"
        for i, m in _quantities(a)
    )
    lede = (
        f"I-MR charts: the values in test order with their mean (CL) and control limits at "
        f"{MINUS}3{SIGMA}/+3{SIGMA} ({SIGMA} = mean moving range / 1.128), the spec limits as "
        "they were at the time (red dashed, stepping where a sequence version changed them), "
        "and the moving ranges below. Circled: Western Electric violations (1: a point beyond "
        f"3{SIGMA}; 2: 2 of 3 beyond 2{SIGMA} on one side; 3: 4 of 5 beyond 1{SIGMA} on one "
        "side; 4: 8 in a row on one side of the centre)."
    )
    return _section("control", "Control charts", lede, cards or "<p>No numeric measurements.</p>")


def _retests(a: Analysis) -> str:
    rows = "".join(
        f"<tr><td>{b.tests}</td><td>{b.units:,}</td><td>{b.passed:,}</td>"
        f"<td>{b.units - b.passed:,}</td></tr>"
        for b in a.retests
    )
    table = (
        '<table class="retest-table"><thead><tr><th>Tests a unit took</th><th>Units</th>'
        f"<th>Passed in the end</th><th>Still failing</th></tr></thead><tbody>{rows}</tbody>"
        "</table>"
    )
    if a.passed_on_retry:
        total = sum(n for _, n in a.passed_on_retry)
        steps = ", ".join(f"{escape(name)} ({n:,})" for name, n in a.passed_on_retry)
        marginal = f" {total:,} step results passed only on a retry: {steps}."
    else:
        marginal = " No step passed only on a retry."
    return _section(
        "retests",
        "Retests",
        f"{a.summary.retests:,} retests. Units by the number of tests they took in range."
        + marginal,
        f'<div class="two">{plots.retest_svg(a.retests)}<div>{table}</div></div>',
    )


def _position_rows(positions: list[PositionYield], line: float | None) -> str:
    rows = []
    for p in positions:
        delta = "n/a" if line is None else _signed((p.test_yield - line) * 100)
        chance = "" if p.p_value is None else _p(p.p_value)
        cls = ' class="flagged"' if p.flagged else ""
        mark = '<span class="badge">low</span>' if p.flagged else ""
        rows.append(
            f'<tr{cls} data-position="{_e(p.label)}" data-flagged="{str(p.flagged).lower()}">'
            f'<td class="t">{_e(p.key[0])}</td><td class="t">{_e(p.key[1])}</td>'
            f"<td>{p.tests:,}</td><td>{p.passed:,}</td><td>{fmt_pct(p.test_yield)}</td>"
            f"<td>{delta}</td><td>{chance}</td><td>{mark}</td></tr>"
        )
    return "".join(rows)


def _p(value: float) -> str:
    if value < 1e-4:
        return "&lt; 0.0001"
    return f"{value:.4f}" if value < 0.01 else f"{value:.2f}"


def _positions(a: Analysis) -> str:
    line = a.summary.first_pass_yield
    flagged_slots = [p for p in a.slots if p.flagged]
    if flagged_slots:
        names = ", ".join(f"{p.key[0]} slot {p.key[1]}" for p in flagged_slots)
        alert = f'<p class="alert" id="low-slots">Low slot yield: {_e(names)}.</p>'
    else:
        alert = '<p class="calm" id="low-slots">No slot stands out from the line.</p>'
    table = (
        '<table class="slot-table"><thead><tr><th class="t">Fixture</th><th class="t">Slot</th>'
        "<th>Units</th><th>Passed first time</th><th>First-pass yield</th>"
        "<th>vs line (points)</th><th>chance</th>"
        f"<th></th></tr></thead><tbody>{_position_rows(a.slots, line)}</tbody></table>"
    )
    lede = (
        "First-pass yield of the units by where their first test ran; the dashed line is the "
        f"whole line's {fmt_pct(line)}. Red: at least {FLAG_MIN_GAP * 100:g} points below the "
        f"rest of the line and unlikely to be chance (binomial p under {FLAG_ALPHA:g} "
        "shared among the positions of its kind)."
    )
    return _section(
        "positions",
        "Yield per station, fixture and slot",
        lede,
        alert,
        '<div class="two"><div><h3>Stations</h3>',
        plots.position_bars_svg(a.stations, line),
        "</div><div><h3>Fixtures</h3>",
        plots.position_bars_svg(a.fixtures, line),
        "</div></div><h3>Slots, one chart a fixture</h3>",
        plots.slot_multiples_svg(a.slots, line),
        '<p class="note">Dashed: the line\'s first-pass yield. Bars: % of the units whose first '
        "test ran in that slot that passed it.</p>",
        '<details class="slots"><summary>Every slot</summary>',
        table,
        "</details>",
    )


def _footer() -> str:
    terms = [
        (
            "Test",
            "a run that ended PASS, FAIL or ERROR. EMPTY (no board in the slot) and ABORTED "
            "runs are not tests and count nowhere below.",
        ),
        (
            "Units tested",
            "distinct chip ids (MACs) with at least one test in range; a test whose unit could "
            "not be identified counts as a unit of its own.",
        ),
        (
            "First-pass yield",
            "units whose first test in range passed and was their first test (attempt 1; "
            "aborted runs before it do not count), over units tested.",
        ),
        ("Final yield", "units whose latest test in range passed, over units tested."),
        ("Retests", "tests minus units tested."),
        ("Test yield", "passing tests over tests."),
        (
            "Station, fixture, slot yield",
            "first-pass yield of the units whose first test ran there: first tests are a fair "
            "sample of new units (retests are not), so a bad pogo pin shows as one slot's low "
            f"yield. Flagged when at least {FLAG_MIN_GAP * 100:g} points below the rest of the "
            "line and the chance "
            "of that many failures at the rest's failure rate (exact binomial) is under "
            f"{FLAG_ALPHA:g} divided by the number of positions of that kind.",
        ),
        (
            "Cpk",
            f"min((USL {MINUS} mean) / 3{SIGMA}, (mean {MINUS} LSL) / 3{SIGMA}) with the sample "
            f"{SIGMA} (n {MINUS} 1); one-sided with one limit; n/a without limits; only from "
            f"{CPK_MIN_UNITS} units up (fewer: too few units, no verdict, not ranked); only for "
            "quantities.",
        ),
        (
            "Measurement kinds",
            "pass/fail: unit bool/pass/fail, a pass/fail step type, or values only 0 and 1: "
            "counted, never a histogram. Identifier: unit id/hex/mac/text/serial/rev or a name "
            "with the word id, mac, serial, sn, rev, revision, version, uid, uuid, efuse, "
            "jedec, whoami, fingerprint, hash or crc, or a register read (name ending [0x..]): "
            "listed, never plotted. Everything else is a quantity.",
        ),
        (
            "Control chart",
            f"I-MR: centre line the mean, {SIGMA} = mean moving range / 1.128, control limits "
            f"{MINUS}3{SIGMA}/+3{SIGMA}, moving-range limit 3.267 x mean moving range. Western "
            f"Electric rules: (1) a point beyond 3{SIGMA}; (2) 2 of 3 beyond 2{SIGMA} on one side; "
            f"(3) 4 of 5 beyond 1{SIGMA} on one side; (4) 8 in a row on one side of the centre; "
            "each marked at the point completing it. Spec limits drawn as each run had them.",
        ),
        (
            "Yield over time",
            "units grouped by the hour (ranges up to 48 h) or day (UTC) of their first test in "
            "range.",
        ),
    ]
    items = "".join(f"<dt>{_e(t)}</dt><dd>{_e(d)}</dd>" for t, d in terms)
    return f'<footer id="definitions"><h2>Definitions</h2><dl>{items}</dl></footer>'


_CSS = """
:root{--ink:#1e293b;--muted:#64748b;--line:#e2e8f0;--bg:#f4f6fa;--red:#d64545}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Helvetica Neue",Arial,
 sans-serif}
main{max-width:1240px;margin:0 auto;padding:26px 28px 40px}
header.top{display:flex;justify-content:space-between;align-items:flex-end;margin:0 0 18px;
 padding:0 2px}
h1{font-size:24px;margin:0;letter-spacing:-.01em}
.sub{margin:2px 0 0;color:var(--muted);font-size:15px}
.meta{margin:0;color:var(--muted);font-size:12px;text-align:right}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:18px 22px 20px;
 margin:0 0 18px;box-shadow:0 1px 2px rgba(15,23,42,.05)}
h2{font-size:16px;margin:0 0 4px}
h3{font-size:13px;margin:14px 0 4px;color:#334155;text-transform:uppercase;letter-spacing:.05em}
.lede{color:var(--muted);margin:0 0 12px;font-size:13px}
.kpis{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;margin-top:10px}
.kpi{border:1px solid var(--line);border-radius:8px;padding:12px 14px;border-top:4px solid #94a3b8}
.kpi.good{border-top-color:#1a9e5a}.kpi.warn{border-top-color:#e0a030}
.kpi.bad{border-top-color:#d64545}
.kpi .l{color:var(--muted);font-size:11.5px;text-transform:uppercase;letter-spacing:.05em}
.kpi .v{font-size:27px;font-weight:650;font-variant-numeric:tabular-nums;margin-top:2px}
.kpi .n{color:var(--muted);font-size:12px;min-height:1.2em}
ul.attention{margin:14px 0 0;padding:0;list-style:none}
ul.attention li{padding:7px 12px;margin:6px 0;border-radius:6px;background:#fdf3e1;
 border-left:4px solid #e0a030}
ul.attention li.flag{background:#fdecec;border-left-color:var(--red)}
.calm{margin:14px 0 0;color:#126b3e}
.alert{margin:4px 0 8px;padding:8px 12px;border-radius:6px;background:#fdecec;
 border-left:4px solid var(--red);font-weight:600;color:#8f1d1d}
svg.chart{display:block;max-width:100%;height:auto}
svg text{font-family:inherit;font-size:11px;fill:#475569}
svg .value{fill:var(--ink);font-weight:600}
svg .value.small{font-size:10px;font-weight:500;fill:#475569}
svg .flag{fill:var(--red);font-weight:700}
svg .limit{fill:var(--red);font-weight:600;font-size:10.5px}
svg .legend{fill:#334155;font-size:11.5px}
svg .muted{fill:var(--muted);font-size:13px}
svg .panel-title{fill:var(--ink);font-weight:650;font-size:12.5px}
svg .hit:hover{fill:rgba(47,111,219,.06)}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{font-size:11.5px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
 font-weight:600}
th.t,td.t{text-align:left}
th.sym{text-transform:none;font-size:13px}
td a{color:inherit;text-decoration:none;border-bottom:1px dotted #94a3b8}
.cpk{display:inline-block;min-width:3.4em;padding:1px 8px;border-radius:4px;font-weight:700;
 text-align:center}
.cpk.bad{background:#fbdcdc;color:#9b1c1c}.cpk.warn{background:#fcefd2;color:#8a5300}
.cpk.good{background:#d8f1e3;color:#10663b}.cpk.na{color:var(--muted);font-weight:500}
tr.bad td{background:#fff7f7}
.driftflag{color:#9b1c1c;font-weight:700}
.hist-grid{display:grid;grid-template-columns:repeat(3,1fr);gap:14px}
.hist-card{margin:0;border:1px solid var(--line);border-radius:8px;padding:10px 12px 8px}
.hist-card[data-cpk-band=bad]{border-color:#f1b5b5}
.hist-card figcaption{font-size:13px}
.hist-card .stats{color:var(--muted);font-size:12px;margin:2px 0 4px}
.hist-card .stats .cpk{font-size:11.5px;padding:0 6px;min-width:0}
.runlabel{color:var(--muted);font-size:10.5px;text-transform:uppercase;letter-spacing:.05em;
 margin:2px 0 0}
.we-head{margin:18px 0 6px;font-size:14px}
.two{display:grid;grid-template-columns:1fr 1fr;gap:24px;align-items:start}
tr.flagged td{background:#fdecec;color:#8f1d1d;font-weight:600}
.badge{background:var(--red);color:#fff;border-radius:10px;padding:1px 8px;font-size:11px}
details.slots{margin-top:10px}
.note{color:var(--muted);font-size:12px;margin:2px 0 0;text-align:right}
details.slots summary{cursor:pointer;color:var(--muted);font-size:13px}
footer{color:var(--muted);font-size:12.5px;padding:4px 4px 0}
footer h2{font-size:13px;color:#334155;text-transform:uppercase;letter-spacing:.05em}
footer dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:8px 0}
footer dt{font-weight:600;color:#334155}footer dd{margin:0}
@media print{body{background:#fff}.card{box-shadow:none;break-inside:avoid}}
"""
