"""The SQL both backends run: migrations, ingest, the line-wide invariants, the audit
chain and the queries. A backend (sqlite.py, postgres.py) supplies the connection, its
transactions, a lock per name and how its errors read; everything else is here.

SQL is written once with `?` placeholders (PostgreSQL gets `%s`). May import stdlib and
ate.store.api/audit/ingest only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache, partial
from importlib import resources
from typing import Any, Literal, TypeVar

from ate.model.prov_state import (
    FACTORY,
    FINAL,
    HOLDS_CERTIFICATE,
    LIFECYCLE_EVENTS,
    IllegalTransition,
    ProvState,
    apply,
)
from ate.model.prov_state import advance as advance_state
from ate.store import audit
from ate.store.api import (
    GENESIS_HASH,
    ApprovalRow,
    AuditEntry,
    AuditSigner,
    CertificateRow,
    InvariantViolation,
    IssuancePolicy,
    IssuanceRefused,
    MeasurementDetail,
    MeasurementSeries,
    MoveRefused,
    ProvisioningEvent,
    ProvUnit,
    ReportInput,
    RevokedCertificate,
    RunDetail,
    RunRow,
    SchemaTooNew,
    StepDetail,
    StoreError,
    StoreUnavailable,
    UnitHistory,
    UnitMove,
    UserRow,
    normalise_mac,
    normalise_time,
    now_iso,
    prov_rank,
    prov_state,
)
from ate.store.ingest import RecordRows, rows_from_record

T = TypeVar("T")
Mode = Literal["write", "snapshot", "read"]
ErrorKind = Literal["integrity", "retry", "unavailable"]

PAGE = 5000  # rows per query when runs() pages through a window

# -- migrations ---------------------------------------------------------------------------------

# 0001_name.sql runs on both backends; 0006_name.sqlite.sql with 0006_name.postgresql.sql
# are one migration written twice, where the two cannot share SQL (altering a CHECK).
_MIGRATION_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)(?:\.(sqlite|postgresql))?\.sql")
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]
    backend: str | None = None  # None: portable SQL for both


def split_sql(text: str) -> tuple[str, ...]:
    """Statements of a migration file: '--' comments dropped, split on ';'."""
    lines = [line.split("--", 1)[0] for line in text.splitlines()]
    return tuple(s.strip() for s in "\n".join(lines).split(";") if s.strip())


@cache
def all_migrations() -> tuple[Migration, ...]:
    """Every migration file shipped in ate/store/migrations, by version then backend."""
    found: list[Migration] = []
    for item in (resources.files("ate.store") / "migrations").iterdir():
        m = _MIGRATION_NAME.fullmatch(item.name)
        if m:
            text = item.read_text("utf-8")
            found.append(Migration(int(m[1]), m[2].replace("_", " "), split_sql(text), m[3]))
    found.sort(key=lambda mig: (mig.version, mig.backend or ""))
    versions = sorted({mig.version for mig in found})
    if versions != list(range(1, len(versions) + 1)):
        raise StoreError("the store's migration files are not numbered 1, 2, 3...: reinstall ate")
    for v in versions:
        forms = {mig.backend for mig in found if mig.version == v}
        if forms != {None} and forms != set(BACKENDS):
            raise StoreError(
                f"the store's migration {v:04d} is neither one portable file nor one per "
                "backend (sqlite, postgresql): reinstall ate"
            )
    return tuple(found)


def migrations(backend: str = "sqlite") -> tuple[Migration, ...]:
    """The migrations `backend` runs, in order: one per version."""
    return tuple(mig for mig in all_migrations() if mig.backend in (None, backend))


def known_version() -> int:
    """The schema version this ate creates and understands."""
    return migrations()[-1].version


_CREATE_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
    "applied_at TEXT NOT NULL, description TEXT NOT NULL)"
)

# -- a transaction's cursor ---------------------------------------------------------------------


@cache
def _pg_sql(text: str) -> str:
    return text.replace("?", "%s")


class Tx:
    """A cursor inside one transaction, with `?` placeholders on both backends."""

    __slots__ = ("_cur", "_pg")

    def __init__(self, cur: Any, *, pg: bool) -> None:
        self._cur = cur
        self._pg = pg

    def run(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Execute; the number of rows changed."""
        self._cur.execute(_pg_sql(sql) if self._pg else sql, tuple(params))
        return int(self._cur.rowcount)

    def many(self, sql: str, rows: list[Any]) -> None:
        if rows:
            self._cur.executemany(_pg_sql(sql) if self._pg else sql, rows)

    def one(self, sql: str, params: Iterable[Any] = ()) -> Any:
        self._cur.execute(_pg_sql(sql) if self._pg else sql, tuple(params))
        return self._cur.fetchone()

    def all(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        self._cur.execute(_pg_sql(sql) if self._pg else sql, tuple(params))
        return list(self._cur.fetchall())


class _Rollback(Exception):
    """Raised inside a transaction to undo it and return `value`."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


def chip_key(chip_id: str) -> str:
    """A MAC in any common form as stored (aa:bb:cc:dd:ee:ff); StoreError otherwise."""
    mac = normalise_mac(chip_id) if isinstance(chip_id, str) else None
    if mac is None:
        raise StoreError(f"chip id {chip_id!r} is not a MAC address; use aa:bb:cc:dd:ee:ff")
    return mac


# -- the store -------------------------------------------------------------------------------


class SqlStore:
    """The store over one DB-API connection; subclasses supply the backend hooks."""

    backend = ""
    # How report_input joins runs to measurements; SQLite's CROSS JOIN keeps the runs
    # (read in time order from their index) as the outer loop, which saves a sort.
    _join_in_order = "JOIN"

    def __init__(self, url: str) -> None:
        self.url = url  # already redacted
        self._lock = threading.RLock()

    # -- backend hooks ------------------------------------------------------------------

    def _tx(self, mode: Mode) -> AbstractContextManager[Tx]:
        """ "write": serialised with other writers; "snapshot": one consistent read view
        for several queries; "read": single statements, no transaction."""
        raise NotImplementedError

    def _serialise(self, tx: Tx, name: str) -> None:
        """Hold a lock on `name` until the transaction ends (no-op where writers are
        serialised anyway)."""

    def _classify(self, exc: BaseException) -> ErrorKind | None:
        raise NotImplementedError

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        raise NotImplementedError

    def _has_table(self, tx: Tx, name: str) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running a transaction ----------------------------------------------------------------

    def _transact(
        self,
        mode: Mode,
        fn: Callable[[Tx], T],
        *,
        what: str,
        on_integrity: Callable[[], StoreError] | None = None,
    ) -> T:
        with self._lock:
            for attempt in range(3):
                try:
                    with self._tx(mode) as tx:
                        return fn(tx)
                except _Rollback as rb:
                    return rb.value  # type: ignore[no-any-return]
                except StoreError:
                    raise
                except Exception as exc:
                    kind = self._classify(exc)
                    if kind == "integrity":
                        if on_integrity is not None:
                            raise on_integrity() from None
                        raise StoreError(
                            f"the database refused to {what}: {_first_line(exc)}"
                        ) from None
                    if kind == "retry" and attempt < 2:
                        continue  # a deadlock or serialisation failure: run it again
                    if kind in ("retry", "unavailable"):
                        raise self._unavailable(exc) from None
                    raise StoreError(f"could not {what}: {_first_line(exc)}") from None
            raise AssertionError("unreachable")

    # -- schema --------------------------------------------------------------------------------

    def _version(self, tx: Tx) -> int:
        if not self._has_table(tx, "schema_migrations"):
            return 0
        row = tx.one("SELECT MAX(version) FROM schema_migrations")
        return int(row[0]) if row and row[0] is not None else 0

    def schema_version(self) -> int:
        return self._transact("read", self._version, what="read the schema version")

    def _too_new(self, version: int) -> SchemaTooNew:
        return SchemaTooNew(
            f"{self.url}: database schema is version {version}, this ate knows up to "
            f"{known_version()}; upgrade ate"
        )

    def migrate(self) -> list[int]:
        """Apply pending migrations in one transaction; the versions applied."""

        def apply(tx: Tx) -> list[int]:
            self._serialise(tx, "ate.store.migrate")
            tx.run(_CREATE_MIGRATIONS)
            current = self._version(tx)
            if current > known_version():
                raise self._too_new(current)
            done: list[int] = []
            for mig in migrations(self.backend):
                if mig.version <= current:
                    continue
                for statement in mig.statements:
                    tx.run(statement)
                tx.run(
                    "INSERT INTO schema_migrations (version, applied_at, description) "
                    "VALUES (?, ?, ?)",
                    (mig.version, now_iso(), mig.description),
                )
                done.append(mig.version)
            return done

        return self._transact("write", apply, what="migrate the schema")

    def _check_schema(self, migrate: bool) -> None:
        """Called by a backend once connected."""
        if migrate:
            self.migrate()
            return
        version = self.schema_version()
        if version > known_version():
            raise self._too_new(version)
        if version < known_version():
            raise StoreError(
                f"{self.url}: database schema is version {version}, this ate needs "
                f"{known_version()}; open it with migrations enabled to upgrade it"
            )

    # -- ingest ---------------------------------------------------------------------------------

    def ingest(self, record: dict[str, Any]) -> bool:
        """Store one unit record in one transaction; True if new, False if its record_id
        was already stored (then nothing changes). InvariantViolation (nothing stored)
        when its serial or certificate belongs to another unit."""
        rows = rows_from_record(record)

        def fn(tx: Tx) -> bool:
            if not self._ingest(tx, rows):
                raise _Rollback(False)
            return True

        return self._transact(
            "write",
            fn,
            what=f"store record {rows.run_id}",
            on_integrity=lambda: self._explain([rows]),
        )

    def ingest_many(self, records: Iterable[dict[str, Any]]) -> list[bool]:
        """Store several records in one transaction (all or none); per record, True if new."""
        batch = [rows_from_record(r) for r in records]
        return self._transact(
            "write",
            lambda tx: [self._ingest(tx, rows) for rows in batch],
            what=f"store {len(batch)} records",
            on_integrity=lambda: self._explain(batch),
        )

    def _explain(self, batch: list[RecordRows]) -> StoreError:
        """After a unique-constraint failure: which invariant, in a sentence."""

        def find(tx: Tx) -> StoreError:
            for rows in batch:
                if rows.chip_id and rows.serial:
                    msg = _serial_conflict(tx, rows.chip_id, rows.serial)
                    if msg:
                        return InvariantViolation(f"record {rows.run_id}: {msg}")
                if rows.certificate:
                    msg = _cert_conflict(tx, rows.certificate)
                    if msg and msg != "same":
                        return InvariantViolation(f"record {rows.run_id}: {msg}")
            ids = ", ".join(r.run_id for r in batch[:3])
            return StoreError(f"the database refused record {ids}: a unique value clashed")

        return self._transact("read", find, what="explain a refused record")

    def _ingest(self, tx: Tx, r: RecordRows) -> bool:
        """The rows of one record; False when its run_id is already stored. The upserts
        before the run's own INSERT are idempotent, so a duplicate changes nothing."""
        at = r.started_at
        seen = (
            "first_seen = CASE WHEN excluded.first_seen < {t}.first_seen "
            "THEN excluded.first_seen ELSE {t}.first_seen END, "
            "last_seen = CASE WHEN excluded.last_seen > {t}.last_seen "
            "THEN excluded.last_seen ELSE {t}.last_seen END"
        )
        tx.run(
            "INSERT INTO stations (station, first_seen, last_seen) VALUES (?, ?, ?) "
            "ON CONFLICT (station) DO UPDATE SET " + seen.format(t="stations"),
            (r.station, at, at),
        )
        tx.run(
            "INSERT INTO fixtures (fixture, station, first_seen, last_seen) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (fixture) DO UPDATE SET station = CASE WHEN excluded.last_seen >= "
            "fixtures.last_seen THEN excluded.station ELSE fixtures.station END, "
            + seen.format(t="fixtures"),
            (r.fixture, r.station, at, at),
        )
        tx.run(
            "INSERT INTO operators (operator, first_seen, last_seen) VALUES (?, ?, ?) "
            "ON CONFLICT (operator) DO UPDATE SET " + seen.format(t="operators"),
            (r.operator, at, at),
        )
        if r.lot:
            tx.run(
                "INSERT INTO lots (lot, product, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (lot) DO NOTHING",
                (r.lot, r.product, at),
            )
        attempt = 0
        if r.chip_id:
            # Locks the unit's row (PostgreSQL) so runs of one unit number one at a time.
            tx.run(
                "INSERT INTO units (chip_id, chip, product, lot, prov_state, first_seen, "
                "last_seen, runs) VALUES (?, ?, ?, ?, 'new', ?, ?, 0) "
                "ON CONFLICT (chip_id) DO UPDATE SET chip = COALESCE(units.chip, excluded.chip), "
                "product = COALESCE(units.product, excluded.product), "
                "lot = COALESCE(units.lot, excluded.lot), " + seen.format(t="units"),
                (r.chip_id, r.chip, r.product, r.lot, at, at),
            )
            before = tx.one(
                "SELECT COUNT(*) FROM test_runs "
                "WHERE chip_id = ? AND (started_at, run_id) < (?, ?)",
                (r.chip_id, at, r.run_id),
            )
            attempt = 1 + int(before[0])
        inserted = tx.run(
            "INSERT INTO test_runs (run_id, chip_id, panel_id, station, fixture, slot, operator, "
            "lot, sequence, sequence_version, sequence_sha256, test_firmware_sha256, started_at, "
            "duration_s, verdict, reason, attempt, failing_step, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id) DO NOTHING",
            (
                r.run_id,
                r.chip_id,
                r.panel_id,
                r.station,
                r.fixture,
                r.slot,
                r.operator,
                r.lot,
                r.sequence,
                r.sequence_version,
                r.sequence_sha256,
                r.test_firmware_sha256,
                at,
                r.duration_s,
                r.verdict,
                r.reason,
                attempt,
                r.failing_step,
                r.record_json,
            ),
        )
        if inserted != 1:
            return False
        if r.chip_id:
            # A record that arrives late (a spool flushed after a later retest) still
            # numbers in time order: the unit's later runs move up by one.
            tx.run(
                "UPDATE test_runs SET attempt = attempt + 1 "
                "WHERE chip_id = ? AND (started_at, run_id) > (?, ?)",
                (r.chip_id, at, r.run_id),
            )
            tx.run("UPDATE units SET runs = runs + 1 WHERE chip_id = ?", (r.chip_id,))
        tx.many(
            "INSERT INTO steps (run_id, idx, name, type, verdict, reason, retries, started_s, "
            "duration_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            r.steps,
        )
        tx.many(
            "INSERT INTO measurements (run_id, step_idx, attempt, ord, name, value, text, unit, "
            "low, high, expect, verdict) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            r.measurements,
        )
        tx.many(
            "INSERT INTO provisioning_events (run_id, seq, chip_id, act, kind, status, detail, "
            "at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            r.events,
        )
        if r.chip_id:
            if r.serial:
                _claim(tx, r.chip_id, r.serial, f"record {r.run_id}: ")
            if r.certificate:
                _certify(tx, r.certificate, f"record {r.run_id}: ")
            if r.prov_state:
                _advance(tx, r.chip_id, r.prov_state)
        return True

    def has_record(self, record_id: str) -> bool:
        row = self._transact(
            "read",
            lambda tx: tx.one("SELECT 1 FROM test_runs WHERE run_id = ?", (record_id,)),
            what="look up a record",
        )
        return row is not None

    def record(self, record_id: str) -> dict[str, Any] | None:
        """The unit record as ingested, or None."""
        row = self._transact(
            "read",
            lambda tx: tx.one("SELECT record FROM test_runs WHERE run_id = ?", (record_id,)),
            what="read a record",
        )
        return None if row is None else dict(json.loads(row[0]))

    # -- line-wide invariants -------------------------------------------------------------------

    def claim_serial(self, chip_id: str, serial: str) -> None:
        """Bind `serial` to the unit, once on the whole line. Claiming the unit's own
        serial again is fine; InvariantViolation names the unit that holds it otherwise."""
        chip = chip_key(chip_id)
        if not isinstance(serial, str) or not serial:
            raise StoreError("a serial is a non-empty text")

        def fn(tx: Tx) -> None:
            _ensure_unit(tx, chip)
            _claim(tx, chip, serial, "")

        self._transact(
            "write",
            fn,
            what=f"claim serial {serial}",
            on_integrity=lambda: self._explain_serial(chip, serial),
        )

    def _explain_serial(self, chip: str, serial: str) -> StoreError:
        msg = self._transact(
            "read", lambda tx: _serial_conflict(tx, chip, serial), what="explain a refused serial"
        )
        return InvariantViolation(msg or f"serial {serial} could not be claimed for unit {chip}")

    def record_certificate(self, row: CertificateRow) -> None:
        """Record an issued certificate, once on the whole line (and claim its serial for
        the unit). The same row again is fine; InvariantViolation names the holder of a
        clashing fingerprint, unit or serial."""
        cert = CertificateRow(**{**row.__dict__, "chip_id": chip_key(row.chip_id)})

        def fn(tx: Tx) -> None:
            _ensure_unit(tx, cert.chip_id)
            _claim(tx, cert.chip_id, cert.serial, "")
            _certify(tx, cert, "")

        def explain() -> StoreError:
            def find(tx: Tx) -> str | None:
                return _serial_conflict(tx, cert.chip_id, cert.serial) or _cert_conflict(tx, cert)

            msg = self._transact("read", find, what="explain a refused certificate")
            return InvariantViolation(
                msg if msg and msg != "same" else f"certificate {cert.fingerprint} was refused"
            )

        self._transact(
            "write", fn, what=f"record certificate {cert.fingerprint}", on_integrity=explain
        )

    def advance(self, chip_id: str, state: str, *, strict: bool = False) -> str:
        """Move the unit's provisioning state forward to `state` (creating the unit);
        a state it already passed changes nothing. Returns the unit's state afterwards.
        With `strict`, a unit already past `state` is an InvariantViolation."""
        chip = chip_key(chip_id)
        prov_rank(state)

        def fn(tx: Tx) -> str:
            _ensure_unit(tx, chip)
            now = _advance(tx, chip, state)
            if strict and now != state:
                raise InvariantViolation(
                    f"unit {chip} is already {now}; its provisioning state never moves back "
                    f"to {state}"
                )
            return now

        return self._transact("write", fn, what=f"advance unit {chip}")

    # -- a unit's identity, read back, and the issuance guard ------------------------------

    def prov_unit(self, chip_id: str) -> ProvUnit | None:
        """The unit's serial, provisioning state and lot; None when the line never saw it."""
        chip = chip_key(chip_id)
        row = self._transact(
            "read",
            lambda tx: tx.one(
                "SELECT u.chip_id, u.serial, u.prov_state, u.lot, i.station FROM units u "
                "LEFT JOIN issuances i ON i.chip_id = u.chip_id WHERE u.chip_id = ?",
                (chip,),
            ),
            what=f"read unit {chip}",
        )
        return ProvUnit(*row) if row else None

    def prov_units(self, lot: str | None = None) -> list[ProvUnit]:
        """Every unit (of `lot`), by serial."""
        sql = (
            "SELECT u.chip_id, u.serial, u.prov_state, u.lot, i.station FROM units u "
            "LEFT JOIN issuances i ON i.chip_id = u.chip_id"
        )
        args: tuple[str, ...] = ()
        if lot is not None:
            sql, args = sql + " WHERE u.lot = ?", (lot,)
        rows = self._transact(
            "read",
            lambda tx: tx.all(sql + " ORDER BY u.serial, u.chip_id", args),
            what="read units",
        )
        return [ProvUnit(*r) for r in rows]

    def certificate(self, chip_id: str) -> CertificateRow | None:
        """The unit's certificate, with its PEM and key when the flow recorded it."""
        chip = chip_key(chip_id)
        row = self._transact(
            "read",
            lambda tx: tx.one(
                f"SELECT {_CERT_COLUMNS} FROM certificates WHERE chip_id = ?", (chip,)
            ),
            what=f"read the certificate of {chip}",
        )
        return CertificateRow(*row) if row else None

    def certificates(self, lot: str | None = None) -> list[CertificateRow]:
        """Every certificate (of the units of `lot`), by serial."""
        cols = ", ".join(f"c.{c.strip()}" for c in _CERT_COLUMNS.split(","))
        sql = f"SELECT {cols} FROM certificates c JOIN units u ON u.chip_id = c.chip_id"
        args: tuple[str, ...] = ()
        if lot is not None:
            sql, args = sql + " WHERE u.lot = ?", (lot,)
        rows = self._transact(
            "read", lambda tx: tx.all(sql + " ORDER BY c.serial", args), what="read certificates"
        )
        return [CertificateRow(*r) for r in rows]

    def claim_issuance(
        self, chip_id: str, *, station: str, lot: str, panel_id: str, tested: str
    ) -> None:
        """Before anything is signed or burned: this station provisions the unit, in `lot`,
        after its tests in `panel_id` ended `tested`. Another station's claim on the unit
        refuses it (InvariantViolation, audited): a unit is provisioned at one station,
        and a second one never gets as far as asking the CA."""
        chip = chip_key(chip_id)
        for what, value in (("station", station), ("lot", lot), ("panel", panel_id)):
            if not isinstance(value, str) or not value:
                raise StoreError(f"an issuance claim names its {what}")

        def fn(tx: Tx) -> str | None:
            # Claims and signatures one at a time line-wide: two stations claiming one unit,
            # or a quota's last certificate, are decided in order (PostgreSQL included).
            self._serialise(tx, "ate.store.issuance")
            _ensure_unit(tx, chip)
            held = tx.one("SELECT station, claimed_at FROM issuances WHERE chip_id = ?", (chip,))
            if held is not None and held[0] != station:
                why = (
                    f"unit {chip} is claimed for provisioning by station {held[0]} (since "
                    f"{held[1]}); a unit is provisioned at one station: finish it there, or "
                    "release the claim by hand"
                )
                self._refusal(tx, station, chip, lot, panel_id, why)
                return why
            now = now_iso()
            if held is None:
                tx.run(
                    "INSERT INTO issuances (chip_id, station, lot, panel_id, tested, claimed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (chip, station, lot, panel_id, tested, now),
                )
            else:
                tx.run(
                    "UPDATE issuances SET lot = ?, panel_id = ?, tested = ?, claimed_at = ? "
                    "WHERE chip_id = ?",
                    (lot, panel_id, tested, now, chip),
                )
            tx.run("UPDATE units SET lot = ? WHERE chip_id = ?", (lot, chip))
            return None

        why = self._transact("write", fn, what=f"claim the issuance for {chip}")
        if why is not None:
            raise InvariantViolation(why)

    def authorize_issue(
        self,
        chip_id: str,
        *,
        station: str,
        lot: str,
        panel_id: str,
        policy: IssuancePolicy,
        signer: AuditSigner | None = None,
    ) -> None:
        """Just before the CA signs: the unit is claimed by this station, in this lot and
        panel, its tests there PASSed, it holds no certificate, and the lot's quota and
        the station's hourly rate leave room. IssuanceRefused otherwise, with the refusal
        in the station's audit chain (kind "issue"). Signing the same unit again (the
        station stopped between signing and recording) counts once."""
        chip = chip_key(chip_id)

        def fn(tx: Tx) -> str | None:
            self._serialise(tx, "ate.store.issuance")
            why = _issue_refusal(tx, chip, station, lot, panel_id, policy)
            if why is not None:
                self._refusal(tx, station, chip, lot, panel_id, why, signer)
                return why
            tx.run(
                "UPDATE issuances SET signed_at = ? WHERE chip_id = ? AND signed_at IS NULL",
                (now_iso(), chip),
            )
            return None

        why = self._transact("write", fn, what=f"authorize the certificate of {chip}")
        if why is not None:
            raise IssuanceRefused(why)

    def _refusal(
        self,
        tx: Tx,
        station: str,
        chip: str,
        lot: str,
        panel_id: str,
        why: str,
        signer: AuditSigner | None = None,
    ) -> None:
        payload = {"chip_id": chip, "lot": lot, "panel_id": panel_id, "refused": why}
        self._audit_insert(tx, station, "issue", payload, signer)

    def move_unit(
        self,
        key: str,
        event: str,
        *,
        station: str,
        user: str,
        reason: str = "",
        signer: AuditSigner | None = None,
    ) -> UnitMove:
        """Move a unit (by serial or MAC) after the factory: ship, rma, scrap, revoke, as
        ate.model.prov_state's table allows. The move, the revocation of its certificate
        (revoke, or scrap of a unit that has one) and the audit entry are one transaction.
        MoveRefused (nothing changes) when the table has no such move; StoreError for a
        unit the line does not know."""
        ev = next((e for e in LIFECYCLE_EVENTS if e.value == event), None)
        if ev is None:
            raise StoreError(
                f"{event!r} is not a unit move; use {', '.join(e.value for e in LIFECYCLE_EVENTS)}"
            )
        if not isinstance(user, str) or not user.strip():
            raise StoreError("a unit move names who made it (a user)")
        if not isinstance(station, str) or not station:
            raise StoreError("an audit entry needs a station name")

        def fn(tx: Tx) -> UnitMove:
            unit = _find_unit(tx, key)
            if unit is None:
                raise StoreError(f"no unit with serial or MAC {key}")
            chip, serial, text = unit
            before = prov_state(text)
            try:
                after = apply(before, ev, f"{chip} (serial {serial or '-'})")
            except IllegalTransition as exc:
                raise MoveRefused(
                    str(exc), before.value, tuple(e.value for e in exc.allowed)
                ) from None
            # The UPDATE names the state read: the audit chain's lock serialises this
            # station's writers, not other stations', so a concurrent move makes it 0 rows.
            if not tx.run(
                "UPDATE units SET prov_state = ? WHERE chip_id = ? AND prov_state = ?",
                (after.value, chip, before.value),
            ):
                raise StoreError(f"unit {chip} was moved by someone else meanwhile; try again")
            revoked = None
            if after in FINAL and before in HOLDS_CERTIFICATE:
                revoked = _revoke(tx, chip, after, reason, user, station)
            entry = self._audit_insert(
                tx,
                station,
                f"unit.{ev.value}",
                {
                    "chip_id": chip,
                    "serial": serial,
                    "from": before.value,
                    "to": after.value,
                    "reason": reason,
                    "user": user,
                    "revoked_certificate": revoked,
                },
                signer,
            )
            return UnitMove(chip, serial, before.value, after.value, ev.value, reason, entry.seq)

        return self._transact("write", fn, what=f"move unit {key} ({event})")

    def revoked_certificates(self) -> list[RevokedCertificate]:
        """Every certificate the line no longer trusts, oldest revocation first."""

        def fn(tx: Tx) -> list[RevokedCertificate]:
            rows = tx.all(
                "SELECT fingerprint, cert_serial, serial, chip_id, state, reason, by_user, "
                "station, revoked_at FROM revocations ORDER BY revoked_at, fingerprint"
            )
            return [RevokedCertificate(*(str(v) for v in r)) for r in rows]

        return self._transact("read", fn, what="read the revoked certificates")

    def retest_allowed(self, chip_id: str, max_retests: int) -> tuple[bool, str]:
        """Whether the unit may be tested again: not when it is locked, nor when it has
        had `max_retests` retests already (every run of the unit after its first counts)."""
        chip = chip_key(chip_id)
        if isinstance(max_retests, bool) or not isinstance(max_retests, int) or max_retests < 0:
            raise StoreError(f"max_retests is a count of 0 or more, not {max_retests!r}")

        def fn(tx: Tx) -> tuple[bool, str]:
            unit = tx.one("SELECT prov_state, serial FROM units WHERE chip_id = ?", (chip,))
            if unit is None:
                return True, f"unit {chip} has not been tested on this line"
            if unit[0] == "locked":
                return False, (
                    f"unit {chip} is locked (serial {unit[1]}); a locked unit is never "
                    "re-tested into a new identity"
                )
            if unit[0] not in _FACTORY_STATES:
                return False, (
                    f"unit {chip} is {unit[0]} (serial {unit[1] or '-'}); a unit that left "
                    "the factory is never tested again"
                )
            tests = int(tx.one("SELECT COUNT(*) FROM test_runs WHERE chip_id = ?", (chip,))[0])
            if tests == 0:
                return True, f"unit {chip} has not been tested on this line"
            retests = tests - 1
            if retests >= max_retests:
                return False, (
                    f"unit {chip} has been tested {tests} times ({retests} retests); the line "
                    f"allows at most {max_retests} retests"
                )
            return True, f"retest {retests + 1} of at most {max_retests} for unit {chip}"

        return self._transact("snapshot", fn, what=f"check the retest policy for {chip}")

    # -- audit log ------------------------------------------------------------------------------

    def audit_append(
        self,
        station: str,
        kind: str,
        payload: dict[str, Any],
        signer: AuditSigner | None = None,
    ) -> AuditEntry:
        """Append one entry to the station's hash chain; concurrent appenders for one
        station are serialised, so seq has no gaps and no forks. With `signer` (the
        station's key) the entry's hash is signed and the key registered on first use;
        a station whose registered key differs is refused."""
        if not isinstance(station, str) or not station:
            raise StoreError("an audit entry needs a station name")
        audit.check_kind(kind)
        audit.canonical_payload(payload)  # refuse non-JSON before taking any lock

        def fn(tx: Tx) -> AuditEntry:
            return self._audit_insert(tx, station, kind, payload, signer)

        return self._transact("write", fn, what=f"append to the audit log of {station}")

    def _audit_insert(
        self,
        tx: Tx,
        station: str,
        kind: str,
        payload: dict[str, Any],
        signer: AuditSigner | None,
    ) -> AuditEntry:
        """Append one entry inside the caller's write transaction (see audit_append)."""
        self._serialise(tx, f"ate.store.audit:{station}")
        head = tx.one(
            "SELECT seq, hash FROM audit_log WHERE station = ? ORDER BY seq DESC LIMIT 1",
            (station,),
        )
        seq, prev = (int(head[0]) + 1, str(head[1])) if head else (1, GENESIS_HASH)
        entry = audit.make_entry(station, seq, now_iso(), kind, payload, prev)
        signature = None
        if signer is not None:
            self._register_key(tx, station, signer.public_hex)
            signature = signer.sign(entry.hash)
            entry = dataclasses.replace(entry, signature=signature)
        tx.run(
            "INSERT INTO audit_log (station, seq, at, kind, payload, prev_hash, hash, "
            "signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.station,
                entry.seq,
                entry.at,
                entry.kind,
                audit.canonical_payload(entry.payload),
                entry.prev_hash,
                entry.hash,
                signature,
            ),
        )
        return entry

    def _register_key(self, tx: Tx, station: str, public_key: str) -> None:
        row = tx.one("SELECT public_key FROM audit_keys WHERE station = ?", (station,))
        if row is None:
            tx.run(
                "INSERT INTO audit_keys (station, public_key, registered_at) VALUES (?, ?, ?)",
                (station, public_key, now_iso()),
            )
        elif row[0] != public_key:
            raise StoreError(
                f"station {station!r} signs its audit log with another key than the one "
                "registered in the line database; a station's key is never replaced silently "
                "(restore its state folder, or register the new key by hand)"
            )

    def audit_keys(self) -> dict[str, str]:
        """Each station's registered audit public key (hex)."""
        rows = self._transact(
            "read",
            lambda tx: tx.all("SELECT station, public_key FROM audit_keys", ()),
            what="read audit keys",
        )
        return {str(r[0]): str(r[1]) for r in rows}

    def audit_entries_checked(
        self, station: str | None = None
    ) -> tuple[list[AuditEntry], list[str]]:
        """Like audit_entries, but a damaged row (bad JSON, a wrong type, a missing table)
        is a finding, one line each, instead of an exception: for `ate audit verify`."""
        sql = "SELECT station, seq, at, kind, payload, prev_hash, hash, signature FROM audit_log"
        params: tuple[str, ...] = ()
        if station is not None:
            sql += " WHERE station = ?"
            params = (station,)
        try:
            rows = self._transact(
                "read", lambda tx: tx.all(sql + " ORDER BY station, seq", params), what="read"
            )
        except StoreError as exc:
            return [], [f"audit log unreadable: {str(exc).splitlines()[0]}"]
        entries: list[AuditEntry] = []
        findings: list[str] = []
        for r in rows:
            where = f"audit log row (station {r[0]!r}, seq {r[1]!r})"
            problem = audit.row_problem(r)
            if problem is not None:
                findings.append(f"{where}: damaged: {problem}")
                continue
            entries.append(
                AuditEntry(
                    str(r[0]), int(r[1]), str(r[2]), str(r[3]), json.loads(r[4]), r[5], r[6], r[7]
                )
            )
        return entries, findings

    def audit_entries(self, station: str | None = None) -> list[AuditEntry]:
        """Every entry (or one station's), by station then seq; check with verify_chain."""
        sql = "SELECT station, seq, at, kind, payload, prev_hash, hash, signature FROM audit_log"
        params: tuple[str, ...] = ()
        if station is not None:
            sql += " WHERE station = ?"
            params = (station,)
        rows = self._transact(
            "read", lambda tx: tx.all(sql + " ORDER BY station, seq", params), what="read audit"
        )
        return [
            AuditEntry(
                str(r[0]), int(r[1]), str(r[2]), str(r[3]), json.loads(r[4]), r[5], r[6], r[7]
            )
            for r in rows
        ]

    # -- sign-in --------------------------------------------------------------------------------

    def user_add(self, name: str, role: str, pin_hash: str, badge_key: str | None = None) -> None:
        """A new user; one that exists already (or a badge already given) is refused
        (InvariantViolation), never overwritten: changing a role is an admin's audited act."""

        def fn(tx: Tx) -> None:
            if tx.one("SELECT 1 FROM operators_auth WHERE name = ?", (name,)):
                raise InvariantViolation(f"user {name!r} exists already")
            if badge_key and tx.one(
                "SELECT 1 FROM operators_auth WHERE badge_key = ?", (badge_key,)
            ):
                raise InvariantViolation("that badge belongs to another user")
            tx.run(
                "INSERT INTO operators_auth (name, role, pin_hash, badge_key, created_at, "
                "disabled) VALUES (?, ?, ?, ?, ?, 0)",
                (name, role, pin_hash, badge_key, now_iso()),
            )

        self._transact("write", fn, what=f"add user {name}")

    def _user_where(self, column: str, value: str) -> UserRow | None:
        row = self._transact("read", lambda tx: _user_row(tx, column, value), what="read a user")
        return row

    def user_get(self, name: str) -> UserRow | None:
        return self._user_where("name", name)

    def user_by_badge(self, badge_key: str) -> UserRow | None:
        return self._user_where("badge_key", badge_key)

    def user_signin_failed(self, name: str, lock_after: int, lock_until: str) -> UserRow | None:
        def fn(tx: Tx) -> UserRow | None:
            tx.run(
                "UPDATE operators_auth SET failed_signins = failed_signins + 1 WHERE name = ?",
                (name,),
            )
            tx.run(
                "UPDATE operators_auth SET locked_until = ?, failed_signins = 0 "
                "WHERE name = ? AND failed_signins >= ?",
                (lock_until, name, lock_after),
            )
            return _user_row(tx, "name", name)

        return self._transact("write", fn, what=f"count a failed sign-in of {name}")

    def user_signin_ok(self, name: str) -> None:
        self._transact(
            "write",
            lambda tx: tx.run(
                "UPDATE operators_auth SET failed_signins = 0, locked_until = NULL WHERE name = ?",
                (name,),
            ),
            what=f"record a sign-in of {name}",
        )

    # -- what production may run ------------------------------------------------------------

    def approval_add(
        self, kind: str, digest: str, name: str, file: str, by: str, note: str = ""
    ) -> ApprovalRow:
        """Approve `digest` for production; approving one already in force is refused
        (InvariantViolation), one revoked before is approved again with the new approver."""

        def fn(tx: Tx) -> ApprovalRow:
            old = _approval_row(tx, kind, digest)
            if old is not None and old.in_force:
                raise InvariantViolation(
                    f"{kind} {digest[:12]} was approved already by {old.approved_by} "
                    f"at {old.approved_at}"
                )
            if old is not None:
                tx.run("DELETE FROM approvals WHERE kind = ? AND digest = ?", (kind, digest))
            tx.run(
                "INSERT INTO approvals (kind, digest, name, file, approved_by, approved_at, "
                "note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind, digest, name, file, by, now_iso(), note),
            )
            row = _approval_row(tx, kind, digest)
            assert row is not None
            return row

        return self._transact("write", fn, what=f"approve {kind} {digest[:12]}")

    def approval_revoke(self, kind: str, digest: str, by: str) -> ApprovalRow:
        def fn(tx: Tx) -> ApprovalRow:
            old = _approval_row(tx, kind, digest)
            if old is None or not old.in_force:
                raise InvariantViolation(f"{kind} {digest[:12]} is not approved")
            tx.run(
                "UPDATE approvals SET revoked_by = ?, revoked_at = ? WHERE kind = ? AND digest = ?",
                (by, now_iso(), kind, digest),
            )
            row = _approval_row(tx, kind, digest)
            assert row is not None
            return row

        return self._transact("write", fn, what=f"revoke {kind} {digest[:12]}")

    def approval_get(self, kind: str, digest: str) -> ApprovalRow | None:
        return self._transact(
            "read", lambda tx: _approval_row(tx, kind, digest), what="read an approval"
        )

    def approvals(self, kind: str | None = None) -> list[ApprovalRow]:
        where, params = ("WHERE kind = ? ", (kind,)) if kind else ("", ())
        rows = self._transact(
            "read",
            lambda tx: tx.all(
                f"SELECT {_APPROVAL_COLS} FROM approvals {where}ORDER BY approved_at, digest",
                params,
            ),
            what="list approvals",
        )
        return [ApprovalRow(*r) for r in rows]

    # -- queries ----------------------------------------------------------------------------------

    def unit_history(self, key: str) -> UnitHistory | None:
        """Everything about one unit, by serial or MAC (any case; ':' '-' or no separators)."""
        mac = normalise_mac(key) if isinstance(key, str) else None
        return self._transact(
            "snapshot", lambda tx: _history(tx, mac, key), what=f"read the history of {key}"
        )

    def runs(self, since: str | None, until: str | None) -> Iterator[dict[str, Any]]:
        """One flat row per run in [since, until) (ISO times, until exclusive; None =
        open), in time order, for CSV/JSONL export. Pages through the window, so a long
        export holds no transaction open."""
        where, params = _window(since, until)

        def pages() -> Iterator[dict[str, Any]]:
            after: tuple[str, str] | None = None
            while True:
                cond, args = list(where), list(params)
                if after is not None:
                    cond.append("(r.started_at, r.run_id) > (?, ?)")
                    args.extend(after)
                sql = (
                    _EXPORT_SELECT
                    + (" WHERE " + " AND ".join(cond) if cond else "")
                    + f" ORDER BY r.started_at, r.run_id LIMIT {PAGE}"
                )
                rows = self._transact(
                    "read", partial(_fetch_all, sql=sql, args=args), what="export"
                )
                for row in rows:
                    yield dict(zip(EXPORT_COLUMNS, row, strict=True))
                if len(rows) < PAGE:
                    return
                after = (rows[-1][1], rows[-1][0])

        return pages()

    def report_input(self, since: str | None, until: str | None) -> ReportInput:
        """Runs and numeric measurement series in [since, until): two queries, one
        snapshot. A series is keyed by (step, measurement, unit); its limits are the
        latest run's, and per value it carries the limits and sequence version of its run."""
        where, params = _window(since, until)
        cond = (" WHERE " + " AND ".join(where)) if where else ""

        def fn(tx: Tx) -> ReportInput:
            runs = [
                RunRow(*row)
                for row in tx.all(
                    "SELECT r.run_id, r.chip_id, u.serial, r.station, r.fixture, r.slot, "
                    "r.operator, r.started_at, r.verdict, r.attempt, r.failing_step, "
                    "r.duration_s FROM test_runs r LEFT JOIN units u ON u.chip_id = r.chip_id"
                    + cond
                    + " ORDER BY r.started_at, r.run_id",
                    params,
                )
            ]
            mcond = " AND ".join([*where, "m.value IS NOT NULL"])
            # The limit history is derived, not stored twice: every measurement row keeps
            # the limits it was judged against and its run the sequence version.
            rows: dict[tuple[str, str, str], list[tuple[float, Any, Any, str]]] = {}
            types: dict[tuple[str, str, str], str] = {}
            for step, name, unit, low, high, value, version, stype in tx.all(
                "SELECT s.name, m.name, m.unit, m.low, m.high, m.value, r.sequence_version, "
                f"s.type FROM test_runs r {self._join_in_order} measurements m "
                "ON m.run_id = r.run_id "
                # only the attempt that decided the step: a unit counts once in Cpk
                "JOIN steps s ON s.run_id = m.run_id AND s.idx = m.step_idx "
                "AND m.attempt = s.retries WHERE "
                + mcond
                + " ORDER BY r.started_at, r.run_id, m.step_idx, m.attempt, m.ord",
                params,
            ):
                key = (step, name, unit)
                rows.setdefault(key, []).append((value, low, high, str(version)))
                types[key] = str(stype)
            rcond = " AND ".join([*where, "s.verdict = 'PASS'", "s.retries > 0"])
            retried = {
                str(name): int(n)
                for name, n in tx.all(
                    "SELECT s.name, COUNT(*) FROM test_runs r JOIN steps s ON s.run_id = "
                    f"r.run_id WHERE {rcond} GROUP BY s.name",
                    params,
                )
            }
            return ReportInput(
                since=params[0] if since is not None else None,
                until=params[-1] if until is not None else None,
                runs=runs,
                series=[
                    MeasurementSeries(
                        key[0],
                        key[1],
                        key[2],
                        got[-1][1],  # the latest run's limits
                        got[-1][2],
                        [g[0] for g in got],
                        lows=[g[1] for g in got],
                        highs=[g[2] for g in got],
                        versions=[g[3] for g in got],
                        step_type=types[key],
                    )
                    for key, got in rows.items()
                ],
                passed_on_retry=retried,
            )

        return self._transact("snapshot", fn, what="read the report input")


# -- the invariants, inside a write transaction ------------------------------------------------


def _ensure_unit(tx: Tx, chip: str) -> None:
    now = now_iso()
    tx.run(
        "INSERT INTO units (chip_id, prov_state, first_seen, last_seen, runs) "
        "VALUES (?, 'new', ?, ?, 0) ON CONFLICT (chip_id) DO NOTHING",
        (chip, now, now),
    )


def _serial_conflict(tx: Tx, chip: str, serial: str) -> str | None:
    holder = tx.one("SELECT chip_id FROM units WHERE serial = ?", (serial,))
    if holder is not None and holder[0] != chip:
        return f"serial {serial} already belongs to unit {holder[0]}; a serial is issued once"
    own = tx.one("SELECT serial FROM units WHERE chip_id = ?", (chip,))
    if own is not None and own[0] is not None and own[0] != serial:
        return f"unit {chip} already has serial {own[0]}, not {serial}; a unit gets one serial"
    return None


def _claim(tx: Tx, chip: str, serial: str, prefix: str) -> None:
    msg = _serial_conflict(tx, chip, serial)
    if msg:
        raise InvariantViolation(prefix + msg)
    tx.run("UPDATE units SET serial = ? WHERE chip_id = ? AND serial IS NULL", (serial, chip))
    # Read back: a concurrent claim for this unit may have won the row (PostgreSQL).
    own = tx.one("SELECT serial FROM units WHERE chip_id = ?", (chip,))
    if own is None or own[0] != serial:
        held = own[0] if own else None
        raise InvariantViolation(
            f"{prefix}unit {chip} already has serial {held}, not {serial}; a unit gets one serial"
        )


def _cert_conflict(tx: Tx, cert: CertificateRow) -> str | None:
    """A sentence when `cert` clashes with a recorded certificate; "same" when exactly
    this certificate is recorded; None when it is new."""
    rows = tx.all(
        "SELECT fingerprint, chip_id, serial FROM certificates "
        "WHERE fingerprint = ? OR chip_id = ? OR serial = ?",
        (cert.fingerprint, cert.chip_id, cert.serial),
    )
    same = False
    for fp, chip, serial in rows:
        if (fp, chip, serial) == (cert.fingerprint, cert.chip_id, cert.serial):
            same = True
        elif fp == cert.fingerprint:
            return (
                f"certificate {fp} is already recorded for unit {chip} (serial {serial}); "
                "a certificate belongs to one unit"
            )
        elif chip == cert.chip_id:
            return (
                f"unit {chip} already has certificate {fp} (serial {serial}); a unit gets one "
                "certificate: revoke it before issuing another"
            )
        else:
            return (
                f"serial {serial} is already on the certificate of unit {chip}; a serial is "
                "issued once"
            )
    return "same" if same else None


def _certify(tx: Tx, cert: CertificateRow, prefix: str) -> None:
    msg = _cert_conflict(tx, cert)
    if msg == "same":
        if cert.pem:  # a unit record (identifiers only) may have recorded it first
            tx.run(
                "UPDATE certificates SET pem = ?, public_key = ? WHERE fingerprint = ? "
                "AND pem = ''",
                (cert.pem, cert.public_key, cert.fingerprint),
            )
        return
    if msg:
        raise InvariantViolation(prefix + msg)
    tx.run(
        f"INSERT INTO certificates ({_CERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            cert.fingerprint,
            cert.chip_id,
            cert.serial,
            cert.cert_serial,
            cert.issuer,
            cert.not_after,
            cert.station,
            cert.operator,
            cert.issued_at,
            cert.pem,
            cert.public_key,
        ),
    )


_CERT_COLUMNS = (
    "fingerprint, chip_id, serial, cert_serial, issuer, not_after, station, operator, "
    "issued_at, pem, public_key"
)


def _issue_refusal(
    tx: Tx, chip: str, station: str, lot: str, panel_id: str, policy: IssuancePolicy
) -> str | None:
    """Why the CA may not sign for `chip` now, None when it may (see authorize_issue)."""
    claim = tx.one(
        "SELECT station, lot, panel_id, tested, signed_at FROM issuances WHERE chip_id = ?",
        (chip,),
    )
    if claim is None:
        return f"unit {chip} has no issuance claim; nothing is signed for an unclaimed unit"
    held_by, held_lot, held_panel, tested, signed_at = claim
    if held_by != station:
        return f"unit {chip} is claimed by station {held_by}, not {station}"
    if held_lot != lot:
        return f"unit {chip} is claimed for lot {held_lot}, not {lot}"
    if held_panel != panel_id:
        return f"unit {chip} was claimed in panel {held_panel}, not {panel_id}"
    if tested != "PASS":
        return f"unit {chip}'s tests in panel {panel_id} ended {tested}, not PASS"
    cert = tx.one("SELECT fingerprint FROM certificates WHERE chip_id = ?", (chip,))
    if cert is not None:
        return f"unit {chip} already has certificate {cert[0]}; revoke it before another"
    if signed_at is not None:
        return None  # the same issuance again (a re-run): counted once, when first let
    in_lot = tx.one(
        "SELECT COUNT(*) FROM issuances WHERE lot = ? AND signed_at IS NOT NULL", (lot,)
    )
    if int(in_lot[0]) >= policy.lot_quota:
        return f"lot {lot} has had its quota of {policy.lot_quota} certificates signed"
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(timespec="milliseconds")
    recent = tx.one(
        "SELECT COUNT(*) FROM issuances WHERE station = ? AND signed_at >= ?", (station, since)
    )
    if int(recent[0]) >= policy.per_station_per_hour:
        return (
            f"station {station} has had {recent[0]} certificates signed in the last hour; "
            f"its limit is {policy.per_station_per_hour} an hour"
        )
    return None


_FACTORY_STATES = frozenset(s.value for s in FACTORY)


def _advance(tx: Tx, chip: str, state: str) -> str:
    """Forward only, by ate.model.prov_state's table. The UPDATE names the state it read:
    a writer that moved the unit meanwhile (PostgreSQL, read committed) makes it read the
    new state and decide again."""
    target = prov_state(state)
    for _ in range(8):
        row = tx.one("SELECT prov_state FROM units WHERE chip_id = ?", (chip,))
        before = prov_state(str(row[0]))
        after = advance_state(before, target, chip)
        if after == before:
            return after.value
        if tx.run(
            "UPDATE units SET prov_state = ? WHERE chip_id = ? AND prov_state = ?",
            (after.value, chip, before.value),
        ):
            return after.value
    raise StoreError(f"unit {chip} kept changing state under eight attempts to advance it")


def _find_unit(tx: Tx, key: str) -> tuple[str, str | None, str] | None:
    """(chip_id, serial, prov_state) of the unit with this MAC or serial."""
    cols = "chip_id, serial, prov_state"
    mac = normalise_mac(key) if isinstance(key, str) else None
    if mac is not None:
        row = tx.one(f"SELECT {cols} FROM units WHERE chip_id = ?", (mac,))
        if row is not None:
            return str(row[0]), row[1], str(row[2])
    if isinstance(key, str) and key.strip():
        for candidate in dict.fromkeys((key.strip(), key.strip().upper())):
            row = tx.one(f"SELECT {cols} FROM units WHERE serial = ?", (candidate,))
            if row is not None:
                return str(row[0]), row[1], str(row[2])
    return None


def _revoke(
    tx: Tx, chip: str, state: ProvState, reason: str, user: str, station: str
) -> str | None:
    """Record that the unit's certificate is no longer trusted; its fingerprint, or None
    when the line database has no certificate for it."""
    cert = tx.one(
        "SELECT fingerprint, serial, cert_serial FROM certificates WHERE chip_id = ?", (chip,)
    )
    if cert is None:
        return None
    tx.run(
        "INSERT INTO revocations (fingerprint, chip_id, serial, cert_serial, state, reason, "
        "by_user, station, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (fingerprint) DO NOTHING",
        (cert[0], chip, cert[1], cert[2], state.value, reason, user, station, now_iso()),
    )
    return str(cert[0])


# -- queries -------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "run_id",
    "started_at",
    "station",
    "fixture",
    "slot",
    "operator",
    "chip_id",
    "serial",
    "verdict",
    "reason",
    "attempt",
    "failing_step",
    "duration_s",
    "sequence",
    "sequence_version",
)
_EXPORT_SELECT = (
    "SELECT r.run_id, r.started_at, r.station, r.fixture, r.slot, r.operator, r.chip_id, "
    "u.serial, r.verdict, r.reason, r.attempt, r.failing_step, r.duration_s, r.sequence, "
    "r.sequence_version FROM test_runs r LEFT JOIN units u ON u.chip_id = r.chip_id"
)


def _window(since: str | None, until: str | None) -> tuple[list[str], list[str]]:
    where: list[str] = []
    params: list[str] = []
    if since is not None:
        where.append("r.started_at >= ?")
        params.append(normalise_time(since, "since"))
    if until is not None:
        where.append("r.started_at < ?")
        params.append(normalise_time(until, "until"))
    return where, params


def _history(tx: Tx, mac: str | None, key: str) -> UnitHistory | None:
    cols = "chip_id, serial, chip, product, lot, prov_state, first_seen, last_seen"
    unit = None
    if mac is not None:
        unit = tx.one(f"SELECT {cols} FROM units WHERE chip_id = ?", (mac,))
    if unit is None and isinstance(key, str) and key.strip():
        for candidate in dict.fromkeys((key.strip(), key.strip().upper())):
            unit = tx.one(f"SELECT {cols} FROM units WHERE serial = ?", (candidate,))
            if unit is not None:
                break
    if unit is None:
        return None
    chip = unit[0]
    measurements: dict[tuple[str, int], list[MeasurementDetail]] = {}
    for row in tx.all(
        "SELECT m.run_id, m.step_idx, m.name, m.value, m.text, m.unit, m.low, m.high, m.expect, "
        "m.verdict, m.attempt FROM measurements m JOIN test_runs r ON r.run_id = m.run_id "
        "WHERE r.chip_id = ? ORDER BY m.run_id, m.step_idx, m.attempt, m.ord",
        (chip,),
    ):
        measurements.setdefault((row[0], row[1]), []).append(MeasurementDetail(*row[2:]))
    steps: dict[str, list[StepDetail]] = {}
    for row in tx.all(
        "SELECT s.run_id, s.idx, s.name, s.type, s.verdict, s.reason, s.retries, s.started_s, "
        "s.duration_s FROM steps s JOIN test_runs r ON r.run_id = s.run_id "
        "WHERE r.chip_id = ? ORDER BY s.run_id, s.idx",
        (chip,),
    ):
        steps.setdefault(row[0], []).append(
            StepDetail(
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
                row[7],
                row[8],
                measurements.get((row[0], row[1]), []),
            )
        )
    runs = [
        RunDetail(
            run_id=row[0],
            panel_id=row[1],
            station=row[2],
            fixture=row[3],
            slot=row[4],
            operator=row[5],
            lot=row[6],
            sequence=row[7],
            sequence_version=row[8],
            sequence_sha256=row[9],
            test_firmware_sha256=row[10],
            started_at=row[11],
            duration_s=row[12],
            verdict=row[13],
            reason=row[14],
            attempt=row[15],
            failing_step=row[16],
            steps=steps.get(row[0], []),
        )
        for row in tx.all(
            "SELECT run_id, panel_id, station, fixture, slot, operator, lot, sequence, "
            "sequence_version, sequence_sha256, test_firmware_sha256, started_at, duration_s, "
            "verdict, reason, attempt, failing_step FROM test_runs WHERE chip_id = ? "
            "ORDER BY started_at, run_id",
            (chip,),
        )
    ]
    cert = tx.one(
        "SELECT fingerprint, chip_id, serial, cert_serial, issuer, not_after, station, "
        "operator, issued_at FROM certificates WHERE chip_id = ?",
        (chip,),
    )
    events = [
        ProvisioningEvent(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7])
        for r in tx.all(
            "SELECT e.run_id, e.seq, e.chip_id, e.act, e.kind, e.status, e.detail, e.at "
            "FROM provisioning_events e JOIN test_runs r ON r.run_id = e.run_id "
            "WHERE e.chip_id = ? ORDER BY e.at, r.started_at, e.run_id, e.seq",
            (chip,),
        )
    ]
    # The audit log owns the moves; its payload is canonical JSON (sorted keys, no spaces),
    # so the unit's own entries are found by their chip_id text.
    kinds = tuple(f"unit.{e.value}" for e in LIFECYCLE_EVENTS)
    moves = [
        AuditEntry(str(r[0]), int(r[1]), str(r[2]), str(r[3]), json.loads(r[4]), r[5], r[6], r[7])
        for r in tx.all(
            "SELECT station, seq, at, kind, payload, prev_hash, hash, signature FROM audit_log "
            f"WHERE kind IN ({', '.join('?' * len(kinds))}) AND payload LIKE ? ORDER BY at, seq",
            (*kinds, f'%"chip_id":"{chip}"%'),
        )
    ]
    return UnitHistory(
        chip_id=unit[0],
        serial=unit[1],
        chip=unit[2],
        product=unit[3],
        lot=unit[4],
        prov_state=unit[5],
        first_seen=unit[6],
        last_seen=unit[7],
        runs=runs,
        certificate=CertificateRow(*cert) if cert else None,
        events=events,
        moves=[m for m in moves if m.payload.get("chip_id") == chip],
    )


def _fetch_all(tx: Tx, *, sql: str, args: list[str]) -> list[Any]:
    return tx.all(sql, args)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


_USER_COLS = "name, role, pin_hash, created_at, disabled, failed_signins, locked_until"
_APPROVAL_COLS = "kind, digest, name, file, approved_by, approved_at, note, revoked_by, revoked_at"


def _user_row(tx: Tx, column: str, value: str) -> UserRow | None:
    row = tx.one(f"SELECT {_USER_COLS} FROM operators_auth WHERE {column} = ?", (value,))
    if not row:
        return None
    return UserRow(
        str(row[0]), str(row[1]), str(row[2]), str(row[3]), bool(row[4]), int(row[5]), row[6]
    )


def _approval_row(tx: Tx, kind: str, digest: str) -> ApprovalRow | None:
    row = tx.one(
        f"SELECT {_APPROVAL_COLS} FROM approvals WHERE kind = ? AND digest = ?", (kind, digest)
    )
    return ApprovalRow(*row) if row else None
