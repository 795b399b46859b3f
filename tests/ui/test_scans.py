"""Labels scanned per slot before the clamp closes: checked as they are scanned (a
serial with a right check character, or the label's QR payload), one label for one slot
only, none while the fixture's panel runs; on the page a keyboard-wedge scanner types
into a slot's field and Enter moves to the next slot, in Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ate.provision.identity import derive_serial, label_payload
from ate.ui.scans import ScanBook, ScanRefused, label_serial
from ate.ui.view import StationView
from tests.ui.conftest import start_page
from tests.ui.test_page import open_page, tile

SHOTS = Path("/tmp/ate-ui-shots")


def serial(n: int) -> str:
    return derive_serial(b"k" * 32, bytes([n]) * 6, prefix="AS3", digits=9)


def test_label_serial_reads_serials_and_qr_payloads() -> None:
    s = serial(1)
    assert label_serial(s) == s
    assert label_serial(f"  {s.lower()}\r\n") == s
    assert label_serial(label_payload(s, "aa:bb:cc:dd:ee:ff")) == s
    broken = s[:-1] + ("0" if s[-1] != "0" else "1")  # a wrong check character
    for bad in (broken, "", "x" * 200, "AS3-\x00", "hello", "AS3-ÄÖÜ12-34567-X"):
        with pytest.raises(ScanRefused) as refused:
            label_serial(bad)
        assert refused.value.key == "error.scan.bad"


@given(st.text(max_size=80))
def test_any_text_is_a_serial_or_refused(text: str) -> None:
    try:
        got = label_serial(text)
    except ScanRefused:
        return
    assert got.isascii() and got == got.upper() and "-" in got


def test_one_label_one_slot_and_no_scans_during_a_panel() -> None:
    book = ScanBook({"fx1": (1, 2), "fx2": (1,)}, "required")
    changes: list[int] = []
    book.on_change = lambda: changes.append(1)
    book.scan("fx1", 1, serial(1))
    with pytest.raises(ScanRefused) as twice:
        book.scan("fx2", 1, serial(1))  # the same label on another fixture's slot
    assert (twice.value.key, twice.value.slot) == ("error.scan.twice", 1)
    book.scan("fx1", 1, serial(2))  # scanned again: the slot's label is replaced
    book.scan("fx1", 2, serial(1))
    with pytest.raises(ScanRefused, match="no slot 3"):
        book.scan("fx1", 3, serial(3))
    assert book.take("fx1") == {1: serial(2), 2: serial(1)}
    with pytest.raises(ScanRefused) as busy:
        book.scan("fx1", 1, serial(4))
    assert busy.value.key == "error.scan.busy"
    book.scan("fx2", 1, serial(5))  # another fixture scans on
    book.done("fx1")
    assert book.pending("fx1") == {}
    book.scan("fx1", 1, serial(4))
    assert book.pending("fx1") == {1: serial(4)} and len(changes) == 7


async def test_wedge_scans_on_the_page(browser: Any) -> None:
    view = StationView("st1")
    book = ScanBook({"fx1": (1, 2, 3, 4)}, "required")
    view.attach_scans(book)
    SHOTS.mkdir(exist_ok=True)  # noqa: ASYNC240 - once, before the server starts
    server = await start_page(view)
    try:
        page, problems = await open_page(browser, server.url, (1280, 800))
        first = tile(page, 1).locator("input.scancode")
        await first.wait_for()
        assert await tile(page, 1).locator(".scanned").inner_text() == (
            "Scan the label before closing the clamp"
        )
        await first.focus()
        await page.keyboard.type(serial(1) + "\n")  # what a wedge scanner does
        await page.wait_for_function(
            "document.activeElement && document.activeElement.dataset.slot === '2'"
        )
        assert book.pending("fx1") == {1: serial(1)}
        await page.keyboard.type(serial(1) + "\n")  # slot 1's label again, on slot 2
        err = tile(page, 2).locator(".scanerror")
        await page.wait_for_function(
            "document.querySelector('.tile[data-slot=\"2\"] .scanerror').textContent !== ''"
        )
        assert await err.inner_text() == "This label is already scanned for slot 1"
        await page.keyboard.type("not-a-label\n")
        await page.wait_for_function(
            "document.querySelector('.tile[data-slot=\"2\"] .scanerror').textContent"
            ".startsWith('Not a unit label')"
        )
        await page.keyboard.type(f"S/N:{serial(2)};MAC:aa:bb:cc:dd:ee:02\n")  # the QR
        await page.wait_for_function(
            "document.querySelector('.tile[data-slot=\"2\"] .scanned').textContent"
            f".endsWith('{serial(2)}')"
        )
        assert await err.inner_text() == ""
        assert book.pending("fx1") == {1: serial(1), 2: serial(2)}
        await page.screenshot(path=str(SHOTS / "scans-1280x800.png"))
        # Refused scans answer 400 and the browser logs them; nothing else.
        assert len(problems) == 2 and all("status of 400" in p for p in problems), problems
    finally:
        await server.close()
