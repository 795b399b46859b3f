"""Critical sections: irreversible acts (an eFuse burn, a certificate issuance) from the
recorded intent to the recorded outcome. A station stopping closes the gate, waits until
no act is in progress, and only then aborts the panel, so every act that started is
completed and recorded; an act that has not started yet does not start.

Imports the standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class CriticalSections:
    """Counts irreversible acts in progress; one per station process."""

    def __init__(self) -> None:
        self._active: dict[str, int] = {}
        self._closed = False
        self._idle: asyncio.Event | None = None
        self._blocked: asyncio.Future[None] | None = None

    def _event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            self._idle.set()
        return self._idle

    @property
    def active(self) -> list[str]:
        return sorted(self._active)

    @property
    def closed(self) -> bool:
        return self._closed

    async def enter(self, name: str) -> None:
        """Start act `name`; once the gate is closed this waits until cancelled (the
        panel's abort), so no new irreversible act begins during a shutdown."""
        if self._closed:
            await asyncio.get_running_loop().create_future()  # until cancelled
        self._active[name] = self._active.get(name, 0) + 1
        self._event().clear()

    def leave(self, name: str) -> None:
        n = self._active.get(name, 0) - 1
        if n > 0:
            self._active[name] = n
        else:
            self._active.pop(name, None)
        if not self._active:
            self._event().set()

    @contextlib.asynccontextmanager
    async def section(self, name: str) -> AsyncIterator[None]:
        await self.enter(name)
        try:
            yield
        finally:
            self.leave(name)

    def close(self) -> None:
        """No new act from now on."""
        self._closed = True

    def reopen(self) -> None:
        self._closed = False

    async def wait_idle(self) -> None:
        """Until no act is in progress."""
        await self._event().wait()
