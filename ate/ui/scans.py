"""The unit labels scanned for each fixture's slots before its clamp closes: typed into
the page by a keyboard-wedge scanner (or sent by a serial scanner through the station).
A scan is checked when it is made (a serial with a right check character, or the QR
payload `S/N:...;MAC:...` the labels carry), so the operator hears about a wrong label
at once; the fixture loop takes a fixture's scans when its panel starts, and provisioning
compares each with the unit's serial (the `--label` check).

Imports ate.provision.identity (sans-IO) only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from ate.provision.identity import check_serial, normalise_serial

ScanMode = Literal["off", "optional", "required"]
_MAX_SCAN = 128  # a label's QR payload is well under this; longer is a stuck key


class ScanRefused(ValueError):
    """A scan that is not kept; `key` names the catalog message, `slot` a clash."""

    def __init__(self, key: str, text: str, slot: int | None = None) -> None:
        super().__init__(text)
        self.key, self.slot = key, slot


def label_serial(scan: str) -> str:
    """The serial a scanned label carries (ScanRefused if it carries none)."""
    text = scan.strip()
    if not text or len(text) > _MAX_SCAN or not text.isprintable() or not text.isascii():
        raise ScanRefused("error.scan.bad", f"not a unit label: {text[:40]!r}")
    if text.upper().startswith("S/N:"):
        text = text[4:].split(";", 1)[0]
    serial = normalise_serial(text)
    if not check_serial(serial):
        raise ScanRefused("error.scan.bad", f"not a unit label (no valid serial): {text[:40]!r}")
    return serial


class ScanBook:
    """Scans per fixture and slot, until the fixture's next panel takes them."""

    def __init__(self, slots: dict[str, tuple[int, ...]], mode: ScanMode = "optional") -> None:
        self.slots = dict(slots)  # fixture -> its enabled slots
        self.mode = mode
        self.on_change: Callable[[], None] = lambda: None
        self._codes: dict[str, dict[int, str]] = {}
        self._busy: set[str] = set()  # fixtures whose panel is running

    def scan(self, fixture: str, slot: int, code: str) -> str:
        """Keep the label scanned for `slot`; its serial, or ScanRefused."""
        if slot not in self.slots.get(fixture, ()):
            raise ScanRefused("error.scan.slot", f"no slot {slot} on fixture {fixture!r}")
        if fixture in self._busy:
            raise ScanRefused("error.scan.busy", "scan before the clamp closes")
        serial = label_serial(code)
        codes = self._codes.setdefault(fixture, {})
        for other_fixture, other in self._codes.items():
            for other_slot, other_serial in other.items():
                if other_serial == serial and (other_fixture, other_slot) != (fixture, slot):
                    raise ScanRefused(
                        "error.scan.twice",
                        f"label already scanned for slot {other_slot}",
                        other_slot,
                    )
        codes[slot] = serial
        self.on_change()
        return serial

    def scan_next(self, fixture: str, code: str) -> int:
        """A scan from a serial scanner: it goes to the fixture's first slot without a
        label (slot order), which is returned; ScanRefused when all have one."""
        free = [s for s in self.slots.get(fixture, ()) if s not in self._codes.get(fixture, {})]
        if not free:
            raise ScanRefused("error.scan.full", "every slot has a label already")
        self.scan(fixture, free[0], code)
        return free[0]

    def clear(self, fixture: str, slot: int) -> None:
        if self._codes.get(fixture, {}).pop(slot, None) is not None:
            self.on_change()

    def pending(self, fixture: str) -> dict[int, str]:
        return dict(self._codes.get(fixture, {}))

    def take(self, fixture: str) -> dict[int, str]:
        """A panel starts: its scans, and no more scans until `done(fixture)`."""
        self._busy.add(fixture)
        taken = self._codes.pop(fixture, {})
        self.on_change()
        return taken

    def done(self, fixture: str) -> None:
        self._busy.discard(fixture)
        self.on_change()
