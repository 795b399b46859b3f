"""Fixture states from the station's status on the page (offline, clamp open, refused),
and a label reprint: refused to an operator, done and audited for a technician."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from ate.store import open_store
from ate.ui.app import operator_app
from ate.ui.auth import Authority, add_user
from ate.ui.labels import LabelPrinter, PrinterTarget
from ate.ui.view import StationView
from tests.ui.conftest import serve
from tests.ui.test_labels import DAY, SERIAL, ended
from tests.ui.test_page import open_page
from tests.ui.test_view import _Fixture, _started, _Status


async def test_offline_clamp_open_and_refused_fixtures(browser: Any) -> None:
    status = _Status()
    status.fixtures["f2"] = _Fixture("f2", False, "offline")
    status.fixtures["f3"] = _Fixture("f3", True, "refused", "disk full")
    view = StationView("x")
    view.watch(status)
    server = await serve(operator_app(view, lang="en"))
    try:
        page, problems = await open_page(browser, server.url, (800, 480))
        await page.wait_for_function(f"window.__ate.version >= {view.version}")
        state = {
            f: await page.locator(f'section[data-fixture="{f}"] .fstate').inner_text()
            for f in ("f1", "f2", "f3")
        }
        assert state == {
            "f1": "Clamp open: load boards",
            "f2": "\u26a0 Fixture offline",
            "f3": "\u26a0 Cannot start: disk full",
        }
        status.set(online=False, state="offline")
        await page.wait_for_function(f"window.__ate.version >= {view.version}")
        assert await page.locator('section[data-fixture="f1"]').get_attribute("data-state") == (
            "offline"
        )
        await page.screenshot(path="/tmp/ate-ui-shots/states-800x480.png")
        assert problems == [], problems
    finally:
        await server.close()


async def test_label_reprint_needs_a_technician_and_is_audited(
    browser: Any, tmp_path: Path
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'line.db'}")
    add_user(store, "olga", "operator", "4711", station="st1", by="test")
    add_user(store, "tom", "technician", "8080", station="st1", by="test")
    labels_dir = tmp_path / "labels"
    labels_dir.mkdir()
    view = StationView("st1")
    printer = LabelPrinter(PrinterTarget(folder=labels_dir), today=lambda: DAY)
    view.attach_labels(printer)
    view.on_event(_started("p1"))
    view.on_event(ended())
    printer.on_event(ended())
    await printer.drain()
    (labels_dir / f"{SERIAL}.zpl").unlink()
    printer.printed.clear()
    reprinted = asyncio.Event()
    bump = printer.on_change

    def on_change() -> None:
        bump()
        if SERIAL in printer.printed:
            reprinted.set()

    printer.on_change = on_change
    server = await serve(operator_app(view, auth=Authority(store, "st1", os.urandom(32))))
    try:
        page, _ = await open_page(browser, server.url, (1280, 800))
        for name, pin in (("olga", "4711"), ("tom", "8080")):
            if await page.locator("button.signout").count():
                await page.locator("button.signout").click()
            await page.locator("input.name").fill(name)
            await page.locator("input.pin").fill(pin)
            await page.locator("button.go").click()
            await page.locator("#account .who").wait_for()
            await page.locator("button.reprint").click()
            if name == "olga":
                await page.wait_for_function(
                    "document.getElementById('notice').textContent.startsWith('Refused')"
                )
                assert not (labels_dir / f"{SERIAL}.zpl").exists()
        await asyncio.wait_for(reprinted.wait(), 30)
    finally:
        await server.close()
    assert (labels_dir / f"{SERIAL}.zpl").read_bytes() == printer.labels[SERIAL].zpl()
    acts = [(e.kind, e.payload) for e in store.audit_entries("st1") if e.kind == "label.reprint"]
    store.close()
    assert acts == [("label.reprint", {"user": "tom", "role": "technician", "serial": SERIAL})]
