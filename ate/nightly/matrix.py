"""A whole nightly run: draw each panel, run it, check it; then the audit chain.

Owns `run_matrix`. A panel that cannot run at all (a bench fault, not a verdict) is a
violation with its reason, and the run goes on with the next panel. Imports
ate.nightly.* only.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable

from ate.nightly.bench import STATION, NightlyBench, PanelRun
from ate.nightly.draw import draw_panel
from ate.nightly.invariants import check_audit, check_panel
from ate.nightly.report import NightlyResult


def run_matrix(
    bench: NightlyBench,
    seed: int,
    panels: Iterable[int],
    slots: int,
    *,
    progress: Callable[[PanelRun], None] | None = None,
) -> NightlyResult:
    started = time.monotonic()
    result = NightlyResult(seed)
    for index in panels:
        draw = draw_panel(seed, index, slots)
        try:
            run = bench.run(draw)
        except Exception as exc:  # the bench itself broke: say where, go on
            where = "".join(traceback.format_exception(exc)[-3:])
            run = PanelRun(draw, error=f"{type(exc).__name__}: {exc}\n{where}")
        result.panels.append(run)
        result.violations += check_panel(run)
        if progress is not None:
            progress(run)
    result.violations += check_audit(bench.db_url, STATION)
    result.seconds = time.monotonic() - started
    return result
