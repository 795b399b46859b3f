"""`ate nightly`: the seeded fault matrix on simulated fixtures (ate/nightly).

Defaults are embedded: the quad fixture of the S3 devkit board, the functional sequence,
and a development profile made for the run in a private temporary folder (its keys never
under --out). Writes nightly.html, nightly.xml (JUnit) and the station's records, logs
and line database under --out. Exit 0 with no violation, 1 with any, 2 for bad input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ate.config.errors import InputError
from ate.config.loader import load_fixture, load_sequence
from ate.nightly.bench import NightlyBench, PanelRun, default_fixture

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SEQUENCE = REPO / "sequences" / "s3-devkit-functional.yaml"
DEFAULT_BOARD = REPO / "fixtures" / "sim" / "board-s3-devkit.yaml"
EXIT_OK, EXIT_VIOLATED, EXIT_BAD_INPUT = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "nightly", help="seeded fault matrix on simulated fixtures: proves no false PASS"
    )
    p.add_argument("--panels", type=int, default=10, help="panels to run (default 10)")
    p.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    p.add_argument(
        "--panel", type=int, default=None, help="run only this panel of the seed (a replay)"
    )
    p.add_argument("--fixture", type=Path, help="a simulated fixture file (default: embedded)")
    p.add_argument("--sequence", type=Path, help="the sequence (default: embedded functional)")
    p.add_argument("--profile", type=Path, help="provisioning profile (default: a dev profile)")
    p.add_argument("--out", "-o", type=Path, help="output folder (default: a new one)")


def _fixture_doc(path: Path | None) -> tuple[dict[str, Any], Path]:
    if path is None:
        return default_fixture(DEFAULT_BOARD), DEFAULT_BOARD.parent
    loaded = load_fixture(path)  # bad input: one line, before anything runs
    if loaded.model.simulation is None:
        raise InputError(path, "ate nightly runs simulated fixtures: add a simulation: section")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc, loaded.base_dir


def run_nightly(args: argparse.Namespace) -> int:
    from ate.nightly.matrix import run_matrix
    from ate.nightly.report import render_text, write_html, write_junit

    if args.panels < 1 or (args.panel is not None and args.panel < 0):
        print("ate: nightly: --panels is at least 1 and --panel is not negative", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        sequence = load_sequence(args.sequence or DEFAULT_SEQUENCE)
        doc, fixture_dir = _fixture_doc(args.fixture)
    except InputError as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out: Path = args.out or Path("ate-out") / (
        f"nightly-{args.seed}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    )
    out.mkdir(parents=True, exist_ok=True)
    panels = [args.panel] if args.panel is not None else list(range(args.panels))

    def progress(run: PanelRun) -> None:
        got = " ".join(f"{o.slot}:{o.fault.name}={o.outcome.value}" for o in run.outcomes)
        pf = f" [{run.draw.panel_fault.name}]" if run.draw.panel_fault else ""
        print(f"panel {run.draw.index}{pf}: {got or run.error} ({run.seconds:.1f} s)", flush=True)

    with tempfile.TemporaryDirectory(prefix="ate-nightly-") as private:
        profile = args.profile
        if profile is None:
            from ate.sim.devkit import make_dev_profile

            profile = make_dev_profile(Path(private) / "devkit", chip=sequence.model.chip).profile
        bench = NightlyBench(out, sequence, profile, doc, fixture_dir, lot=f"nightly-{args.seed}")
        try:
            result = run_matrix(bench, args.seed, panels, len(doc["slots"]), progress=progress)
        except InputError as exc:
            print(f"ate: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    write_junit(result, out / "nightly.xml")
    write_html(result, out / "nightly.html")
    print(render_text(result))
    print(f"report: {out / 'nightly.html'}  JUnit: {out / 'nightly.xml'}")
    return EXIT_VIOLATED if result.violations else EXIT_OK
