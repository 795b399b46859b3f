"""Work-arounds for esptool 5.6 behaviour that costs a production line time.

esptool 5.6 builds every trace message eagerly: `ESPLoader.write` and `slip_reader`
format `HexFormatter(packet)` into an f-string before `trace()` looks at
`_trace_enabled`. For a 16 KiB flash block that hex dump costs ~15 ms of CPU per block,
longer than the block's own wire time at 2 Mbaud: flashing 1 MiB spent more time
formatting unused trace text than anything else. ate never enables esptool's trace (the
simulator logs the wire instead), so the formatter is replaced by one that states the
length only. Imported for its effect by ate.drivers.esp; pinned to esptool 5.6.
"""

from __future__ import annotations

import esptool.loader


class _LengthOnly:
    """Stands in for esptool's HexFormatter where a hex dump would never be shown."""

    __slots__ = ("_n",)

    def __init__(self, binary_string: bytes, *_args: object, **_kwargs: object) -> None:
        self._n = len(binary_string)

    def __str__(self) -> str:
        return f"<{self._n} bytes>"


def apply() -> None:
    esptool.loader.HexFormatter = _LengthOnly
