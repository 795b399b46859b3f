"""`ate approval add|list|revoke|digest`: what a station in production mode may run. An
engineer approves a sequence or profile by its content digest (ate/station/approvals.py)
in the line database, proving who they are with their PIN (read from the terminal or one
line of stdin, never argv); every approval and revocation goes to the audit log.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ate.cli.store_cmds import (
    EXIT_BAD_INPUT,
    EXIT_NO_DB,
    CommandFailed,
    _db_arg,
    default_db_url,
    open_writable,
    station_name,
)
from ate.cli.validate_cmd import file_kind
from ate.config.errors import InputError
from ate.station.approvals import KINDS, Content, Kind, content_of
from ate.store import Store, StoreError
from ate.store.api import InvariantViolation
from ate.ui.auth import AuthError, authenticate, may


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser("approval", help="sequences and profiles approved for production")
    what = top.add_subparsers(dest="approval_command", required=True, metavar="WHAT")
    add = what.add_parser("add", help="approve a sequence or profile file (engineer's PIN)")
    add.add_argument("file", type=Path)
    add.add_argument("--user", required=True, help="the approving engineer")
    add.add_argument("--note", default="", help="why (a change number, a deviation)")
    add.add_argument("--station", default=None, help="station named in the audit log")
    _db_arg(add)
    rev = what.add_parser("revoke", help="withdraw an approval (engineer's PIN)")
    rev.add_argument("kind", choices=KINDS)
    rev.add_argument("digest", help="the digest, or its first 12 or more hex digits")
    rev.add_argument("--user", required=True)
    rev.add_argument("--station", default=None)
    _db_arg(rev)
    lst = what.add_parser("list", help="every approval, in force or revoked")
    _db_arg(lst)
    dig = what.add_parser("digest", help="a file's content digest and its parts (no database)")
    dig.add_argument("file", type=Path)


def kind_of(path: Path) -> Kind:
    """A sequence file has a top-level `sequence:`, a profile `profile:`."""
    kind = file_kind(path)
    if kind == "sequence":
        return "sequence"
    if kind == "profile":
        return "profile"
    raise InputError(path, f"a {kind} file: only sequences and profiles are approved")


def _content(path: Path) -> Content:
    return content_of(kind_of(path), path)


def _describe(c: Content) -> str:
    parts = "\n".join(f"  {role:<14} {sha}" for role, sha in c.parts)
    return f"{c.kind} {c.name} ({c.file})\n  digest         {c.digest}\n{parts}"


def _read_pin() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("PIN: ")
    return sys.stdin.readline().rstrip("\r\n")


def _engineer(store: Store, station: str, user: str) -> str:
    row = authenticate(store, station, user, _read_pin(), via="cli")
    if not may(row.role, "engineer"):
        raise AuthError(f"{user} is {row.role}: approving for production needs engineer")
    return row.name


def run_approval(args: argparse.Namespace) -> int:
    try:
        if args.approval_command == "digest":
            print(_describe(_content(args.file)))
            return 0
        content = _content(args.file) if args.approval_command == "add" else None
        store = open_writable(args.db or default_db_url())
    except InputError as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CommandFailed as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return exc.code
    station = station_name(getattr(args, "station", None))
    try:
        if args.approval_command == "list":
            for row in store.approvals():
                state = (
                    f"revoked by {row.revoked_by} {row.revoked_at}"
                    if row.revoked_at
                    else "in force"
                )
                print(
                    f"{row.kind:<8} {row.digest[:12]}  {row.name:<28} {row.approved_by:<12} "
                    f"{row.approved_at}  {state}  {row.note}"
                )
            return 0
        by = _engineer(store, station, args.user)
        if content is not None:
            row = store.approval_add(
                content.kind, content.digest, content.name, content.file.name, by, args.note
            )
            store.audit_append(
                station,
                "approval",
                {
                    "act": "add",
                    "kind": row.kind,
                    "digest": row.digest,
                    "name": row.name,
                    "by": by,
                    "note": row.note,
                },
            )
            print(_describe(content))
            print(f"approved for production by {by}")
            return 0
        digest = _full_digest(store, args.kind, args.digest)
        row = store.approval_revoke(args.kind, digest, by)
        store.audit_append(
            station,
            "approval",
            {"act": "revoke", "kind": row.kind, "digest": row.digest, "name": row.name, "by": by},
        )
        print(f"{row.kind} {row.name} ({row.digest[:12]}) revoked by {by}")
        return 0
    except (AuthError, InvariantViolation) as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_NO_DB
    finally:
        store.close()


def _full_digest(store: Store, kind: str, given: str) -> str:
    given = given.strip().lower()
    if len(given) < 12 or any(ch not in "0123456789abcdef" for ch in given):
        raise InvariantViolation("a digest is 12 to 64 hex digits (see `ate approval list`)")
    found = [r.digest for r in store.approvals(kind) if r.digest.startswith(given)]
    if len(found) != 1:
        raise InvariantViolation(
            f"no {kind} approval starts with {given}" if not found else f"{given} is ambiguous"
        )
    return found[0]
