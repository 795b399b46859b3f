"""Work-arounds for esptool 5.6 behaviour that costs a production line time.

esptool 5.6 builds every trace message eagerly: `ESPLoader.write` and `slip_reader`
format `HexFormatter(packet)` into an f-string before `trace()` looks at
`_trace_enabled`. For a 16 KiB flash block that hex dump costs ~15 ms of CPU per block,
longer than the block's own wire time at 2 Mbaud: flashing 1 MiB spent more time
formatting unused trace text than anything else. ate never enables esptool's trace (the
simulator logs the wire instead), so the formatter is replaced by one that states the
length only.

esptool 5.6 also looks up the port's USB VID/PID on every connect, even with
`--before no-reset`, by listing every serial port on the system (a glob over /dev and
sysfs reads): on a station connecting 32 units a panel that scan cost more CPU than the
connects. A port's USB identity does not change while it exists, so the answer (or the
"not a USB port" error) is remembered per port name.

esptool changes the port's read timeout around most commands, and pyserial answers
every change with a full termios reconfigure (tcgetattr, tcsetattr, modem ioctls),
although on POSIX the timeout only drives select() (pyserial's own comment: "timeout is
done via select"). On a USB adapter each tcsetattr can be a USB control transfer; with
32 units connecting it was a quarter of the ROM phase's CPU. For pyserial's POSIX port
class a timeout change now just sets the timeout.

Imported for its effect by ate.drivers.esp; pinned to esptool 5.6.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import esptool.loader
import serial.serialposix
from serial.serialutil import SerialBase


class _LengthOnly:
    """Stands in for esptool's HexFormatter where a hex dump would never be shown."""

    __slots__ = ("_n",)

    def __init__(self, binary_string: bytes, *_args: object, **_kwargs: object) -> None:
        self._n = len(binary_string)

    def __str__(self) -> str:
        return f"<{self._n} bytes>"


def _remembered(lookup: Callable[[str], Any]) -> Callable[[str], Any]:
    answers: dict[str, tuple[bool, Any]] = {}
    lock = threading.Lock()  # slots connect from their own worker threads

    def get_port_vid_pid(port: str) -> Any:
        with lock:
            known = answers.get(port)
        if known is None:
            try:
                known = (True, lookup(port))
            except Exception as exc:  # esptool turns "not found" into its fallback
                known = (False, exc)
            with lock:
                answers[port] = known
        ok, value = known
        if not ok:
            raise value
        return value

    get_port_vid_pid.__wrapped__ = lookup  # type: ignore[attr-defined]
    return get_port_vid_pid


def _set_timeout_without_reconfigure(port: SerialBase, timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError(f"Not a valid timeout: {timeout!r}")
    port._timeout = timeout  # read() and write() consult it on every call


def apply() -> None:
    posix = serial.serialposix.Serial
    if posix.__dict__.get("timeout") is None:  # once per process
        posix.timeout = property(SerialBase.timeout.fget, _set_timeout_without_reconfigure)
    esptool.loader.HexFormatter = _LengthOnly
    if not hasattr(esptool.loader.get_port_vid_pid, "__wrapped__"):  # once per process
        esptool.loader.get_port_vid_pid = _remembered(esptool.loader.get_port_vid_pid)
