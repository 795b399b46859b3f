"""Helpers for the esp driver tests: test images and `Slot`, one simulated unit with the
host side of its slot (log lines and progress as the flasher delivered them)."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ate.drivers.esp import EspFlasher, FlashProgress
from ate.sim.rom.server import RomServer


def image(size: int, seed: int) -> bytes:
    """Firmware-like bytes: low entropy, so deflate shrinks them, but no long repeats."""
    rnd = random.Random(seed)
    return bytes(rnd.choices(b"\x00\x01\x02\x03ESP32-image\xff", k=size))


def noise(size: int, seed: int) -> bytes:
    """Incompressible bytes."""
    return random.Random(seed).randbytes(size)


@dataclass
class Slot:
    """One simulated unit and the host side of its slot."""

    rom: RomServer
    mac: str
    lines: list[str] = field(default_factory=list)
    progress: list[tuple[float, FlashProgress]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.rom.url)

    def on_progress(self, p: FlashProgress) -> None:
        self.progress.append((time.monotonic(), p))

    def flasher(self, chip: str = "esp32s3", **kwargs: object) -> EspFlasher:
        return EspFlasher(
            self.url,
            chip=chip,
            log=self.lines.append,
            progress=self.on_progress,
            label=f"slot-{self.mac[-2:]}",
            **kwargs,  # type: ignore[arg-type]
        )

    def log_text(self) -> str:
        return "\n".join(self.lines)


SlotFactory = Callable[..., Awaitable[Slot]]
