"""Which unit each running slot holds: the one owner of "MACs in use" in this process.

Two slots that report one MAC (in one panel, or in two panels running at once on one
event loop) cannot both be the unit they claim: a cloned or lying firmware, a swapped
cable, a simulator misconfigured. Every slot involved is ERROR and none is provisioned.
One registry per event loop, found through `claims_for_loop()`, so every panel on a loop
shares it without a module-level global. Imports nothing from ate.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field

Holder = tuple[str, int]  # (panel id, slot)


@dataclass
class UnitClaims:
    _holders: dict[str, set[Holder]] = field(default_factory=dict)
    _clashes: dict[Holder, str] = field(default_factory=dict)

    def claim(self, mac: str, holder: Holder) -> str | None:
        """Hold `mac` for `holder`; the clash reason when another slot holds it too
        (then every holder of it is marked, including ones already further along)."""
        holders = self._holders.setdefault(mac, set())
        holders.add(holder)
        if len(holders) > 1:
            for h in holders:
                others = ", ".join(
                    f"slot {o[1]} of panel {o[0]}" for o in sorted(holders) if o != h
                )
                self._clashes.setdefault(
                    h, f"identity clash: MAC {mac} is also reported by {others}"
                )
        return self._clashes.get(holder)

    def clash(self, holder: Holder) -> str | None:
        return self._clashes.get(holder)

    def release(self, holder: Holder) -> None:
        for mac in [m for m, hs in self._holders.items() if holder in hs]:
            self._holders[mac].discard(holder)
            if not self._holders[mac]:
                del self._holders[mac]
        self._clashes.pop(holder, None)

    @property
    def held(self) -> int:
        return sum(len(hs) for hs in self._holders.values())


_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, UnitClaims] = (
    weakref.WeakKeyDictionary()
)


def claims_for_loop() -> UnitClaims:
    """The registry of the running event loop (made on first use)."""
    loop = asyncio.get_running_loop()
    claims = _PER_LOOP.get(loop)
    if claims is None:
        claims = _PER_LOOP[loop] = UnitClaims()
    return claims
