"""Labels of locked units: the QR payload, ZPL whose bitmap is segno's QR, delivered to a
printer over raw TCP (a real local server) or to a folder; printer faults never fail a unit."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.model.events import SlotEnded
from ate.model.results import SlotResult, UnitIdentity
from ate.model.verdict import Verdict
from ate.provision.identity import derive_serial
from ate.ui.labels import DOTS_PER_MODULE, Label, LabelPrinter, PrinterTarget, locked_label

SERIAL = derive_serial(b"k" * 32, bytes.fromhex("240ac4000001"), prefix="AS")
MAC = "24:0a:c4:00:00:01"
DAY = dt.date(2026, 12, 5)


def ended(
    verdict: Verdict = Verdict.PASS, state: str = "locked", serial: str = SERIAL
) -> SlotEnded:
    prov = {"serial": serial, "state": state, "product": "S3 Sensor"}
    unit = UnitIdentity(mac=MAC)
    return SlotEnded("p1", SlotResult(1, verdict, unit=unit, extra={"provisioning": prov}))


def gfa_modules(zpl: bytes) -> list[list[bool]]:
    """The ^GFA bitmap of `zpl` back into QR modules (one sample per module)."""
    m = re.search(rb"\^GFA,(\d+),(\d+),(\d+),([0-9A-F]+)\^FS", zpl)
    assert m is not None
    total, row_bytes, data = int(m[1]), int(m[3]), m[4].decode()
    assert len(data) == 2 * total
    rows = [data[i : i + 2 * row_bytes] for i in range(0, len(data), 2 * row_bytes)]
    bits = [bin(int(r, 16))[2:].zfill(row_bytes * 8) for r in rows[::DOTS_PER_MODULE]]
    n = len(bits)
    return [[b[c * DOTS_PER_MODULE] == "1" for c in range(n)] for b in bits]


def test_only_a_passed_locked_unit_gets_a_label() -> None:
    label = locked_label(ended(), DAY)
    assert label == Label(SERIAL, "S3 Sensor", "2026-12-05", MAC)
    assert label.payload == f"S/N:{SERIAL};MAC:{MAC}"
    assert locked_label(ended(Verdict.FAIL), DAY) is None
    assert locked_label(ended(state="serial"), DAY) is None
    wrong = SERIAL[:-1] + ("0" if SERIAL[-1] != "0" else "1")  # another check character
    assert locked_label(ended(serial=wrong), DAY) is None


@settings(max_examples=25, deadline=None)
@given(product=st.text(max_size=20))
def test_zpl_bitmap_is_the_qr_and_text_cannot_inject_commands(product: str) -> None:
    label = Label(SERIAL, product, "2026-12-05", MAC)
    zpl = label.zpl()
    assert gfa_modules(zpl) == [[bool(v) for v in row] for row in label.qr().matrix]
    body = zpl.decode()
    assert body.startswith("^XA") and body.rstrip().endswith("^XZ")
    # Every ^ and ~ in the ZPL is a command we wrote: 4 text/graphic fields, no more.
    assert body.count("^FD") == 3 and body.count("^FS") == 4 and "~" not in body


async def test_labels_reach_a_printer_over_raw_tcp() -> None:
    received: list[bytes] = []
    got = asyncio.Event()

    async def printer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())
        writer.close()
        got.set()

    server = await asyncio.start_server(printer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    labels = LabelPrinter(PrinterTarget.parse(f"tcp://127.0.0.1:{port}"), today=lambda: DAY)
    labels.on_event(ended())
    labels.on_event(ended(Verdict.FAIL))
    await labels.drain()
    await asyncio.wait_for(got.wait(), 5)
    server.close()
    assert received == [Label(SERIAL, "S3 Sensor", "2026-12-05", MAC).zpl()]
    assert labels.printed == [SERIAL] and labels.failed == {}


async def test_a_printer_that_is_gone_is_reported_not_fatal() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    labels = LabelPrinter(PrinterTarget(host="127.0.0.1", port=port), today=lambda: DAY)
    labels.on_event(ended())
    await labels.drain()
    assert labels.printed == [] and "ConnectionRefusedError" in labels.failed[SERIAL]
    assert SERIAL in labels.labels  # the preview and a reprint stay possible


async def test_labels_to_a_folder(tmp_path: Path) -> None:
    labels = LabelPrinter(PrinterTarget.parse(str(tmp_path)), today=lambda: DAY)
    labels.on_event(ended())
    await labels.drain()
    assert (tmp_path / f"{SERIAL}.zpl").read_bytes() == labels.labels[SERIAL].zpl()


@pytest.mark.parametrize("text", ["tcp://", "tcp://host:0", "tcp://host:99999", "tcp:host"])
def test_printer_setting_refused(text: str) -> None:
    with pytest.raises(ValueError, match="label printer"):
        PrinterTarget.parse(text)
