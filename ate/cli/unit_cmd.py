"""`ate unit ship|rma|scrap|revoke SERIAL`, `ate unit show SERIAL` and `ate unit revoked`:
units after the factory. A move is one store transaction with its audit entry; the moves
allowed are ate.model.prov_state's table. A refused move is one line naming the unit's
state and the moves allowed, exit 2.

Exit codes: 0 done, 1 no such unit, 2 a refused move or bad input, 3 the database cannot
be opened. May import ate.cli.store_cmds, ate.store and ate.pki.crl.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from ate.cli.store_cmds import (
    EXIT_BAD_INPUT,
    EXIT_NOT_FOUND,
    EXIT_OK,
    CommandFailed,
    open_writable,
    opened,
    run_unit,
    station_name,
)
from ate.model.prov_state import LIFECYCLE_EVENTS
from ate.records.unit_record import write_bytes_atomic
from ate.store.api import MoveRefused, RevokedCertificate, StoreError, StoreUnavailable

MOVES = tuple(e.value for e in LIFECYCLE_EVENTS)  # ship, rma, scrap, revoke
VERBS = (*MOVES, "show", "revoked")
FORMATS = ("json", "pem-list", "crl")


def add_arguments(unit: argparse.ArgumentParser) -> None:
    """The lifecycle arguments of `ate unit` (store_cmds adds the parser and --db)."""
    unit.add_argument(
        "key",
        nargs="?",
        metavar="SERIAL",
        help="the unit (serial or MAC) for ship, rma, scrap, revoke and show",
    )
    unit.add_argument("--reason", default="", help="why (kept in the audit log)")
    unit.add_argument("--user", help="who moves the unit (kept in the audit log); required")
    unit.add_argument("--station", help="station named in the audit log (default: this host)")
    unit.add_argument("--store", metavar="URL", help="the line database (same as --db)")
    unit.add_argument(
        "--format",
        choices=FORMATS,
        default="json",
        help="revoked: json (one object per certificate), pem-list (the certificates' PEM, "
        "as the line database holds them), crl (an X.509 CRL signed with --ca-cert/--ca-key)",
    )
    unit.add_argument("--ca-cert", type=Path, help="revoked --format crl: the issuing CA's PEM")
    unit.add_argument("--ca-key", type=Path, help="revoked --format crl: its key (PEM file)")
    unit.add_argument("--out", "-o", type=Path, help="revoked: write FILE atomically")


def run(args: argparse.Namespace, url: str) -> int:
    """`ate unit VERB [SERIAL]`, or the history of `ate unit SERIAL|MAC`."""
    verb = args.verb
    if verb not in VERBS:  # `ate unit SERIAL|MAC`: the whole history, as before
        if args.key is not None:
            raise CommandFailed(
                f"unknown unit command {verb!r}; use {', '.join(VERBS)} or a serial/MAC alone",
                EXIT_BAD_INPUT,
            )
        return run_unit(url, verb)
    if verb == "revoked":
        return _revoked(url, args)
    if args.key is None:
        raise CommandFailed(f"ate unit {verb} needs the unit's SERIAL (or MAC)", EXIT_BAD_INPUT)
    if verb == "show":
        return run_unit(url, args.key)
    return _move(url, verb, args)


def _move(url: str, verb: str, args: argparse.Namespace) -> int:
    user = (args.user or "").strip()
    if not user:
        raise CommandFailed(f"ate unit {verb} needs --user NAME (who moves it)", EXIT_BAD_INPUT)
    store = open_writable(url)
    try:
        move = store.move_unit(
            args.key, verb, station=station_name(args.station), user=user, reason=args.reason
        )
    except MoveRefused as exc:
        raise CommandFailed(str(exc), EXIT_BAD_INPUT) from None
    except StoreUnavailable as exc:
        raise CommandFailed(f"line database unreachable: {exc}", 3) from None
    except StoreError as exc:
        code = EXIT_NOT_FOUND if str(exc).startswith("no unit with") else EXIT_BAD_INPUT
        raise CommandFailed(str(exc), code) from None
    finally:
        store.close()
    print(
        f"unit {move.chip_id} (serial {move.serial or '-'}): {move.before} -> {move.after}"
        f" (audit entry {move.audit_seq})"
    )
    return EXIT_OK


def _revoked(url: str, args: argparse.Namespace) -> int:
    with opened(url) as store:
        rows = store.revoked_certificates()
        pems = (
            {c.fingerprint: c.pem for c in store.certificates() if c.pem}
            if args.format == "pem-list"
            else {}
        )
    if args.format == "json":
        data = (json.dumps([_as_json(r) for r in rows], indent=2) + "\n").encode()
    elif args.format == "pem-list":
        data = _pem_list(rows, pems)
    else:
        data = _crl(rows, args.ca_cert, args.ca_key)
    if args.out is not None:
        write_bytes_atomic(args.out, data)
        print(f"{len(rows)} revoked certificate(s) written to {args.out}")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


def _as_json(r: RevokedCertificate) -> dict[str, Any]:
    return {
        "fingerprint": r.fingerprint,
        "cert_serial": r.cert_serial,
        "serial": r.serial,
        "chip_id": r.chip_id,
        "revoked_at": r.revoked_at,
        "state": r.state,
        "reason": r.reason,
        "by": r.by_user,
    }


def _pem_list(rows: list[RevokedCertificate], pems: dict[str, str]) -> bytes:
    """The revoked certificates' PEM, as the line store holds them (the provisioning
    flow records each certificate there when it is issued)."""
    missing = [r.fingerprint for r in rows if r.fingerprint not in pems]
    if missing:
        print(
            f"ate: {len(missing)} revoked certificate(s) have no PEM in the line database "
            f"(recorded from unit records only, or before ate kept them): {', '.join(missing)}",
            file=sys.stderr,
        )
    return "".join(pems[r.fingerprint] for r in rows if r.fingerprint in pems).encode()


def _crl(rows: list[RevokedCertificate], cert: Path | None, key: Path | None) -> bytes:
    from cryptography.hazmat.primitives import serialization

    from ate.pki.crl import CrlError, Revoked, build_crl, load_file_ca

    if cert is None or key is None:
        raise CommandFailed(
            "--format crl signs with the file CA: give --ca-cert and --ca-key", EXIT_BAD_INPUT
        )
    try:
        ca_key, ca_cert = load_file_ca(cert, key)
    except CrlError as exc:
        raise CommandFailed(str(exc), EXIT_BAD_INPUT) from None
    revoked = [Revoked(r.cert_serial, r.revoked_at, r.state == "scrapped") for r in rows]
    crl = build_crl(ca_key, ca_cert, revoked, now=dt.datetime.now(dt.UTC))
    return crl.public_bytes(serialization.Encoding.PEM)
