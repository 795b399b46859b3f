"""The gpiod driver's simulated twin: an in-process GPIO chip with named lines, edge
events on a pipe the event loop watches (as the kernel's line request fd is), and a
history of every output change, so tests check the driver's real logic (strap order,
debounced clamp edges to notices, safe state) where the kernel has no gpio-sim (configfs). It
stands in for gpio-sim, not for the driver: the driver code is the code a line runs.

    chip = SimGpioChip.create("fx1", ["CLAMP", "P1", "EN1", "IO01"])   # chip: sim:fx1
    chip.drive_input("CLAMP", False)   # a closed, active-low clamp switch

Imports nothing from ate but the Line alias.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

_CHIPS: dict[str, SimGpioChip] = {}


def chip_named(name: str) -> SimGpioChip:
    try:
        return _CHIPS[name]
    except KeyError:
        from ate.drivers.line_client import DeviceGone

        raise DeviceGone(f"no simulated GPIO chip {name!r}") from None


class SimGpioChip:
    def __init__(self, name: str, line_names: list[str]) -> None:
        self.name = name
        self.names = list(line_names)
        self.values: dict[int, bool] = dict.fromkeys(range(len(line_names)), True)
        self.outputs: set[int] = set()
        self.inputs: set[int] = set()
        self.open_drain: set[str] = set()  # the lines requested open drain, by name
        self.history: list[tuple[float, str, bool]] = []  # (monotonic, line, value) outputs
        self._edges: list[tuple[int, bool]] = []
        self._lock = threading.Lock()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self.released = False

    @classmethod
    def create(cls, name: str, line_names: list[str]) -> SimGpioChip:
        chip = cls(name, line_names)
        _CHIPS[name] = chip
        return chip

    def remove(self) -> None:
        _CHIPS.pop(self.name, None)
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- what the driver calls (GpioLines) ----------------------------------------------

    def offset(self, line: int | str) -> int:
        if isinstance(line, int):
            if not 0 <= line < len(self.names):
                raise ValueError(f"no line {line}")
            return line
        return self.names.index(line)

    def request(
        self, outputs: dict[int, bool], inputs: list[int], open_drain: frozenset[int]
    ) -> None:
        self.released = False
        self.outputs, self.inputs = set(outputs), set(inputs)
        self.open_drain = {self.names[off] for off in open_drain}
        for off, value in outputs.items():
            self.set(off, value)

    def set(self, offset: int, value: bool) -> None:
        if offset not in self.outputs:
            raise ValueError(f"line {self.names[offset]} is not an output")
        self.values[offset] = value
        self.history.append((time.monotonic(), self.names[offset], value))

    def get(self, offset: int) -> bool:
        return self.values[offset]

    def fileno(self) -> int:
        return self._r

    def edges(self) -> list[tuple[int, bool]]:
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
        with self._lock:
            edges, self._edges = self._edges, []
        return edges

    def close(self) -> None:
        self.released = True

    # -- what a test does ---------------------------------------------------------------

    def drive_input(self, line: str, level: bool) -> None:
        """The world changes an input (a clamp switch, a button): an edge if it changed."""
        off = self.offset(line)
        with self._lock:
            if self.values[off] == level:
                return
            self.values[off] = level
            if off in self.inputs:
                self._edges.append((off, level))
        if off in self.inputs:
            os.write(self._w, b"!")

    def level(self, line: str) -> bool:
        return self.values[self.offset(line)]
