"""An engineer loads another approved sequence at the operator's page (Chromium, signed
in by PIN): the dialog lists the sequences beside the running one with their approvals,
only approved ones can be loaded, the station switches at its next idle point and runs
the new one; an operator may not even list them; every load is audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ate.station.approvals import sequence_content
from ate.store import open_store
from tests.ate_cli import run_ate as ate
from tests.station.conftest import running, wait_status, write_station
from tests.ui.test_page import open_page

USERS = {"erik": ("engineer", "902114"), "olga": ("operator", "4711")}


async def sign_in(page: Any, name: str) -> None:
    form = page.locator("form.signin")
    await form.locator("input.name").fill(name)
    await form.locator("input.pin").fill(USERS[name][1])
    await form.locator("button.go").click()
    await page.locator("#account .who").wait_for()


async def test_an_engineer_loads_an_approved_sequence(tmp_path: Path, browser: Any) -> None:
    url = f"sqlite:///{tmp_path / 'line.db'}"
    path = write_station(
        tmp_path,
        [("fx1", {"slots": 1})],
        production=True,
        db=url,
        page={"host": "127.0.0.1", "port": 0, "signin": True},
    )
    for name, (role, pin) in USERS.items():
        assert (
            ate("user", "add", name, "--role", role, "--db", url, stdin=f"{pin}\n").returncode == 0
        )
    seq = path.parent / yaml.safe_load(path.read_text())["sequence"]
    doc = yaml.safe_load(seq.read_text())
    doc["version"] = "1.1.0"
    newer = seq.with_name("seq-newer.yaml")
    newer.write_text(yaml.safe_dump(doc, sort_keys=False))
    doc["version"] = "2.0.0-draft"
    seq.with_name("seq-draft.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for f in (seq, newer):
        done = ate("approval", "add", str(f), "--user", "erik", "--db", url, stdin="902114\n")
        assert done.returncode == 0, done.stderr
    async with running(path) as station:
        assert station.page is not None
        await wait_status(station, lambda st: st.fixtures["fx1"].panels == 1)
        page, problems = await open_page(browser, station.page.url, (1280, 800))
        await sign_in(page, "olga")
        assert await page.locator("#account button.load").count() == 0
        # No label_scan in this station file: no scan field on the tiles.
        assert not await page.locator("form.scan").first.is_visible()
        refused = await page.evaluate(
            """async () => { const r = await fetch("load", {headers: {"X-CSRF-Token": me.csrf}});
                 return [r.status, (await r.json()).error]; }"""
        )
        assert refused == [403, "Refused: this needs the engineer role or higher"]
        await page.locator("button.signout").click()
        await sign_in(page, "erik")
        await page.locator("#account button.load").click()
        dialog = page.locator("#load")
        await dialog.locator(".choice").first.wait_for()
        rows = {
            await r.locator(".cname").inner_text(): (
                await r.locator(".cstate").inner_text(),
                await r.locator("button.choose").is_disabled(),
            )
            for r in await dialog.locator(".choice").all()
        }
        assert rows == {
            f"s3-devkit-functional 1.0.0 · {seq.name}": ("running now", True),
            "s3-devkit-functional 1.1.0 · seq-newer.yaml": ("approved by erik", False),
            "s3-devkit-functional 2.0.0-draft · seq-draft.yaml": ("not approved", True),
        }
        await page.screenshot(path="/tmp/ate-ui-shots/load-1280x800.png")
        # The draft's button is off; asked for anyway, the station refuses it.
        draft = sequence_content(seq.with_name("seq-draft.yaml")).digest
        refused = await page.evaluate(
            """async (d) => { const r = await fetch("load", {method: "POST",
                 headers: {"Content-Type": "application/json", "X-CSRF-Token": me.csrf},
                 body: JSON.stringify({kind: "sequence", digest: d})});
                 return [r.status, (await r.json()).error]; }""",
            draft,
        )
        assert refused[0] == 409 and "it is not approved for production" in refused[1]
        await dialog.locator(".choice", has_text="seq-newer.yaml").locator("button").click()
        await page.wait_for_function(
            "document.getElementById('notice').textContent.includes('1.1.0')"
        )
        await wait_status(station, lambda st: st.reloads == 1)
        assert station.loaded.sequence.path == newer.resolve()
        twin = station.twins["fx1"]
        twin.set_clamp(False)
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
        twin.set_clamp(True)
        await wait_status(station, lambda st: st.fixtures["fx1"].panels == 2)
        assert sum("status of 403" in p or "status of 409" in p for p in problems) == 2, problems
        assert len(problems) == 2, problems
    store = open_store(url)
    kinds = [(e.kind, e.payload.get("name")) for e in store.audit_entries("st1")]
    store.close()
    assert ("load.refused", None) in kinds
    assert ("load", "s3-devkit-functional 1.1.0") in kinds
    ran = [k for k in kinds if k[0] == "production"]
    assert len(ran) == 2  # at start, and the newer sequence at the reload
