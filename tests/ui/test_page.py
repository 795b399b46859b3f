"""The operator's page in headless Chromium, pushed live by a real panel on the simulated
fixture; Chinese catalog; no console errors. Screenshots go to /tmp for a person to look at."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import segno

from ate.config.loader import load_sequence
from ate.model.events import Event, PanelStarted, SlotEnded, SlotStarted, StepStarted
from ate.model.results import SlotResult, UnitIdentity
from ate.model.verdict import Verdict
from ate.ui.app import check_bind
from ate.ui.labels import LabelPrinter
from ate.ui.view import StationView
from tests.scheduler.conftest import FAST, S3_SEQUENCE, Bench
from tests.ui.conftest import start_page
from tests.ui.test_view import FAULTS

SHOTS = Path("/tmp/ate-ui-shots")
SHOTS.mkdir(exist_ok=True)
SIZES = ((1280, 800), (800, 480))


async def open_page(browser: Any, url: str, size: tuple[int, int]) -> tuple[Any, list[str]]:
    page = await browser.new_page(viewport={"width": size[0], "height": size[1]})
    problems: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"request failed {r.url}"))
    await page.goto(url)
    return page, problems


def tile(page: Any, slot: int) -> Any:
    return page.locator(f'.tile[data-slot="{slot}"]')


async def test_a_panel_seen_live_with_pass_fail_error_tiles(make_bench: Any, browser: Any) -> None:
    bench: Bench = make_bench(sim_slots=FAULTS)
    view = StationView("st1", lot="L42", steps_total=len(load_sequence(S3_SEQUENCE).model.steps))
    server = await start_page(view)
    try:
        pages = [await open_page(browser, server.url, size) for size in SIZES]
        page = pages[0][0]
        # Live: the page saw a slot testing while the panel ran (pushed, not reloaded).
        testing_seen = asyncio.Event()

        def on_event(event: Event) -> None:
            view.on_event(event)

        async def watch_testing() -> None:
            await page.locator('.tile[data-state="testing"]').first.wait_for(timeout=30_000)
            testing_seen.set()

        watcher = asyncio.create_task(watch_testing())
        result = await bench.run(subscribers=(on_event,))
        await asyncio.wait_for(watcher, 30)
        assert testing_seen.is_set()
        version = view.version
        for page, _ in pages:
            await page.wait_for_function(f"window.__ate.version >= {version}")
        page = pages[0][0]
        expect = {1: "PASS", 2: "FAIL", 3: "ERROR", 4: "EMPTY"}
        assert {s: r.verdict.value for s, r in result.slots.items()} == expect
        for slot, word in expect.items():
            assert await tile(page, slot).get_attribute("data-state") == word
            assert await tile(page, slot).locator(".word").inner_text() == word
        fail = await tile(page, 2).locator(".fail").inner_text()
        assert fail.startswith("Failed: rail_3v3 · rail.3v3 = 2.9")
        assert fail.endswith(" V (limits 3.2 .. 3.4 V)")
        assert await tile(page, 3).locator(".todo").inner_text() == "Reseat the board and retest"
        mac = result.slots[1].unit.mac  # type: ignore[union-attr]
        assert mac in await tile(page, 1).locator(".ids").inner_text()
        header = await page.locator("#header").inner_text()
        assert "L42" in header and "s3-devkit" in header
        assert await page.locator("#banner").is_hidden()
        for (p, probs), (w, h) in zip(pages, SIZES, strict=True):
            await p.screenshot(path=str(SHOTS / f"panel-{w}x{h}.png"))
            assert probs == [], probs
    finally:
        await server.close()


async def test_chinese_catalog_renders(browser: Any) -> None:
    view = StationView("st1", lot="L42", steps_total=8)
    seq = {"name": "s3", "version": "2"}
    view.on_event(PanelStarted("p1", "f1", "st1", "op", seq, (1, 2), "t"))
    unit = UnitIdentity(mac="aa:bb:cc:00:00:01")
    view.on_event(SlotEnded("p1", SlotResult(1, Verdict.PASS, unit=unit)))
    view.on_event(SlotStarted("p1", 2))
    view.on_event(StepStarted("p1", 2, 3, "rail_3v3", 1))
    server = await start_page(view, lang="zh")
    try:
        for w, h in SIZES:
            page, problems = await open_page(browser, server.url, (w, h))
            await page.wait_for_function(f"window.__ate.version >= {view.version}")
            assert await page.locator("html").get_attribute("lang") == "zh-Hans"
            assert await tile(page, 1).locator(".word").inner_text() == "合格"
            assert await tile(page, 2).locator(".word").inner_text() == "测试中"
            assert "步骤: rail_3v3" in await tile(page, 2).locator(".step").inner_text()
            assert "直通率" in await page.locator("#header").inner_text()
            await page.screenshot(path=str(SHOTS / f"zh-{w}x{h}.png"))
            assert problems == [], problems
    finally:
        await server.close()


def test_only_loopback_is_served() -> None:
    check_bind("127.0.0.1")
    check_bind("::1")
    with pytest.raises(ValueError, match="only a loopback address"):
        check_bind("0.0.0.0")


async def test_a_prompt_answered_on_the_page(make_bench: Any, browser: Any, tmp_path: Any) -> None:
    from tests.ui.test_prompts import with_prompt

    bench: Bench = make_bench(slots=2)
    segno.make_qr("LED green").save(str(tmp_path / "led.png"), scale=6)
    seq = load_sequence(with_prompt(tmp_path, image="led.png"))
    view = StationView("st1", steps_total=len(seq.model.steps))
    server = await start_page(view)
    try:
        page, problems = await open_page(browser, server.url, (1280, 800))
        options = dataclasses.replace(FAST, prompts=view.prompts)
        run = asyncio.create_task(bench.run(seq, options=options, subscribers=(view.on_event,)))
        for slot, button in ((1, "yes"), (2, "no")):
            ask = tile(page, slot).locator(".ask")
            await ask.locator(".question").wait_for(timeout=30_000)
            assert await ask.locator(".question").inner_text() == "Is the status LED green?"
            await page.wait_for_function(
                f"document.querySelector('.tile[data-slot=\"{slot}\"] img.compare')"
                ".naturalWidth > 0"
            )
            if slot == 1:
                await page.screenshot(path=str(SHOTS / "prompt-1280x800.png"))
            await ask.locator(f'button[data-answer="{button}"]').click()
        result = await run
        assert result.slots[1].steps[0].measurements[0].value == "yes"
        assert result.slots[2].steps[0].verdict is Verdict.FAIL
        await page.wait_for_function(f"window.__ate.version >= {view.version}")
        assert await tile(page, 1).locator(".ask").is_hidden()
        assert await tile(page, 2).get_attribute("data-state") == "FAIL"
        assert "answer = no, wanted yes" in await tile(page, 2).locator(".fail").inner_text()
        # A stale answer (the question is gone) is refused with the catalog's words.
        status, body = await page.evaluate(
            """async () => { const r = await fetch("prompt/x", {method: "POST",
                 headers: {"Content-Type": "application/json"}, body: '{"answer":"yes"}'});
                 return [r.status, await r.json()]; }"""
        )
        gone = "That question is no longer open (answered or timed out)"
        assert (status, body["error"]) == (409, gone)
        problems.clear()  # the 409 above is logged by the browser on purpose
    finally:
        await server.close()


async def test_answers_from_another_site_or_not_json_are_refused(browser: Any) -> None:
    view = StationView("st1")
    server = await start_page(view)
    try:
        page, _ = await open_page(browser, server.url, (800, 480))
        results = await page.evaluate(
            """async () => {
              const a = await fetch("prompt/x", {method: "POST", body: "answer=yes",
                headers: {"Content-Type": "application/x-www-form-urlencoded"}});
              const b = await fetch("prompt/x", {method: "POST", body: "{}",
                headers: {"Content-Type": "application/json"}});
              return [a.status, b.status]; }"""
        )
        assert results == [415, 400]
    finally:
        await server.close()


async def test_a_label_preview_on_a_locked_units_tile(browser: Any) -> None:
    from tests.ui.test_labels import DAY, SERIAL, ended

    view = StationView("st1", steps_total=3)
    printer = LabelPrinter(None, today=lambda: DAY)
    view.attach_labels(printer)
    for event in (
        PanelStarted("p1", "f1", "st1", "op", {"name": "s3", "version": "2"}, (1, 2), "t"),
        ended(),
        SlotEnded("p1", SlotResult(2, Verdict.FAIL, unit=UnitIdentity(mac="aa:bb:cc:00:00:02"))),
    ):
        view.on_event(event)
        printer.on_event(event)
    server = await start_page(view)
    try:
        page, problems = await open_page(browser, server.url, (800, 480))
        await page.wait_for_function(f"window.__ate.version >= {view.version}")
        img = tile(page, 1).locator("img.qr")
        await img.wait_for()
        await page.wait_for_function("document.querySelector('img.qr').naturalWidth > 0")
        assert SERIAL in await tile(page, 1).locator(".ids").inner_text()
        assert (
            await tile(page, 1).locator(".lstate").inner_text()
            == "Label: no printer set (preview only)"
        )
        assert await tile(page, 2).locator(".ask").is_hidden()
        assert await tile(page, 2).locator("img.qr").count() == 0
        png = await page.evaluate(
            """async (src) => Array.from(new Uint8Array(await (await fetch(src)).arrayBuffer()))""",
            await img.get_attribute("src"),
        )
        assert bytes(png) == printer.labels[SERIAL].png()
        await page.screenshot(path=str(SHOTS / "label-800x480.png"))
        assert problems == [], problems
    finally:
        await server.close()
