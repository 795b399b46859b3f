"""Shared fixture resources (DMM behind a mux, golden board) arbitrated by capacity."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager


class ResourcePool:
    """A semaphore per resource. Steps take their resources in sorted name order, so two
    steps needing {dmm, golden} can never each hold one and wait for the other."""

    def __init__(self, capacities: Mapping[str, int]) -> None:
        self._sems = {name: asyncio.Semaphore(cap) for name, cap in capacities.items()}
        self.capacities = dict(capacities)
        self.busy_s = dict.fromkeys(capacities, 0.0)  # total holding time, for the report

    def free(self, names: tuple[str, ...]) -> bool:
        """Could all of `names` be taken right now without waiting?"""
        return not any(self._sems[name].locked() for name in names)

    def unknown(self, names: Iterable[str]) -> list[str]:
        return sorted(set(names) - self._sems.keys())

    @asynccontextmanager
    async def hold(self, names: tuple[str, ...]) -> AsyncIterator[float]:
        """Acquire every resource in `names` (sorted); yields the seconds spent waiting."""
        t0 = time.monotonic()
        taken: list[asyncio.Semaphore] = []
        t1 = t0
        try:
            for name in names:
                sem = self._sems[name]
                await sem.acquire()
                taken.append(sem)
            t1 = time.monotonic()
            yield t1 - t0
        finally:
            held = time.monotonic() - t1 if len(taken) == len(names) else 0.0
            for name, sem in zip(names, taken, strict=False):
                sem.release()
                self.busy_s[name] += held
