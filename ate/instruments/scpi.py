"""One SCPI instrument session over pyvisa (the pyvisa-py backend: sockets, serial, USBTMC
in pure Python; pyvisa-sim for YAML-defined instruments in tests): the settings every
SCPI driver shares, the *IDN? check on open, strict replies, one lock per instrument.

pyvisa blocks, so each exchange runs in a worker thread (asyncio.to_thread) while the
instrument's lock keeps a write and its error-queue query together; pyvisa's own timeout
bounds each exchange, so no thread is left waiting on a silent instrument.

A reply is a reading only if it is a plain decimal number: NaN, inf, the SCPI overflow
markers (9.9E37 for an out-of-range input, 9.91E37 for "not a number") and any text are
an InstrumentError, never a value.

Imports ate.config.common and ate.instruments.base only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ate.config.common import Bool, Strict
from ate.instruments.base import InstrumentError, InstrumentMismatch

_NUMBER = re.compile(
    r"[-+]?(?:[0-9]{1,40}(?:\.[0-9]{0,40})?|\.[0-9]{1,40})(?:[eE][-+]?[0-9]{1,3})?"
)
_SYST_ERR = re.compile(r'([-+]?[0-9]{1,6})\s*,\s*"(.{0,200})"')
OVERFLOW = 9.9e37  # SCPI-99 7.2.1: +9.9E37 overflow, -9.9E37 underflow, 9.91E37 NaN
MAX_REPLY = 4096  # longer than any honest reply; bounds what a hostile one costs
_RESYNC_LINES = 16  # replies that may be in flight after a failed exchange


class ScpiSettings(Strict):
    """Where a SCPI instrument is and what it must say it is."""

    resource: str = Field(
        min_length=1,
        description="VISA resource, e.g. TCPIP::192.168.1.20::5025::SOCKET (a LAN "
        "instrument's raw SCPI port), ASRL/dev/serial/by-id/...::INSTR, USB0::...::INSTR",
    )
    idn: str = Field(
        min_length=1,
        description="a regular expression the *IDN? answer must contain, e.g. "
        "'KEYSIGHT.*,E36313A,' (make and model; add the serial to pin one unit)",
    )
    backend: str = Field(
        "@py",
        description="pyvisa backend: @py (pyvisa-py), or FILE.yaml@sim (pyvisa-sim; FILE "
        "relative to the fixture file)",
    )
    timeout: float = Field(2.0, gt=0, le=60, description="seconds per exchange")
    check_errors: Bool = Field(True, description="read SYST:ERR? after every command")

    @field_validator("idn")
    @classmethod
    def _pattern(cls, text: str) -> str:
        try:
            re.compile(text)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return text


def parse_number(text: str, what: str) -> float:
    """A finite decimal reading from `text`, or an InstrumentError saying why not."""
    shown = text[:60]
    t = text.strip()
    if len(t) > 64 or not _NUMBER.fullmatch(t):
        raise InstrumentError(f"{what} answered {shown!r}, not a number")
    value = float(t)
    if not math.isfinite(value):  # 1e999: no regex keeps out every way to infinity
        raise InstrumentError(f"{what} answered {shown!r}, not a finite number")
    if abs(value) >= OVERFLOW:
        raise InstrumentError(
            f"{what} answered {shown!r}: the SCPI overflow / not-a-number marker "
            "(input out of range or no valid reading)"
        )
    return value


def _backend(backend: str, base_dir: Path) -> str:
    if backend.endswith("@sim") and backend != "@sim":
        path = Path(backend[: -len("@sim")])
        return f"{path if path.is_absolute() else base_dir / path}@sim"
    return backend


class ScpiLink:
    """An open SCPI session: `query`, `query_number`, `write` (error queue checked)."""

    def __init__(self, name: str, settings: ScpiSettings, manager: Any, resource: Any) -> None:
        self.name = name
        self.settings = settings
        self.idn = ""
        self._manager = manager
        self._resource = resource
        self._lock = asyncio.Lock()
        self._stale = False  # an exchange failed: its reply may still come

    @classmethod
    async def open(cls, name: str, settings: ScpiSettings, base_dir: Path) -> ScpiLink:
        """Open the instrument and check its *IDN? (InstrumentMismatch when it is another,
        InstrumentError when nothing answers)."""
        import pyvisa  # only a fixture with SCPI instruments loads it

        where = f"instrument {name!r} at {settings.resource}"

        def connect() -> tuple[Any, Any]:
            # pyvisa shares one manager per backend between every session on it: closing
            # it would close the other instruments' sessions, so only resources are closed.
            manager = pyvisa.ResourceManager(_backend(settings.backend, base_dir))
            resource = manager.open_resource(
                settings.resource,
                read_termination="\n",
                write_termination="\n",
                timeout=round(settings.timeout * 1000),
            )
            return manager, resource

        try:
            manager, resource = await asyncio.to_thread(connect)
        except (pyvisa.Error, OSError, ValueError) as exc:
            raise InstrumentError(f"{where}: cannot open: {_one_line(exc)}") from None
        link = cls(name, settings, manager, resource)
        try:
            idn = await link.query("*IDN?")
        except InstrumentError as exc:  # nothing there, or silent: not another instrument
            await link.aclose()
            raise InstrumentError(f"{where} does not answer *IDN?: {exc}") from None
        if not re.search(settings.idn, idn):
            await link.aclose()
            raise InstrumentMismatch(
                f"{where} answers *IDN? with {idn[:80]!r}; the fixture file expects "
                f"/{settings.idn}/"
            )
        link.idn = idn
        return link

    async def _exchange(self, command: str, reply: bool) -> str:
        """One command (and its reply) in a worker thread; the caller holds the lock.

        After an exchange that failed or was cancelled, the instrument may still send
        that command's reply: the next exchange first resynchronises (see `_resync`),
        so a late reply is never taken as the answer to another command."""
        import pyvisa

        def run() -> str:
            if self._stale:
                self._resync()
            if reply:
                return str(self._resource.query(command))
            self._resource.write(command)
            return ""

        exchange = asyncio.ensure_future(asyncio.to_thread(run))
        try:
            text = await asyncio.shield(exchange)
        except asyncio.CancelledError:
            # The thread cannot be stopped: keep the lock until pyvisa's timeout ends it,
            # so that no other command starts while this one is on the wire.
            with contextlib.suppress(BaseException):
                await exchange
            self._stale = True
            raise
        except (pyvisa.Error, OSError, UnicodeDecodeError, InstrumentError) as exc:
            self._stale = True
            raise InstrumentError(
                f"instrument {self.name!r}: {command}: {_one_line(exc)}"
            ) from None
        if len(text) > MAX_REPLY:
            self._stale = True  # the rest of it may still be coming
            raise InstrumentError(
                f"instrument {self.name!r}: {command}: a reply of {len(text)} characters"
            )
        return text

    def _resync(self) -> None:
        """(In the worker thread.) Ask *IDN? and discard every line until its answer:
        whatever was still in flight is read and dropped."""
        self._resource.write("*IDN?")
        for _ in range(_RESYNC_LINES):
            if str(self._resource.read()).strip() == self.idn:
                self._stale = False
                return
        raise InstrumentError(f"out of step: no *IDN? answer in {_RESYNC_LINES} lines")

    async def query(self, command: str) -> str:
        async with self._lock:
            return (await self._exchange(command, True)).strip()

    async def query_number(self, command: str) -> float:
        return parse_number(await self.query(command), f"instrument {self.name!r}: {command}")

    async def write(self, command: str) -> None:
        async with self._lock:
            await self._exchange(command, False)
            if self.settings.check_errors:
                answer = (await self._exchange("SYST:ERR?", True)).strip()
                found = _SYST_ERR.fullmatch(answer)
                if found is None:
                    raise InstrumentError(
                        f"instrument {self.name!r}: SYST:ERR? after {command} answered "
                        f"{answer[:60]!r}"
                    )
                if int(found.group(1)) != 0:
                    raise InstrumentError(
                        f"instrument {self.name!r}: {command} refused: "
                        f"{found.group(1)},{found.group(2)!r}"
                    )

    async def aclose(self) -> None:
        def close() -> None:
            self._resource.close()

        async with self._lock:
            # Closing a session that already failed: nothing left to save.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(close)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
