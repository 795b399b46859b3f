"""The line's yield report: `stats` computes (pure), `plots` draws inline SVG, `html` renders
one self-contained page from a ReportInput. May import ate.store.api's dataclasses only."""

from ate.report.html import render_report

__all__ = ["render_report"]
