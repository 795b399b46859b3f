"""systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram of
`KEY=value` lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an abstract
name written with a leading '@'). Also reads $WATCHDOG_USEC for the ping interval.

Imports the standard library only.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    """Sends READY=1, STATUS=..., WATCHDOG=1, STOPPING=1; a no-op outside systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        name = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if name.startswith("@"):
            self.address = b"\0" + name[1:].encode()  # Linux abstract namespace
        elif name.startswith("/"):
            self.address = name
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        # Pinging at half the timeout, as sd_watchdog_enabled(3) advises.
        self.watchdog_interval: float | None = int(usec) / 2e6 if watchdog else None
        self._sock: socket.socket | None = None
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str) -> bool:
        """One datagram; False when there is no socket or it could not be sent (the
        station keeps running: systemd's absence must never stop a line)."""
        if self.address is None:
            return False
        payload = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        self._last_status = status
        return self.send(READY="1", STATUS=status)

    def status(self, text: str) -> bool:
        """STATUS=text, only when it changed (the station calls this on every change)."""
        if text == self._last_status:
            return True
        self._last_status = text
        # One line: a newline would start another KEY=value.
        return self.send(STATUS=text.replace("\n", " "))

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")

    def stopping(self, status: str) -> bool:
        self._last_status = status
        return self.send(STOPPING="1", STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
