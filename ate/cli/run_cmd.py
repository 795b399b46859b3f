"""`ate run` and `ate demo`: load inputs, start simulated twins if any, run, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import socket
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.live import Live

import ate
from ate.cli.live import SlotTable
from ate.cli.store_cmds import default_db_url
from ate.config.errors import InputError
from ate.config.loader import (
    LoadedFixture,
    LoadedSequence,
    check_compatible,
    load_fixture,
    load_sequence,
)
from ate.drivers.line_client import DeviceGone, DeviceTimeout
from ate.instruments.base import InstrumentError, InstrumentMismatch
from ate.model.results import SlotResult
from ate.model.verdict import Verdict
from ate.provision.journal import JournalError
from ate.provision.profile import CaNotReady
from ate.scheduler.bus import EventBus
from ate.scheduler.panel import PanelRefused, PanelResult
from ate.sequence.plan import PlanError, compile_plan
from ate.station.line import LineDb
from ate.station.provisioning import StationProvisioning, open_provisioning
from ate.station.runner import Outputs, RfRefused, run_one_panel, simulated_twin
from ate.station.store_sink import StoreSink
from ate.store.spool import default_spool_path

EXIT_PASS, EXIT_UNIT_FAILED, EXIT_BAD_INPUT, EXIT_CANNOT_RUN = 0, 1, 2, 3

REPO = Path(ate.__file__).resolve().parent.parent
DEMO_FIXTURE = REPO / "fixtures" / "sim-quad.yaml"
DEMO_SEQUENCE = REPO / "sequences" / "s3-devkit-functional.yaml"


def _console() -> Console:
    # Piped into a file or CI log, rich would assume 80 columns and fold every reason.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def _load(
    sequence: Path, fixtures: list[Path], variant: str | None = None
) -> tuple[LoadedSequence, list[LoadedFixture]]:
    seq = load_sequence(sequence, variant)
    fixes = [load_fixture(f) for f in fixtures]
    for fix in fixes:
        if fix.model.simulation is not None:
            from ate.sim.fixture_check import check_simulation

            check_simulation(fix)
        check_compatible(seq, fix)
    try:
        compile_plan(seq.model)
    except PlanError as exc:
        raise InputError(sequence, str(exc)) from None
    return seq, fixes


def _out_dir(given: Path | None) -> Path:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        return given
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path("ate-out") / f"run-{stamp}"
    n = 1
    while out.exists():
        n += 1
        out = Path("ate-out") / f"run-{stamp}-{n}"
    out.mkdir(parents=True)
    return out


def execute(
    seq: LoadedSequence,
    fixtures: list[LoadedFixture],
    out: Path,
    *,
    station: str,
    operator: str,
    live: bool,
    transport: str = "pty",
    console: Console | None = None,
    provisioning: StationProvisioning | None = None,
    db_url: str | None = None,
    state_dir: Path | None = None,
    line: LineDb | None = None,
) -> list[PanelResult | BaseException]:
    """Run one panel on each fixture concurrently, in one event loop, into `out`; with
    `provisioning`, units that pass are provisioned and locked."""
    console = console or _console()
    bus = EventBus()
    # First subscriber: a unit counts as done only once its record is in the spool.
    sink = None
    if db_url is not None and state_dir is not None:
        sink = StoreSink.start(
            db_url, default_spool_path(state_dir), station=station, operator=operator
        )
        sink.attach(bus)
    outputs = Outputs(out)
    outputs.attach(bus)
    table = SlotTable(len(seq.model.all_steps()), title=f"{seq.model.sequence} {seq.model.version}")
    bus.subscribe(table)

    with contextlib.ExitStack() as stack:
        sims = [stack.enter_context(simulated_twin(f, transport)) for f in fixtures]

        async def panels() -> list[PanelResult | BaseException]:
            try:
                return await run_all()
            finally:
                if sink is not None:
                    left = await sink.drain(10.0)
                    if left:
                        console.print(
                            f"[yellow]{left} entries (unit records, audit entries) wait in "
                            f"the station spool ({sink.status().spool}); they go to the "
                            "line database when "
                            "it can be reached[/yellow]"
                        )
                    await sink.aclose()

        async def run_all() -> list[PanelResult | BaseException]:
            return await asyncio.gather(
                *(
                    run_one_panel(
                        f,
                        seq,
                        bus,
                        sim=sim,
                        station=station,
                        operator=operator,
                        provisioner=provisioning.provisioner if provisioning else None,
                        admit=line.admit if line is not None else None,
                    )
                    for f, sim in zip(fixtures, sims, strict=True)
                ),
                return_exceptions=True,
            )

        try:
            if live and console.is_terminal:
                with Live(table, console=console, refresh_per_second=8):
                    results = asyncio.run(panels())
            else:
                results = asyncio.run(panels())
                console.print(table.render())
        finally:
            outputs.close()
            if sink is not None:
                sink.close()
            if provisioning is not None:
                provisioning.after_panel()
    return results


def _report(
    results: list[PanelResult | BaseException],
    fixtures: list[LoadedFixture],
    out: Path,
    console: Console,
) -> int:
    code = EXIT_PASS
    for fix, res in zip(fixtures, results, strict=True):
        if isinstance(res, InstrumentMismatch):  # the fixture file names another instrument
            print(f"ate: {fix.path}: {res}", file=sys.stderr)
            code = max(code, EXIT_BAD_INPUT)
        elif isinstance(res, RfRefused):  # a golden board's calibration or role: fix the input
            print(f"ate: fixture {fix.model.fixture}: {res}", file=sys.stderr)
            code = max(code, EXIT_BAD_INPUT)
        elif isinstance(res, PanelRefused | DeviceGone | DeviceTimeout | OSError | InstrumentError):
            print(f"ate: fixture {fix.model.fixture}: {res}", file=sys.stderr)
            code = max(code, EXIT_CANNOT_RUN)
        elif isinstance(res, BaseException):
            raise res
        elif not res.all_passed:
            code = max(code, EXIT_UNIT_FAILED)
    console.print(f"records, logs and JUnit in [bold]{out}[/bold]")
    return code


def run_panels(args: argparse.Namespace) -> int:
    try:
        seq, fixtures = _load(Path(args.sequence), [Path(f) for f in args.fixture], args.variant)
        labels = _labels(args.label or [])
    except InputError as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    console = _console()
    _, code = _execute_and_report(
        args, seq, fixtures, console, Path(args.profile) if args.profile else None, labels
    )
    return code


def _labels(given: list[str]) -> dict[int, str]:
    labels: dict[int, str] = {}
    for item in given:
        slot, sep, text = item.partition("=")
        if not sep or not slot.isdigit() or not text:
            raise InputError(None, f"--label {item!r}: write SLOT=SERIAL, e.g. 1=AS3-7K2M9-QXH4T-Z")
        labels[int(slot)] = text
    return labels


def _execute_and_report(
    args: argparse.Namespace,
    seq: LoadedSequence,
    fixtures: list[LoadedFixture],
    console: Console,
    profile: Path | None = None,
    labels: dict[int, str] | None = None,
) -> tuple[list[PanelResult | BaseException], int]:
    out = _out_dir(args.out)
    station = args.station or socket.gethostname()
    db_url = args.db or default_db_url(Path(args.state))
    line = LineDb(db_url, max_retests=args.max_retests)
    provisioning = None
    if profile is not None:
        try:
            provisioning = open_provisioning(
                profile,
                seq,
                state_dir=Path(args.state),
                out_dir=out,
                station=station,
                operator=args.operator,
                lot=args.lot,
                labels=labels,
                line=line,
            )
        except InputError as exc:
            line.close()
            print(f"ate: {exc}", file=sys.stderr)
            return [], EXIT_BAD_INPUT
        except (CaNotReady, JournalError) as exc:
            line.close()
            print(f"ate: cannot provision: {exc}", file=sys.stderr)
            return [], EXIT_CANNOT_RUN
    try:
        results = execute(
            seq,
            fixtures,
            out,
            station=station,
            operator=args.operator,
            live=not args.no_live,
            transport=args.transport,
            console=console,
            provisioning=provisioning,
            db_url=db_url,
            state_dir=Path(args.state),
            line=line,
        )
    finally:
        if provisioning is not None:
            provisioning.close()
        line.close()
    return results, _report(results, fixtures, out, console)


def run_demo(args: argparse.Namespace) -> int:
    """The built-in simulated quad fixture, the whole mission: every unit tested; those
    that pass provisioned (serial, device key and certificate, partitions, signed
    production firmware) and locked; slot 3 carries a fault and is left untouched. The
    development PKI, factory secret and signing key are made now in a private temporary
    folder, never under --out. Exit 0 when the demo behaved as designed."""
    try:
        seq, fixtures = _load(DEMO_SEQUENCE, [DEMO_FIXTURE])
    except InputError as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    console = _console()
    fix = fixtures[0]
    sim = fix.model.simulation
    faulted = {n for n, s in (sim.slots.items() if sim else ()) if s.faults}
    console.print(
        f"[bold]ate demo[/bold]: fixture [cyan]{fix.model.fixture}[/cyan] "
        f"({len(fix.model.slots)} simulated ESP32-S3 boards on real ptys), sequence "
        f"[cyan]{seq.model.sequence}[/cyan]; slot(s) {sorted(faulted)} carry a fault. Units "
        "that pass are provisioned with a development TEST PKI made for this run, then locked."
    )
    args.out = _out_dir(args.out)
    # The station's state (spool and journal, records database) goes with the outputs so that
    # `ate unit` and `ate report` can be tried on it; it holds no secret.
    args.state = str(args.out / "state")
    args.lot = args.lot or "demo"
    with tempfile.TemporaryDirectory(prefix="ate-demo-") as private:
        from ate.sim.devkit import make_dev_profile

        kit = make_dev_profile(Path(private) / "devkit", chip=seq.model.chip)
        results, code = _execute_and_report(args, seq, fixtures, console, kit.profile)
    if not results or code == EXIT_CANNOT_RUN or isinstance(results[0], BaseException):
        return code or EXIT_CANNOT_RUN
    res = results[0]

    def as_designed(slot: int, r: SlotResult) -> bool:
        state = (r.extra.get("provisioning") or {}).get("state")
        if slot in faulted:
            return r.verdict is not Verdict.PASS and state in (None, "untouched")
        return r.verdict is Verdict.PASS and state == "locked"

    if all(as_designed(slot, r) for slot, r in res.slots.items()):
        db = default_db_url(Path(args.state))
        serial = next(
            (
                r.extra["provisioning"]["serial"]
                for r in res.slots.values()
                if r.extra.get("provisioning", {}).get("serial")
            ),
            "SERIAL",
        )
        console.print(
            "demo: as designed: the faulted slot failed with its reason and was left "
            "untouched; the others passed, were provisioned and locked. Device certificates, "
            "the CA chain and the cloud manifest are under certs/ and cloud/."
        )
        # Commands a person copies: one line each, never wrapped mid-command by the
        # console's width, and no markup or highlighting inside them.
        for what, command in (
            ("a unit's history:", f"ate unit {serial} --db {db}"),
            ("the yield report:", f"ate report --db {db} -o {args.out / 'report.html'}"),
        ):
            console.print(f"  {what:<18} {command}", soft_wrap=True, markup=False, highlight=False)
        return EXIT_PASS
    console.print("[bold red]demo: unexpected verdicts[/bold red] (see the table above)")
    return EXIT_UNIT_FAILED
