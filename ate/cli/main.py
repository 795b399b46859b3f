"""`ate` command line entry point: parse arguments, dispatch, map outcomes to exit codes.

Exit codes: 0 every unit passed, 1 a unit failed (FAIL, ERROR or ABORTED), 2 bad input
(one line naming file, line and column), 3 the station could not run the panel.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ate import __version__
from ate.config.errors import InputError

EXIT_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ate", description="ESP32 production test executive")
    p.add_argument("--version", action="version", version=f"ate {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run one panel of a fixture with a sequence")
    run.add_argument(
        "--fixture",
        "-f",
        required=True,
        action="append",
        help="fixture YAML (repeat to run several fixtures in one process)",
    )
    run.add_argument("--sequence", "-s", required=True, help="sequence YAML")
    run.add_argument("--variant", help="the product variant (the sequence's variants)")
    run.add_argument(
        "--profile", "-p", help="provisioning profile YAML: provision and lock units that pass"
    )
    run.add_argument(
        "--label",
        action="append",
        metavar="SLOT=SERIAL",
        help="the serial on a slot's pre-printed label (scanned or typed); must match",
    )
    _common_run_args(run)

    demo = sub.add_parser("demo", help="run the built-in simulated quad fixture")
    _common_run_args(demo)

    plan = sub.add_parser(
        "plan", help="print what provisioning would burn into a unit, without burning"
    )
    plan.add_argument("--profile", "-p", required=True, help="provisioning profile YAML")
    plan.add_argument("--fixture", "-f", required=True, help="fixture YAML")
    plan.add_argument("--unit", "-u", type=int, required=True, metavar="SLOT", help="slot")
    plan.add_argument("--transport", choices=["pty", "socket"], default="pty")

    rep = sub.add_parser("report", help="write the line's yield report as one HTML file")
    rep.add_argument("--db", help="line database URL (default: $ATE_DB or ./ate-state/ate.db)")
    rep.add_argument("--since", metavar="ISO", help="runs started at or after this time")
    rep.add_argument("--until", metavar="ISO", help="runs started before this time")
    rep.add_argument("--out", "-o", type=Path, default=Path("ate-report.html"))

    from ate.cli.store_cmds import add_parsers

    add_parsers(sub)  # unit, export, audit verify
    from ate.cli.user_cmd import add_parser as add_user_parser

    add_user_parser(sub)

    from ate.cli.approval_cmd import add_parser as add_approval_parser

    add_approval_parser(sub)
    from ate.cli.station_cmd import add_parser as add_station

    add_station(sub)
    from ate.cli.nightly_cmd import add_parser as add_nightly

    add_nightly(sub)
    from ate.cli.rf_cmd import add_parser as add_rf

    add_rf(sub)

    val = sub.add_parser("validate", help="check sequence, fixture and profile files")
    val.add_argument("files", nargs="+", metavar="FILE")
    val.add_argument("--variant", help="resolve sequences' parameters for this variant")
    val.add_argument(
        "--show", action="store_true", help="print each sequence as it runs (parameters resolved)"
    )

    schema = sub.add_parser("schema", help="print the JSON Schema of a sequence or fixture")
    schema.add_argument(
        "kind",
        nargs="?",
        default="sequence",
        choices=["sequence", "fixture", "profile", "station"],
    )

    sim = sub.add_parser("sim", help="run simulated hardware in the foreground")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="WHAT")
    simfix = sim_sub.add_parser("fixture", help="a simulated fixture: controller + DUTs")
    simfix.add_argument("file", help="fixture YAML with a simulation section")
    simfix.add_argument("--transport", choices=["pty", "socket"], default="pty")
    simrom = sim_sub.add_parser(
        "rom", help="one simulated chip in its ROM download mode, for esptool/espefuse"
    )
    simrom.add_argument("--port", type=int, default=5555, help="TCP port on 127.0.0.1")
    simrom.add_argument("--chip", default="esp32s3", choices=["esp32s3", "esp32c3"])
    simrom.add_argument("--state-dir", help="keep this unit's flash and eFuses here")
    simrom.add_argument(
        "--wire-time", action="store_true", help="throttle the link to the loader's baud rate"
    )
    simrom.add_argument(
        "--rfc2217", action="store_true", help="serve rfc2217:// so DTR/RTS resets are seen"
    )
    return p


def _common_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", "-o", type=Path, help="folder for records, logs and JUnit (default: a new folder)"
    )
    p.add_argument("--station", default=None, help="station name (default: host name)")
    p.add_argument("--operator", default="unknown", help="operator id, as signed in")
    p.add_argument("--no-live", action="store_true", help="no live table (plain lines)")
    p.add_argument(
        "--transport",
        choices=["pty", "socket"],
        default="pty",
        help="how a simulated fixture's twin serves its ports",
    )
    p.add_argument(
        "--state",
        default=os.environ.get("ATE_STATE", "ate-state"),
        help="the station's state folder: spool and provisioning journal, default records "
        "database; keep it across runs (default: $ATE_STATE, else ./ate-state)",
    )
    p.add_argument("--lot", help="production lot for cloud outputs (default: lot-YYYYMMDD)")
    p.add_argument(
        "--max-retests",
        type=int,
        default=None,
        help="the line's retest policy: a unit already retested this many times is not "
        "tested again (default: no limit; a locked unit is never re-tested)",
    )
    p.add_argument(
        "--db",
        help="line database URL, e.g. postgresql://ate@db.line:5432/ate (default: $ATE_DB, "
        "else an SQLite file in the state folder)",
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "validate":
            from ate.cli.validate_cmd import run_validate

            return run_validate(args.files, variant=args.variant, show=args.show)
        if args.command == "station":
            from ate.cli.station_cmd import run_station

            return run_station(args)
        if args.command == "schema":
            from ate.cli.validate_cmd import run_schema

            return run_schema(args.kind)
        if args.command == "nightly":
            from ate.cli.nightly_cmd import run_nightly

            return run_nightly(args)
        if args.command == "rf":
            from ate.cli.rf_cmd import run_golden_check

            return run_golden_check(args)
        if args.command == "approval":
            from ate.cli.approval_cmd import run_approval

            return run_approval(args)
        if args.command == "user":
            from ate.cli.user_cmd import run_user

            return run_user(args)
        from ate.cli.store_cmds import default_db_url, dispatch

        code = dispatch(args)
        if code is not None:
            return code
        if args.command == "report":
            from ate.cli.report_cmd import run_report

            return run_report(args.db or default_db_url(), args.since, args.until, args.out)
        if args.command == "plan":
            from ate.cli.plan_cmd import run_plan

            return run_plan(args)
        if args.command == "sim" and args.sim_command == "rom":
            from ate.sim.rom.server import run_sim_rom

            return run_sim_rom(args.port, args.chip, args.state_dir, args.wire_time, args.rfc2217)
        if args.command == "sim":
            from ate.sim.serve import run_sim_fixture

            return run_sim_fixture(args.file, args.transport)
        from ate.cli.run_cmd import run_demo, run_panels

        if args.command == "demo":
            return run_demo(args)
        return run_panels(args)
    except InputError as exc:
        # Each command reports its own bad input; this is the net under all of them, so
        # that bad input is never a traceback.
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("ate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
