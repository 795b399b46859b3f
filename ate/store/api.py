"""The records store's public face: errors, row dataclasses, the `Store` protocol and
`open_store(url)`. Backends live in ate/store/sqlite.py and ate/store/postgres.py.

May import stdlib and ate.model only (the backends are imported lazily by `open_store`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ate.model.prov_state import FACTORY, STATES, ProvState, factory_rank, state_of

# -- errors ------------------------------------------------------------------------------


class StoreError(Exception):
    """The store refuses or fails; the message is one sentence and never holds a password."""


class StoreUnavailable(StoreError):
    """Cannot connect to the database, or the connection was lost: retry later."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer ate than this one."""


class InvariantViolation(StoreError):
    """A line-wide rule would break: a serial or certificate issued twice, a state moving
    back, a retest the policy forbids."""


class IssuanceRefused(InvariantViolation):
    """The line store will not let the CA sign for this unit: not claimed by this station
    in this lot and panel, its tests did not PASS, or over the lot's quota or the
    station's hourly rate. The refusal is in the station's audit chain (kind "issue")."""


class MoveRefused(InvariantViolation):
    """A unit move the lifecycle table has no entry for; says the state and what is allowed."""

    def __init__(self, message: str, state: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.state = state
        self.allowed = allowed


class BadRecord(StoreError):
    """A unit record that cannot be stored as it is (wrong schema, a missing field, a
    private key in it); retrying will not help: set it aside."""


# -- the provisioning states (ate.model.prov_state owns them and their moves) ---------------

# The factory's states, in order: how far a unit's provisioning got on the line.
PROV_STATES: tuple[str, ...] = tuple(s.value for s in FACTORY)
# Every state a unit of the line database may be in, the lifecycle after the factory too.
ALL_PROV_STATES: tuple[str, ...] = STATES

# Audit kinds the station writes (others are allowed: any lowercase word).
AUDIT_KINDS: tuple[str, ...] = ("run", "signin", "issue", "burn", "config")

GENESIS_HASH = "0" * 64

URL_FORMS = (
    "sqlite:///abs/path/ate.db, sqlite:relative/path.db or postgresql://user@host:5432/dbname"
)


def prov_state(state: str) -> ProvState:
    """The state named `state`; StoreError for a name that is not one."""
    try:
        return state_of(state)
    except ValueError as exc:
        raise StoreError(str(exc)) from None


def prov_rank(state: str) -> int:
    """The position of the factory state `state` along the line; StoreError otherwise."""
    known = prov_state(state)
    if known not in FACTORY:
        raise StoreError(
            f"{state!r} is not a factory provisioning state (those are "
            f"{', '.join(PROV_STATES)}); units move after the factory with `ate unit`"
        )
    return factory_rank(known)


# -- rows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    """One run (one unit record). `attempt` counts every run of the unit whatever its
    verdict (ABORTED too), in started_at order: 1 = first test, 2 = first retest...;
    0 = no unit (EMPTY). First-pass yield = units whose attempt-1 run is PASS."""

    run_id: str
    chip_id: str | None
    serial: str | None
    station: str
    fixture: str
    slot: int
    operator: str
    started_at: str
    verdict: str
    attempt: int  # 1 = the unit's first run, 2 = its first retest, ...; 0 = no unit (EMPTY)
    failing_step: str | None
    duration_s: float


@dataclass(frozen=True)
class MeasurementSeries:
    step: str
    name: str
    unit: str
    low: float | None  # the limits of the latest run in the window
    high: float | None
    values: list[float]  # numeric values only, in time order
    # Per value, the limits and sequence version of the run it came from (empty when the
    # caller did not ask): the limit history, derived from the measurement rows themselves.
    lows: list[float | None] = field(default_factory=list)
    highs: list[float | None] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    step_type: str = ""  # the steps table's type of the step that measured it


@dataclass(frozen=True)
class ReportInput:
    since: str | None
    until: str | None
    runs: list[RunRow]
    series: list[MeasurementSeries]
    # step name -> step results that passed only on a retry (a marginal unit)
    passed_on_retry: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CertificateRow:
    """An issued device certificate: identifiers only, never a key."""

    fingerprint: str  # sha256:<hex> of the DER
    chip_id: str
    serial: str
    cert_serial: str
    issuer: str
    not_after: str
    station: str
    operator: str
    issued_at: str
    # The certificate itself and the device's public key (hex, X9.62 uncompressed point),
    # as the provisioning flow recorded them; "" when the row came from a unit record
    # (which carries identifiers only) or predates migration 7.
    pem: str = ""
    public_key: str = ""


@dataclass(frozen=True)
class ProvUnit:
    """A unit's identity and how far its provisioning got, as the line store holds them."""

    chip_id: str
    serial: str | None
    state: str
    lot: str | None
    claimed_by: str | None = None  # the station whose issuance claim holds it, if any


@dataclass(frozen=True)
class IssuancePolicy:
    """How many certificates the CA may sign: per lot, and per station per hour (the
    profile's `issuance:`; generous defaults, a line sets its own)."""

    lot_quota: int = 100_000
    per_station_per_hour: int = 3_600


@dataclass(frozen=True)
class UnitMove:
    """A unit moved after the factory, as the store recorded it."""

    chip_id: str
    serial: str | None
    before: str
    after: str
    event: str
    reason: str
    audit_seq: int  # its entry in the station's audit chain


@dataclass(frozen=True)
class RevokedCertificate:
    """A certificate the line no longer trusts (its unit was revoked or scrapped)."""

    fingerprint: str  # sha256:<hex> of the DER
    cert_serial: str  # the certificate's serial number, hex
    serial: str  # the unit's serial
    chip_id: str
    state: str  # revoked | scrapped
    reason: str
    by_user: str
    station: str
    revoked_at: str


@dataclass(frozen=True)
class AuditEntry:
    station: str
    seq: int
    at: str
    kind: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str
    signature: str | None = None  # Ed25519 over the hash, by the station's key


class AuditSigner(Protocol):
    """What signs a station's audit entries (ate.store.signing.StationKey)."""

    @property
    def public_hex(self) -> str: ...

    def sign(self, entry_hash: str) -> str: ...


@dataclass(frozen=True)
class MeasurementDetail:
    name: str
    value: float | None  # numeric readings
    text: str | None  # anything else: a string reading, NaN
    unit: str
    low: float | None
    high: float | None
    expect: float | None
    verdict: str
    attempt: int = 0  # 0 for the first attempt of its step


@dataclass(frozen=True)
class StepDetail:
    idx: int
    name: str
    type: str
    verdict: str
    reason: str
    retries: int
    started_s: float
    duration_s: float
    measurements: list[MeasurementDetail] = field(default_factory=list)


@dataclass(frozen=True)
class RunDetail:
    run_id: str
    panel_id: str
    station: str
    fixture: str
    slot: int
    operator: str
    lot: str | None
    sequence: str
    sequence_version: str
    sequence_sha256: str
    test_firmware_sha256: str | None
    started_at: str
    duration_s: float
    verdict: str
    reason: str
    attempt: int
    failing_step: str | None
    steps: list[StepDetail] = field(default_factory=list)


@dataclass(frozen=True)
class ProvisioningEvent:
    run_id: str
    seq: int
    chip_id: str
    act: str
    kind: str  # intent | outcome
    status: str
    detail: dict[str, Any]
    at: str


@dataclass(frozen=True)
class UnitHistory:
    chip_id: str
    serial: str | None
    chip: str | None
    product: str | None
    lot: str | None
    prov_state: str
    first_seen: str
    last_seen: str
    runs: list[RunDetail]  # in time order
    certificate: CertificateRow | None
    events: list[ProvisioningEvent]  # in time order
    # Its moves after the factory (ship, rma, ...), as the audit log holds them, in order.
    moves: list[AuditEntry] = field(default_factory=list)


# -- the store ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRow:
    """Who may sign in at a station: a role and an argon2id hash of the PIN, nothing else."""

    name: str
    role: str
    pin_hash: str
    created_at: str
    disabled: bool
    failed_signins: int = 0  # wrong PINs in a row
    locked_until: str | None = None  # ISO time; sign-in refused before it


@dataclass(frozen=True, slots=True)
class ApprovalRow:
    """A sequence or profile an engineer approved for production, by content digest."""

    kind: str  # "sequence" | "profile"
    digest: str
    name: str
    file: str
    approved_by: str
    approved_at: str
    note: str
    revoked_by: str | None
    revoked_at: str | None

    @property
    def in_force(self) -> bool:
        return self.revoked_at is None


class Store(Protocol):
    """A line's records and provisioning ledger. Sync and blocking: call from a thread.
    Safe to share between threads of one process; every process opens its own."""

    url: str  # with any password replaced by ***
    backend: str  # "sqlite" | "postgresql"

    def schema_version(self) -> int: ...
    def migrate(self) -> list[int]: ...
    def ingest(self, record: dict[str, Any]) -> bool: ...
    def ingest_many(self, records: Iterable[dict[str, Any]]) -> list[bool]: ...
    def has_record(self, record_id: str) -> bool: ...
    def record(self, record_id: str) -> dict[str, Any] | None: ...
    def unit_history(self, key: str) -> UnitHistory | None: ...
    def runs(self, since: str | None, until: str | None) -> Iterator[dict[str, Any]]: ...
    def report_input(self, since: str | None, until: str | None) -> ReportInput: ...
    def claim_serial(self, chip_id: str, serial: str) -> None: ...
    def record_certificate(self, row: CertificateRow) -> None: ...
    def advance(self, chip_id: str, state: str, *, strict: bool = False) -> str: ...
    def prov_unit(self, chip_id: str) -> ProvUnit | None: ...
    def prov_units(self, lot: str | None = None) -> list[ProvUnit]: ...
    def certificate(self, chip_id: str) -> CertificateRow | None: ...
    def certificates(self, lot: str | None = None) -> list[CertificateRow]: ...
    def claim_issuance(
        self, chip_id: str, *, station: str, lot: str, panel_id: str, tested: str
    ) -> None: ...
    def authorize_issue(
        self,
        chip_id: str,
        *,
        station: str,
        lot: str,
        panel_id: str,
        policy: IssuancePolicy,
        signer: AuditSigner | None = None,
    ) -> None: ...
    def retest_allowed(self, chip_id: str, max_retests: int) -> tuple[bool, str]: ...
    def move_unit(
        self,
        key: str,
        event: str,
        *,
        station: str,
        user: str,
        reason: str = "",
        signer: AuditSigner | None = None,
    ) -> UnitMove: ...
    def revoked_certificates(self) -> list[RevokedCertificate]: ...
    def audit_append(
        self,
        station: str,
        kind: str,
        payload: dict[str, Any],
        signer: AuditSigner | None = None,
    ) -> AuditEntry: ...
    def audit_entries(self, station: str | None = None) -> list[AuditEntry]: ...
    def audit_entries_checked(
        self, station: str | None = None
    ) -> tuple[list[AuditEntry], list[str]]: ...
    def audit_keys(self) -> dict[str, str]: ...
    def user_add(
        self, name: str, role: str, pin_hash: str, badge_key: str | None = None
    ) -> None: ...
    def user_get(self, name: str) -> UserRow | None: ...
    def user_by_badge(self, badge_key: str) -> UserRow | None: ...
    def user_signin_failed(self, name: str, lock_after: int, lock_until: str) -> UserRow | None:
        """Count a wrong PIN; at `lock_after` in a row the user is locked until
        `lock_until`. Returns the user as it now stands (None: no such user)."""
        ...

    def user_signin_ok(self, name: str) -> None: ...
    def approval_add(
        self, kind: str, digest: str, name: str, file: str, by: str, note: str = ""
    ) -> ApprovalRow: ...
    def approval_revoke(self, kind: str, digest: str, by: str) -> ApprovalRow: ...
    def approval_get(self, kind: str, digest: str) -> ApprovalRow | None: ...
    def approvals(self, kind: str | None = None) -> list[ApprovalRow]: ...
    def close(self) -> None: ...


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the store at `url` (see URL_FORMS), applying pending migrations unless
    `migrate` is False (then a database behind this ate's schema is refused)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from ate.store.sqlite import SqliteStore

        return SqliteStore(url, migrate=migrate)
    if scheme in ("postgresql", "postgres"):
        from ate.store.postgres import PostgresStore

        return PostgresStore(url, migrate=migrate)
    raise StoreError(f"store URL {redact_url(url)!r} is not one ate can open; use {URL_FORMS}")


# -- helpers shared by the backends -----------------------------------------------------------

_PASSWORD_IN_NETLOC = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@?#]*):[^@/?#]*@", re.I)
_PASSWORD_IN_QUERY = re.compile(r"(?i)([?&]password=)[^&#]*")


def redact_url(url: str) -> str:
    """`url` with any password (user:pw@ or ?password=) replaced by ***."""
    url = _PASSWORD_IN_NETLOC.sub(r"\1:***@", url)
    return _PASSWORD_IN_QUERY.sub(r"\1***", url)


_HEX12 = re.compile(r"[0-9a-fA-F]{12}")


def normalise_mac(key: str) -> str | None:
    """'240AC4000001', '24-0a-c4-00-00-01', '24:0A:C4:00:00:01' -> '24:0a:c4:00:00:01';
    None when `key` is not a MAC address."""
    bare = re.sub(r"[:\-.\s]", "", key.strip())
    if not _HEX12.fullmatch(bare):
        return None
    bare = bare.lower()
    return ":".join(bare[i : i + 2] for i in range(0, 12, 2))


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def normalise_time(value: str, what: str = "time") -> str:
    """An ISO 8601 time (or date) as sortable UTC text, 2026-11-21T07:15:00.123+00:00;
    a time without a zone is taken as UTC."""
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError, TypeError):
        raise StoreError(
            f"{what} {value!r} is not an ISO 8601 time; use e.g. 2026-11-21 or "
            "2026-11-21T07:15:00+00:00"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat(timespec="milliseconds")
