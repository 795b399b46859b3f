"""The esptool/pyserial work-arounds keep behaviour and drop only the wasted work."""

from __future__ import annotations

import os
import time
import tty
from typing import Any

import pytest
import serial
from esptool import loader

import ate.drivers.esp  # noqa: F401  (applies the fixes)


def test_posix_timeout_change_does_not_touch_termios(monkeypatch: pytest.MonkeyPatch) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        port = serial.Serial(os.ttyname(slave), 115200, timeout=1.0)
        calls: list[Any] = []
        monkeypatch.setattr(port, "_reconfigure_port", lambda *a: calls.append(a))
        port.timeout = 0.05
        assert calls == [] and port.timeout == 0.05
        started = time.monotonic()
        assert port.read(1) == b""  # nothing sent: read gives up after the new timeout
        assert 0.04 <= time.monotonic() - started < 0.9
        os.write(master, b"x")
        assert port.read(1) == b"x"
        with pytest.raises(ValueError):
            port.timeout = -1
        port.baudrate = 921600  # other settings still reconfigure the port
        assert len(calls) == 1
        port.close()
    finally:
        os.close(master)
        os.close(slave)


def test_trace_formatting_is_length_only() -> None:
    assert str(loader.HexFormatter(b"\x00" * 16384)) == "<16384 bytes>"
