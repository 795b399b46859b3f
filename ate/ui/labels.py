"""Unit labels: a QR code (segno) with serial, product and date, for every unit that
ended locked; ZPL for a Zebra-class printer (raw TCP 9100) or a file, and a PNG preview
for the operator's page. Imports ate.model and ate.provision.identity (the payload).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import segno

from ate.model.events import Event, SlotEnded
from ate.model.verdict import Verdict
from ate.provision.identity import check_serial, label_payload

_log = logging.getLogger(__name__)
DOTS_PER_MODULE = 4  # 0.5 mm modules at 203 dpi: scans from a hand-held imager
# ZPL reads ^ and ~ as commands inside a field: product names never reach the printer raw.
_ZPL_UNSAFE = re.compile(r"[\^~\\]")


@dataclass(frozen=True, slots=True)
class Label:
    serial: str
    product: str
    date: str  # ISO date the unit was locked
    mac: str

    @property
    def payload(self) -> str:
        return label_payload(self.serial, self.mac)

    def qr(self) -> segno.QRCode:
        return segno.make_qr(self.payload, error="m")

    def png(self, scale: int = 8) -> bytes:
        out = io.BytesIO()
        self.qr().save(out, kind="png", scale=scale, border=2)
        return out.getvalue()

    def zpl(self) -> bytes:
        """The label as ZPL II: the QR code as a bitmap (^GFA, segno's modules, so the
        printer's own QR encoder cannot differ from the preview) and three text lines."""
        rows = [list(r) for r in self.qr().matrix]
        width = len(rows[0]) * DOTS_PER_MODULE
        row_bytes = (width + 7) // 8
        hex_rows = []
        for modules in rows:
            bits = "".join(("1" if m else "0") * DOTS_PER_MODULE for m in modules)
            bits = bits.ljust(row_bytes * 8, "0")
            line = f"{int(bits, 2):0{row_bytes * 2}X}"
            hex_rows.extend([line] * DOTS_PER_MODULE)
        total = row_bytes * len(hex_rows)
        text = [_ZPL_UNSAFE.sub("_", t) for t in (self.serial, self.product, self.date)]
        x = 30 + width + 20
        return (
            "^XA^CI28\n"
            f"^FO30,30^GFA,{total},{total},{row_bytes},{''.join(hex_rows)}^FS\n"
            f"^FO{x},40^A0N,34,34^FD{text[0]}^FS\n"
            f"^FO{x},90^A0N,28,28^FD{text[1]}^FS\n"
            f"^FO{x},135^A0N,28,28^FD{text[2]}^FS\n"
            "^XZ\n"
        ).encode()


def locked_label(event: SlotEnded, today: dt.date) -> Label | None:
    """The label of a unit that ended PASS and locked, else None."""
    result = event.result
    prov = result.extra.get("provisioning")
    if result.verdict is not Verdict.PASS or not isinstance(prov, dict):
        return None
    serial = prov.get("serial")
    if prov.get("state") != "locked" or not isinstance(serial, str) or not check_serial(serial):
        return None
    if result.unit is None:
        return None
    return Label(serial, str(prov.get("product") or ""), today.isoformat(), result.unit.mac)


async def send_zpl(data: bytes, host: str, port: int = 9100, timeout: float = 5.0) -> None:
    """Raw TCP ("port 9100", JetDirect) to the printer: it prints what it receives."""
    async with asyncio.timeout(timeout):
        _, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(data)
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()


@dataclass(frozen=True, slots=True)
class PrinterTarget:
    """Where labels go: `tcp://host[:port]` or a folder (one .zpl per serial)."""

    host: str | None = None
    port: int = 9100
    folder: Path | None = None

    @classmethod
    def parse(cls, text: str) -> PrinterTarget:
        m = re.fullmatch(r"tcp://([A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?", text)
        if m:
            port = int(m.group(2) or 9100)
            if not 0 < port < 65536:
                raise ValueError(f"label printer {text!r}: port must be 1 to 65535")
            return cls(host=m.group(1).strip("[]"), port=port)
        if text.startswith("tcp:"):
            raise ValueError(f"label printer {text!r}: allowed is tcp://HOST[:PORT]")
        return cls(folder=Path(text))

    async def send(self, label: Label) -> None:
        data = label.zpl()
        if self.host is not None:
            await send_zpl(data, self.host, self.port)
        else:
            assert self.folder is not None
            path = self.folder / f"{label.serial}.zpl"
            await asyncio.to_thread(path.write_bytes, data)


class LabelPrinter:
    """An EventBus subscriber: prints a label for every locked unit and keeps it for the
    page's preview (`labels`, by serial). A printer fault never fails the unit; it is
    counted and shown (`failed`)."""

    def __init__(
        self,
        target: PrinterTarget | None,
        *,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.target = target
        self.labels: dict[str, Label] = {}
        self.printed: list[str] = []
        self.failed: dict[str, str] = {}
        self._today = today
        self.on_change = on_change
        self._tasks: set[asyncio.Task[None]] = set()

    def on_event(self, event: Event) -> None:
        if isinstance(event, SlotEnded):
            label = locked_label(event, self._today())
            if label is not None:
                self.labels[label.serial] = label
                self.on_change()
                self.print(label)

    def print(self, label: Label) -> None:
        if self.target is None:
            return
        task = asyncio.get_running_loop().create_task(self._print(label))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _print(self, label: Label) -> None:
        assert self.target is not None
        try:
            await self.target.send(label)
        except (OSError, TimeoutError) as exc:
            self.failed[label.serial] = f"{type(exc).__name__}: {exc}"
            _log.warning("label for %s not printed: %s", label.serial, exc)
        else:
            self.failed.pop(label.serial, None)
            self.printed.append(label.serial)
        self.on_change()

    async def drain(self) -> None:
        """Until every label sent so far has been printed or has failed."""
        while self._tasks:
            await asyncio.gather(*self._tasks)
