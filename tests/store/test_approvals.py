"""What production may run, and sign-in lockout, kept in the line database: on SQLite and
PostgreSQL alike, approving twice is refused, a revoked approval stays known and can be
given again, and wrong PINs count towards a lock that a right one clears."""

from __future__ import annotations

import pytest

from ate.store import Store
from ate.store.api import InvariantViolation

DIGEST = "ab" * 32


def test_approve_revoke_and_approve_again(store: Store) -> None:
    assert store.approval_get("sequence", DIGEST) is None
    row = store.approval_add("sequence", DIGEST, "func 1.0", "func.yaml", "erik", "ECO-12")
    assert (row.kind, row.name, row.approved_by, row.note, row.in_force) == (
        "sequence",
        "func 1.0",
        "erik",
        "ECO-12",
        True,
    )
    with pytest.raises(InvariantViolation, match="approved already by erik"):
        store.approval_add("sequence", DIGEST, "func 1.0", "func.yaml", "anna")
    # The same digest as a profile is another approval.
    store.approval_add("profile", DIGEST, "prod", "prod.yaml", "anna")
    revoked = store.approval_revoke("sequence", DIGEST, "anna")
    assert not revoked.in_force and revoked.revoked_by == "anna"
    assert store.approval_get("sequence", DIGEST) == revoked
    with pytest.raises(InvariantViolation, match="is not approved"):
        store.approval_revoke("sequence", DIGEST, "anna")
    again = store.approval_add("sequence", DIGEST, "func 1.0", "func.yaml", "anna")
    assert again.in_force and again.approved_by == "anna"
    assert [(r.kind, r.approved_by) for r in store.approvals("sequence")] == [("sequence", "anna")]
    assert {r.kind for r in store.approvals()} == {"sequence", "profile"}


def test_failed_signins_lock_and_a_good_one_clears(store: Store) -> None:
    store.user_add("olga", "operator", "$argon2id$fake")
    until = "2999-01-01T00:00:00.000+00:00"
    for n in range(1, 3):
        row = store.user_signin_failed("olga", 3, until)
        assert row is not None and row.failed_signins == n and row.locked_until is None
    row = store.user_signin_failed("olga", 3, until)
    assert row is not None and row.locked_until == until and row.failed_signins == 0
    store.user_signin_ok("olga")
    row = store.user_get("olga")
    assert row is not None and row.locked_until is None and row.failed_signins == 0
    assert store.user_signin_failed("nobody", 3, until) is None
