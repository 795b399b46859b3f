"""A JUnit XML file per panel, so CI shows each slot as a suite and each step as a case."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ate.model.events import Event, PanelEnded, PanelStarted, SlotEnded
from ate.model.results import SlotResult
from ate.model.verdict import Verdict


def panel_junit(panel: PanelStarted, results: list[SlotResult]) -> ET.ElementTree:
    suites = ET.Element("testsuites", name=f"{panel.sequence.get('name', '')}")
    for r in sorted(results, key=lambda r: r.slot):
        mac = r.unit.mac if r.unit else "unknown"
        counts = {v: sum(1 for s in r.steps if s.verdict is v) for v in Verdict}
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{panel.fixture}.slot{r.slot}",
            tests=str(len(r.steps)),
            failures=str(counts[Verdict.FAIL]),
            errors=str(counts[Verdict.ERROR] + counts[Verdict.ABORTED]),
            skipped=str(counts[Verdict.SKIPPED]),
            time=f"{r.duration_s:.3f}",
            timestamp=panel.started_at,
            hostname=panel.station,
        )
        props = ET.SubElement(suite, "properties")
        for key, value in (
            ("mac", mac),
            ("verdict", r.verdict.value),
            ("reason", r.reason),
            ("panel_id", panel.panel_id),
            ("operator", panel.operator),
        ):
            ET.SubElement(props, "property", name=key, value=value)
        if r.verdict is not Verdict.PASS and all(s.verdict is Verdict.SKIPPED for s in r.steps):
            # Empty slots and bring-up failures have no step to carry them.
            case = ET.SubElement(suite, "testcase", classname=f"slot{r.slot}", name="bring-up")
            tag = "skipped" if r.verdict is Verdict.EMPTY else "error"
            ET.SubElement(case, tag, message=r.reason)
        for s in r.steps:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"slot{r.slot}",
                name=s.name,
                time=f"{s.duration_s:.6f}",
            )
            if s.verdict is Verdict.FAIL:
                ET.SubElement(case, "failure", message=s.reason, type="FAIL")
            elif s.verdict in (Verdict.ERROR, Verdict.ABORTED):
                ET.SubElement(
                    case, "error", message=s.reason or s.verdict.value, type=s.verdict.value
                )
            elif s.verdict is Verdict.SKIPPED:
                ET.SubElement(case, "skipped")
            if s.measurements:
                out = ET.SubElement(case, "system-out")
                out.text = "\n".join(
                    f"{m.name} = {m.value} {m.unit} [{m.limits.describe() if m.limits else '-'}]"
                    f" {m.verdict.value}"
                    for m in s.measurements
                )
    ET.indent(suites)
    return ET.ElementTree(suites)


class JUnitWriter:
    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / "junit"
        self._panels: dict[str, PanelStarted] = {}
        self._results: dict[str, list[SlotResult]] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, PanelStarted):
            self._panels[event.panel_id] = event
            self._results[event.panel_id] = []
        elif isinstance(event, SlotEnded):
            self._results[event.panel_id].append(event.result)
        elif isinstance(event, PanelEnded):
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / f"{event.panel_id}.xml"
            panel_junit(self._panels.pop(event.panel_id), self._results.pop(event.panel_id)).write(
                path, encoding="utf-8", xml_declaration=True
            )
