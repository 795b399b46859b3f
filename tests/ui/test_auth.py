"""Sign-in and roles: users added by the real CLI into a real SQLite line database, PINs
as argon2id hashes, sign-in by PIN on the page in Chromium, an operator refused an
engineer's action (403 and the message on the page), CSRF and origin checks, audit."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ate.store import Store, open_store
from ate.ui.app import Action, check_bind, operator_app
from ate.ui.auth import Authority
from ate.ui.view import StationView
from tests.ate_cli import run_ate as ate
from tests.ui.test_page import open_page

BADGE = "0004711842"  # what a badge reader types (then Enter)
PINS = {"olga": ("operator", "4711"), "erik": ("engineer", "902114")}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    path = tmp_path / "line.db"
    url = f"sqlite:///{path}"
    for name, (role, pin) in PINS.items():
        badge = ("--badge",) if name == "olga" else ()
        done = ate(
            "user",
            "add",
            name,
            "--role",
            role,
            "--db",
            url,
            "--station",
            "st1",
            *badge,
            stdin=f"{pin}\n{BADGE}\n",
        )
        assert done.returncode == 0, done.stderr
    yield url, path


def test_user_add_keeps_only_an_argon2id_hash(db: tuple[str, Path]) -> None:
    url, path = db
    rows = sqlite3.connect(path).execute("SELECT name, role, pin_hash FROM operators_auth")
    found = {name: (role, pin_hash) for name, role, pin_hash in rows}
    assert set(found) == set(PINS)
    for name, (role, pin_hash) in found.items():
        assert role == PINS[name][0]
        assert pin_hash.startswith("$argon2id$") and PINS[name][1] not in pin_hash
    badges = dict(sqlite3.connect(path).execute("SELECT name, badge_key FROM operators_auth"))
    assert badges["erik"] is None and len(badges["olga"]) == 64 and BADGE not in badges["olga"]
    store = open_store(url)
    kinds = [(e.kind, e.payload["user"]) for e in store.audit_entries("st1")]
    store.close()
    assert kinds == [("user.add", "olga"), ("user.add", "erik")]


@pytest.mark.parametrize(
    ("args", "pin", "message"),
    [
        (("olga", "--role", "operator"), "1234", "user 'olga' exists already"),
        (("newbie", "--role", "operator"), "12", "a PIN is 4 to 12 digits"),
        (("newbie", "--role", "operator"), "12ab", "a PIN is 4 to 12 digits"),
        (("newbie", "--role", "operator", "--badge"), "1234", "that badge belongs to another user"),
    ],
)
def test_user_add_refusals_are_one_line(
    db: tuple[str, Path], args: tuple[str, ...], pin: str, message: str
) -> None:
    done = ate("user", "add", *args, "--db", db[0], stdin=f"{pin}\n{BADGE}\n")
    assert done.returncode == 2
    assert done.stderr == f"ate: {message}\n"
    assert BADGE not in done.stderr and (pin not in done.stderr or pin == "12")


def test_an_unknown_role_is_refused(db: tuple[str, Path]) -> None:
    done = ate("user", "add", "x", "--role", "god", "--db", db[0], stdin="1234\n")
    assert done.returncode == 2 and "invalid choice: 'god'" in done.stderr


async def test_sign_in_by_pin_and_an_operator_refused_an_engineer_action(
    db: tuple[str, Path], browser: Any
) -> None:
    from tests.ui.conftest import serve

    store: Store = open_store(db[0])
    reloads: list[str] = []
    reloaded = asyncio.Event()

    async def reload() -> None:
        reloads.append("reload")
        reloaded.set()

    auth = Authority(store, "st1", os.urandom(32))
    view = StationView("st1")
    app = operator_app(view, auth=auth, actions={"reload": Action("engineer", reload)})
    server = await serve(app)
    try:
        page, problems = await open_page(browser, server.url, (1280, 800))
        form = page.locator("form.signin")
        await form.locator("input.name").fill("olga")
        await form.locator("input.pin").fill("0000")
        await form.locator("button.go").click()
        await page.locator("#notice").wait_for()
        assert await page.locator("#notice").inner_text() == "Unknown user or wrong PIN"
        await form.locator("input.name").fill("olga")
        await form.locator("input.pin").fill("4711")
        await form.locator("button.go").click()
        who = page.locator("#account .who")
        await who.wait_for()
        assert await who.inner_text() == "Signed in: olga (operator)"
        await page.locator('button[data-action="reload"]').click()
        await page.wait_for_function(
            "document.getElementById('notice').textContent.startsWith('Refused')"
        )
        assert (
            await page.locator("#notice").inner_text()
            == "Refused: this needs the engineer role or higher"
        )
        assert reloads == []
        await page.screenshot(path="/tmp/ate-ui-shots/refused-1280x800.png")
        # A request without the page's CSRF token is refused even with the cookie.
        status = await page.evaluate(
            """async () => (await fetch("action/reload", {method: "POST", body: "{}",
                 headers: {"Content-Type": "application/json"}})).status"""
        )
        assert status == 403
        await page.locator("button.signout").click()
        await form.locator("input.name").fill("erik")
        await form.locator("input.pin").fill("902114")
        await form.locator("button.go").click()
        await page.locator('button[data-action="reload"]').click()
        await asyncio.wait_for(reloaded.wait(), 30)
        assert reloads == ["reload"]
        # The browser logs each refused request (401, 403) as an error; nothing else.
        assert all("status of 40" in p for p in problems), problems
        assert len(problems) == 3, problems
    finally:
        await server.close()
    audit = [(e.kind, e.payload) for e in store.audit_entries("st1")][2:]
    store.close()
    assert audit == [
        ("signin", {"user": "olga", "ok": False, "via": "page"}),
        ("signin", {"user": "olga", "ok": True, "via": "page"}),
        ("signin", {"user": "erik", "ok": True, "via": "page"}),
        ("action", {"user": "erik", "role": "engineer", "action": "reload"}),
    ]


def test_beyond_loopback_only_with_sign_in() -> None:
    check_bind("10.0.0.5", remote=True)
    with pytest.raises(ValueError, match="only a loopback address"):
        check_bind("10.0.0.5")
    with pytest.raises(ValueError, match="needs sign-in"):
        operator_app(StationView("st1"), remote=True)


async def test_sign_in_by_badge_scan(db: tuple[str, Path], browser: Any) -> None:
    from tests.ui.conftest import serve

    store: Store = open_store(db[0])
    view = StationView("st1")
    server = await serve(operator_app(view, auth=Authority(store, "st1", os.urandom(32))))
    try:
        page, problems = await open_page(browser, server.url, (800, 480))
        name = page.locator("form.signin input.name")
        await name.fill("9999999999")  # an unknown badge
        await name.press("Enter")
        await page.wait_for_function("!document.getElementById('notice').hidden")
        assert await page.locator("#notice").inner_text() == "Unknown badge"
        await name.fill(BADGE)
        await name.press("Enter")
        await page.locator("#account .who").wait_for()
        assert await page.locator("#account .who").inner_text() == "Signed in: olga (operator)"
        assert len(problems) == 1 and "status of 401" in problems[0], problems
    finally:
        await server.close()
    audit = [e.payload for e in store.audit_entries("st1") if e.kind == "signin"]
    store.close()
    assert audit == [
        {"user": None, "ok": False, "by": "badge"},
        {"user": "olga", "ok": True, "by": "badge"},
    ]


def test_five_wrong_pins_lock_the_user_everywhere(db: tuple[str, Path]) -> None:
    """The count lives in the line database: a second station (another Authority) sees the
    lock; the right PIN is refused while it holds; once it has passed, the right PIN works
    and clears the count. The CLI's sign-in (`ate approval`) counts too."""
    from ate.ui.auth import LOCK_AFTER, AuthError, LockedOut

    url, path = db
    store: Store = open_store(url)
    here, there = (Authority(store, st, os.urandom(32)) for st in ("st1", "st2"))
    for _ in range(LOCK_AFTER - 1):
        with pytest.raises(AuthError, match="unknown user or wrong PIN"):
            here.sign_in("olga", "0000")
    with pytest.raises(LockedOut, match="olga is locked until"):
        there.sign_in("olga", "0000")
    with pytest.raises(LockedOut):
        here.sign_in("olga", "4711")  # the right PIN, but locked
    done = ate("approval", "list", "--db", url)  # reading needs no PIN
    assert done.returncode == 0, done.stderr
    sqlite3.connect(path).execute(
        "UPDATE operators_auth SET locked_until = '2000-01-01T00:00:00.000+00:00'"
    ).connection.commit()
    session, _ = there.sign_in("olga", "4711")
    assert session.user == "olga"
    row = store.user_get("olga")
    assert row is not None and row.failed_signins == 0 and row.locked_until is None
    locked = [
        e.payload for e in store.audit_entries() if e.kind == "signin" and not e.payload["ok"]
    ]
    store.close()
    assert len(locked) == LOCK_AFTER + 1
    assert "locked_until" in locked[LOCK_AFTER - 1] and "locked_until" in locked[LOCK_AFTER]
    assert all("4711" not in str(p) and "0000" not in str(p) for p in locked)
