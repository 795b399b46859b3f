"""Who is signed in at the operator's page, and what they may do: users in the line
database (argon2id hashes of their PINs), roles in order, signed session cookies and CSRF
tokens (itsdangerous), every sign-in and privileged act in the audit log.

Imports ate.store (the line database's API) only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ate.store import Store
from ate.store.api import UserRow, now_iso

ROLES = ("operator", "technician", "engineer", "admin")  # each may do all the previous may
PIN_DIGITS = (4, 12)
SESSION_S = 12 * 3600  # one shift
# Memory-hard on purpose (64 MiB, 3 passes): a stolen database costs a guesser dearly per PIN.
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1)
_DUMMY = _HASHER.hash("0000")  # unknown users cost the same time as a wrong PIN
# A 4-digit PIN has 10,000 values: five wrong in a row lock the user for 15 minutes, so
# guessing one takes weeks, while an operator who mistypes twice is not stopped.
LOCK_AFTER = 5
LOCK_S = 15 * 60


class AuthError(Exception):
    """A refusal the operator reads (no secret, no hash, no stack)."""


class LockedOut(AuthError):
    """Too many wrong PINs in a row: no sign-in by PIN until `until` (UTC, HH:MM)."""

    def __init__(self, name: str, until_iso: str) -> None:
        self.until = _clock(until_iso)
        super().__init__(f"too many wrong PINs: {name} is locked until {self.until}")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AuthError(f"role {role!r}: allowed are {', '.join(ROLES)}")
    return role


def check_pin(pin: str) -> str:
    lo, hi = PIN_DIGITS
    if not (pin.isascii() and pin.isdigit() and lo <= len(pin) <= hi):
        raise AuthError(f"a PIN is {lo} to {hi} digits")
    return pin


def badge_key(badge: str) -> str:
    """How a badge is found in the database: a digest, never the id a reader reads."""
    badge = badge.strip()
    if not (4 <= len(badge) <= 64 and badge.isprintable()):
        raise AuthError("a badge id is 4 to 64 printable characters")
    return hashlib.sha256(b"ate.badge:" + badge.encode()).hexdigest()


def add_user(
    store: Store,
    name: str,
    role: str,
    pin: str,
    *,
    station: str,
    by: str,
    badge: str | None = None,
) -> None:
    if not name or len(name) > 64 or not name.isprintable():
        raise AuthError("a user name is 1 to 64 printable characters")
    key = badge_key(badge) if badge else None
    store.user_add(name, check_role(role), _HASHER.hash(check_pin(pin)), key)
    store.audit_append(
        station, "user.add", {"user": name, "role": role, "by": by, "badge": key is not None}
    )


def authenticate(store: Store, station: str, name: str, pin: str, *, via: str) -> UserRow:
    """The user `name` if `pin` is theirs, they are enabled and not locked out; AuthError
    otherwise. Every attempt is audited; wrong PINs count towards a lockout kept in the
    line database (so every station sees it); a right one clears the count."""
    user = store.user_get(name)
    if user is not None and user.locked_until is not None and user.locked_until > now_iso():
        store.audit_append(
            station,
            "signin",
            {"user": name, "ok": False, "via": via, "locked_until": user.locked_until},
        )
        raise LockedOut(name, user.locked_until)
    try:
        _HASHER.verify(user.pin_hash if user else _DUMMY, pin)
        ok = user is not None and not user.disabled
    except (VerificationError, InvalidHashError):
        ok = False
    detail: dict[str, Any] = {"user": name, "ok": ok, "via": via}
    if ok and user is not None:
        if user.failed_signins or user.locked_until:
            store.user_signin_ok(name)
    elif user is not None:
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=LOCK_S)
        after = store.user_signin_failed(name, LOCK_AFTER, until.isoformat(timespec="milliseconds"))
        if after is not None and after.locked_until is not None:
            detail["locked_until"] = after.locked_until
    store.audit_append(station, "signin", detail)
    if not ok or user is None:
        if "locked_until" in detail:
            raise LockedOut(name, str(detail["locked_until"]))
        raise AuthError("unknown user or wrong PIN")
    return user


def _clock(iso: str) -> str:
    """An ISO time as the operator reads it (UTC, to the minute)."""
    return iso[11:16] + " UTC"


def may(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    role: str
    csrf: str


class Authority:
    """Signs people in against the line database and reads their session cookies."""

    def __init__(self, store: Store, station: str, secret_key: bytes) -> None:
        if len(secret_key) < 32:
            raise AuthError("the session key must have at least 32 bytes")
        self.store = store
        self.station = station
        self._cookies = URLSafeTimedSerializer(secret_key, salt="ate.ui.session")

    def sign_in(self, name: str, pin: str) -> tuple[Session, str]:
        """The session and its cookie value; AuthError (and an audit entry) otherwise."""
        user = authenticate(self.store, self.station, name, pin, via="page")
        return self._session(user.name, user.role)

    def sign_in_badge(self, badge: str) -> tuple[Session, str]:
        """A badge scan: the badge's owner, if the badge is known and the user enabled."""
        try:
            user = self.store.user_by_badge(badge_key(badge))
        except AuthError:
            user = None
        ok = user is not None and not user.disabled
        self.store.audit_append(
            self.station, "signin", {"user": user.name if user else None, "ok": ok, "by": "badge"}
        )
        if not ok or user is None:
            raise AuthError("unknown badge")
        return self._session(user.name, user.role)

    def _session(self, name: str, role: str) -> tuple[Session, str]:
        session = Session(name, role, secrets.token_urlsafe(24))
        return session, self._cookies.dumps([session.user, session.role, session.csrf])

    def session(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            user, role, csrf = self._cookies.loads(cookie, max_age=SESSION_S)
        except (BadSignature, ValueError, TypeError):
            return None
        return Session(str(user), str(role), str(csrf))

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(session.csrf, token)

    def audit(self, session: Session, act: str, detail: dict[str, Any]) -> None:
        """A privileged act, by whom and as what."""
        self.store.audit_append(
            self.station, act, {"user": session.user, "role": session.role, **detail}
        )
