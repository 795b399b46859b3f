"""The nightly run's outputs: the matrix as text, JUnit XML, one self-contained HTML page.

Owns `NightlyResult` and its three renderings. The page holds the confusion matrix
(injected fault by verdict class, cells outside what the fault allows marked), the
invariants with their counts, and the worst cases, each with the one command that
replays its panel alone from the seed. Imports ate.nightly.* and the standard library.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ate.nightly.bench import PanelRun, SlotOutcome
from ate.nightly.draw import PanelDraw
from ate.nightly.faults import LIBRARY, Outcome
from ate.nightly.invariants import INVARIANTS, Violation, confusion

COLUMNS = tuple(Outcome)
WORST_SHOWN = 30


@dataclass
class NightlyResult:
    seed: int
    panels: list[PanelRun] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def outcomes(self) -> list[SlotOutcome]:
        return [o for p in self.panels for o in p.outcomes]

    def counts(self) -> dict[str, int]:
        return {inv: sum(v.invariant == inv for v in self.violations) for inv in INVARIANTS}

    def draw_of(self, panel: int | None) -> PanelDraw | None:
        return next((p.draw for p in self.panels if p.draw.index == panel), None)


def render_text(result: NightlyResult) -> str:
    matrix = confusion(result.outcomes)
    width = max([len(n) for n in matrix] + [12])
    head = f"{'fault':<{width}} " + " ".join(f"{c.value:>8.8}" for c in COLUMNS)
    lines = [head, "-" * len(head)]
    for name in sorted(matrix):
        allowed = _allowed(result, name)
        cells = []
        for c in COLUMNS:
            n = matrix[name][c]
            mark = "!" if n and c not in allowed else " "
            cells.append(f"{n or '.':>7}{mark}")
        lines.append(f"{name:<{width}} " + " ".join(cells))
    lines.append("")
    for inv, n in result.counts().items():
        lines.append(f"{'OK  ' if n == 0 else 'FAIL'} {n:>4}  {inv}")
    for v in result.violations[:WORST_SHOWN]:
        draw = result.draw_of(v.panel)
        where = f"panel {v.panel} slot {v.slot}" if v.slot else f"panel {v.panel}"
        replay = f"  (replay: {draw.replay})" if draw else ""
        lines.append(f"  {v.invariant}: {where}: {v.detail}{replay}")
    units = len(result.outcomes)
    lines.append(
        f"{len(result.panels)} panels, {units} units, seed {result.seed}, "
        f"{result.seconds:.1f} s; {len(result.violations)} violations"
    )
    return "\n".join(lines)


def _allowed(result: NightlyResult, name: str) -> set[Outcome]:
    return {a for o in result.outcomes if o.fault.name == name for a in o.allowed}


def write_junit(result: NightlyResult, path: Path) -> None:
    """One testcase per unit (its fault and class) and one per invariant."""
    suite = ET.Element(
        "testsuite",
        name=f"ate-nightly-seed-{result.seed}",
        tests=str(len(result.outcomes) + len(INVARIANTS)),
        failures=str(len(result.violations)),
        time=f"{result.seconds:.3f}",
    )
    by_unit: dict[tuple[int | None, int | None], list[Violation]] = {}
    for v in result.violations:
        by_unit.setdefault((v.panel, v.slot), []).append(v)
    for o in result.outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"nightly.{o.fault.family}",
            name=f"panel{o.panel}.slot{o.slot}.{o.fault.name} -> {o.outcome.value}",
        )
        for v in by_unit.get((o.panel, o.slot), []):
            failure = ET.SubElement(case, "failure", message=f"{v.invariant}: {v.detail}")
            draw = result.draw_of(o.panel)
            failure.text = f"replay: {draw.replay}" if draw else ""
    for inv, n in result.counts().items():
        case = ET.SubElement(suite, "testcase", classname="nightly.invariant", name=inv)
        if n:
            ET.SubElement(case, "failure", message=f"{n} violation(s) of '{inv}'")
    path.write_bytes(ET.tostring(suite, encoding="utf-8", xml_declaration=True))


_CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em}
td.n{text-align:right}td.off{background:#f8d0d0;font-weight:bold}td.zero{color:#bbb}
.ok{color:#176b2c}.bad{color:#a11}code{background:#f3f3f3;padding:0 .3em}
"""


def write_html(result: NightlyResult, path: Path) -> None:
    e = html.escape
    matrix = confusion(result.outcomes)
    rows = []
    for name in sorted(matrix):
        allowed = _allowed(result, name)
        what = LIBRARY[name].what if name in LIBRARY else ""
        cells = []
        for c in COLUMNS:
            n = matrix[name][c]
            cls = "n off" if n and c not in allowed else ("n" if n else "n zero")
            cells.append(f'<td class="{cls}">{n}</td>')
        expect = " / ".join(a.value for a in sorted(allowed, key=COLUMNS.index))
        rows.append(
            f"<tr><th>{e(name)}</th><td>{e(what)}</td><td>{e(expect)}</td>{''.join(cells)}</tr>"
        )
    inv_rows = "".join(
        f'<tr><td class="{"ok" if n == 0 else "bad"}">{"OK" if n == 0 else "VIOLATED"}</td>'
        f'<td class="n">{n}</td><td>{e(inv)}</td></tr>'
        for inv, n in result.counts().items()
    )
    worst = "".join(
        f"<tr><td>{e(v.invariant)}</td><td>{v.panel if v.panel is not None else ''}</td>"
        f"<td>{v.slot or ''}</td><td>{e(v.detail)}</td>"
        f"<td><code>{e(d.replay) if (d := result.draw_of(v.panel)) else ''}</code></td></tr>"
        for v in result.violations[:WORST_SHOWN]
    )
    verdict = "no violation" if not result.violations else f"{len(result.violations)} violations"
    head = "".join(f"<th>{e(c.value)}</th>" for c in COLUMNS)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>ate nightly, seed {result.seed}</title><style>{_CSS}</style></head><body>
<h1>ate nightly, seed {result.seed}: <span class="{"ok" if not result.violations else "bad"}">
{e(verdict)}</span></h1>
<p>{len(result.panels)} panels, {len(result.outcomes)} units, {result.seconds:.1f} s.
Replay one panel alone: <code>ate nightly --seed {result.seed} --panel N</code>.</p>
<h2>Invariants</h2><table>{inv_rows}</table>
<h2>Injected fault by verdict</h2>
<table><tr><th>fault</th><th>what</th><th>must be</th>{head}</tr>{"".join(rows)}</table>
<h2>Worst cases</h2>
{f"<table><tr><th>invariant</th><th>panel</th><th>slot</th><th>what</th><th>replay</th></tr>{worst}</table>" if worst else "<p>None.</p>"}
</body></html>
"""  # noqa: E501
    path.write_text(page, encoding="utf-8")
