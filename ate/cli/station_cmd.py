"""`ate station --config FILE`: the long-running station daemon; `--print-unit` prints
the systemd unit shipped with the package. Exit 0 after SIGTERM, 2 for a bad station
file (one line, file:line:col), 3 when the configuration cannot run (CA, journal)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from importlib.resources import files
from pathlib import Path

EXIT_OK, EXIT_BAD_INPUT, EXIT_CANNOT_RUN = 0, 2, 3


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    st = sub.add_parser("station", help="run the station daemon (one loop per fixture)")
    st.add_argument("--config", "-c", help="station YAML")
    st.add_argument(
        "--print-unit", action="store_true", help="print the systemd unit file and exit"
    )
    st.add_argument(
        "--transport",
        choices=["pty", "socket"],
        default="pty",
        help="how simulated fixtures' twins serve their ports",
    )


def unit_text() -> str:
    return files("ate.station").joinpath("ate-station.service").read_text(encoding="utf-8")


def run_station(args: argparse.Namespace) -> int:
    if args.print_unit:
        sys.stdout.write(unit_text())
        return EXIT_OK
    if not args.config:
        print("ate station: --config STATION.yaml is required", file=sys.stderr)
        return EXIT_BAD_INPUT
    from ate.config.errors import InputError
    from ate.station.daemon import CannotStart, Station

    logging.getLogger("ate.station").setLevel(logging.INFO)
    try:
        station = Station(Path(args.config), transport=args.transport)
    except InputError as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return asyncio.run(station.run())
    except InputError as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CannotStart as exc:
        print(f"ate: station: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
