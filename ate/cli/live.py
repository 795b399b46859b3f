"""The operator's view in a terminal: a live table of slots fed by the event stream."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from ate.model.events import (
    Event,
    FlashProgress,
    PanelStarted,
    SlotEnded,
    SlotPhase,
    StepEnded,
    StepStarted,
    UnitIdentified,
)
from ate.model.verdict import Verdict

_STYLE = {
    Verdict.PASS: "bold green",
    Verdict.FAIL: "bold red",
    Verdict.ERROR: "bold magenta",
    Verdict.ABORTED: "bold yellow",
    Verdict.EMPTY: "dim",
    Verdict.SKIPPED: "dim",
}


@dataclass
class _Row:
    slot: int
    mac: str = ""
    activity: str = "waiting"
    done: int = 0
    failed: int = 0
    verdict: Verdict | None = None
    reason: str = ""


class SlotTable:
    """Subscriber keeping one row per slot; render() gives a rich Table of them."""

    def __init__(self, total_steps: int, title: str = "") -> None:
        self.total = total_steps
        self.title = title
        self.rows: dict[tuple[str, int], _Row] = {}

    def _row(self, panel: str, slot: int) -> _Row:
        return self.rows.setdefault((panel, slot), _Row(slot))

    def __call__(self, event: Event) -> None:
        if isinstance(event, PanelStarted):
            for slot in event.slots:
                self._row(event.panel_id, slot)
        elif isinstance(event, SlotPhase):
            self._row(event.panel_id, event.slot).activity = event.phase
        elif isinstance(event, UnitIdentified):
            self._row(event.panel_id, event.slot).mac = event.unit.mac
        elif isinstance(event, FlashProgress):
            pct = 100 * event.done // event.total if event.total else 100
            self._row(event.panel_id, event.slot).activity = f"{event.stage} {pct}%"
        elif isinstance(event, StepStarted):
            retry = f" (retry {event.attempt})" if event.attempt else ""
            self._row(event.panel_id, event.slot).activity = f"{event.name}{retry}"
        elif isinstance(event, StepEnded):
            row = self._row(event.panel_id, event.slot)
            row.done += 1
            row.failed += event.result.verdict.is_failure
        elif isinstance(event, SlotEnded):
            row = self._row(event.panel_id, event.result.slot)
            row.verdict = event.result.verdict
            row.reason = event.result.reason
            row.activity = "done"

    def render(self) -> Table:
        table = Table(title=self.title or None, expand=False)
        for col in ("slot", "unit", "now", "steps", "verdict", "reason"):
            table.add_column(col, no_wrap=col != "reason", overflow="fold")
        many = len({p for p, _ in self.rows}) > 1
        for (panel, slot), row in sorted(self.rows.items()):
            verdict = (
                Text(row.verdict.value, style=_STYLE[row.verdict]) if row.verdict else Text("…")
            )
            label = f"{panel.split('-')[0]}/{slot}" if many else str(slot)
            table.add_row(
                label,
                row.mac or "-",
                row.activity,
                f"{row.done}/{self.total}" + (f" ({row.failed} failed)" if row.failed else ""),
                verdict,
                row.reason,
            )
        return table

    def __rich__(self) -> Table:
        return self.render()
