"""`ate user add NAME --role R`: who may sign in at the operator's page. The PIN is read
from the terminal (twice) or one line of stdin, never from the command line (argv is
visible to every process and lands in shell history).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from ate.cli.store_cmds import (
    EXIT_BAD_INPUT,
    CommandFailed,
    _db_arg,
    default_db_url,
    open_writable,
    station_name,
)
from ate.store.api import InvariantViolation
from ate.ui.auth import ROLES, AuthError, add_user


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="people who may sign in at the operator's page")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="WHAT")
    add = user_sub.add_parser("add", help="add a user; the PIN is read from stdin or a prompt")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--station", default=None, help="station named in the audit log")
    add.add_argument(
        "--badge",
        action="store_true",
        help="also read a badge id (scan it at the prompt, or a second line of stdin)",
    )
    _db_arg(add)


def _read_pin() -> str:
    if sys.stdin.isatty():
        pin = getpass.getpass("PIN: ")
        if getpass.getpass("PIN again: ") != pin:
            raise AuthError("the two PINs differ")
        return pin
    return sys.stdin.readline().rstrip("\r\n")


def _read_badge() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Scan the badge: ")
    return sys.stdin.readline().rstrip("\r\n")


def run_user(args: argparse.Namespace) -> int:
    station = station_name(args.station)
    try:
        pin = _read_pin()
        badge = _read_badge() if args.badge else None
        store = open_writable(args.db or default_db_url())
    except AuthError as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CommandFailed as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return exc.code
    try:
        add_user(
            store, args.name, args.role, pin, station=station, by=getpass.getuser(), badge=badge
        )
    except (AuthError, InvariantViolation) as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        store.close()
    print(f"user {args.name} added as {args.role}")
    return 0
