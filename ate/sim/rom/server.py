"""Serves one simulated ROM loader on 127.0.0.1 (socket:// or rfc2217://), with wire time.

Owns: `RomServer` (asyncio), `RomServerThread` (the server on its own loop in a daemon
thread, for blocking esptool/espefuse callers), `run_sim_rom` (the foreground command),
the reset policy and the wire-time model (`WirePacer`). May import ate.sim.rom and
pyserial.

Reset policy. socket:// has no modem lines, so the unit behaves as if the fixture held
IO0 low: a new connection, esptool's hard-reset register write (S3) and a reboot request
all re-enter download mode. rfc2217:// carries DTR/RTS through a devkit's auto-reset
circuit (EN = RTS and not DTR pulls low, IO0 = DTR and not RTS): EN released with IO0
low enters download mode, with IO0 high a normal boot, where the ROM face is silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from serial.rfc2217 import M_NORMAL, PortManager

from ate.sim.rom.chips import ChipProfile, get_profile
from ate.sim.rom.efuses import EfuseBank
from ate.sim.rom.flash import SparseFlash
from ate.sim.rom.loader import POWERON, SW_SYS_RESET, LoaderEvent, RomLoader

T = TypeVar("T")

FLASH_FILE = "flash.bin"
EFUSE_FILE = "efuse.bin"  # espefuse's --virt --path-efuse-file format
BITS_PER_BYTE = 10  # start bit, 8 data bits, stop bit
_SLICE_S = 0.01  # wire-time granularity: one wake-up per 10 ms of line time
# The event loop's timers have millisecond resolution (epoll): a shorter sleep costs a
# whole millisecond, which would make every small command's round trip 1-2 ms slower
# than its bytes. Such waits are not slept; the line's free time still advances, so the
# next real sleep makes up for them and the rate stays exact over any longer stretch.
_MIN_SLEEP_S = 0.001
# EN rises through an RC network and the chip samples its straps at the end of it. Over
# RFC 2217 every line change is a network round trip (pyserial waits for each ack, about
# 50 ms), so the window is stretched to cover esptool's "release EN, then pull IO0 low".
_EN_RC_S = 0.2
_MAX_BACKLOG = 4 * 1024 * 1024  # a UART loses what nobody reads; cap what we queue


class WirePacer:
    """Hands byte chunks on no faster than a UART at the given baud would carry them.

    Each slice is delivered when its last bit would have crossed the wire; the pacer
    sleeps until deadlines computed from the line's free time, never spins. One pacer
    per direction; create it on the event loop that will run it.
    """

    def __init__(self, deliver: Callable[[bytes], None]) -> None:
        self._deliver = deliver
        self._queue: deque[tuple[bytes, int]] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._free_at = 0.0
        self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, data: bytes, baud: int) -> None:
        if data and self._queued + len(data) <= _MAX_BACKLOG:
            self._queue.append((data, baud))
            self._queued += len(data)
            self._wake.set()

    def clear(self) -> None:
        self._queue.clear()
        self._queued = 0

    def close(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            data, baud = self._queue.popleft()
            self._queued -= len(data)
            per_byte = BITS_PER_BYTE / baud
            step = max(1, int(_SLICE_S / per_byte))
            for i in range(0, len(data), step):
                piece = data[i : i + step]
                due = max(loop.time(), self._free_at) + len(piece) * per_byte
                self._free_at = due
                delay = due - loop.time()
                if delay >= _MIN_SLEEP_S:
                    await asyncio.sleep(delay)
                self._deliver(piece)


class _SerialShim:
    """The 'serial port' pyserial's RFC 2217 PortManager drives: settings it may set or
    query, and the DTR/RTS lines, which go to the server's reset circuit."""

    def __init__(self, server: RomServer) -> None:
        self._server = server
        self._dtr = False
        self._rts = False
        self.baudrate = 115200
        self.bytesize = 8
        self.parity = "N"
        self.stopbits = 1
        self.xonxoff = False
        self.rtscts = False
        self.break_condition = False
        self.cts = self.dsr = self.ri = self.cd = False

    @property
    def dtr(self) -> bool:
        return self._dtr

    @dtr.setter
    def dtr(self, value: bool) -> None:
        self._dtr = bool(value)
        self._server._lines(self._dtr, self._rts)

    @property
    def rts(self) -> bool:
        return self._rts

    @rts.setter
    def rts(self, value: bool) -> None:
        self._rts = bool(value)
        self._server._lines(self._dtr, self._rts)

    def reset_input_buffer(self) -> None:
        self._server._purge_output()

    def reset_output_buffer(self) -> None:
        pass


class _Connection(asyncio.Protocol):
    """One TCP client: raw bytes (socket://) or Telnet with RFC 2217 (rfc2217://)."""

    def __init__(self, server: RomServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.telnet: Any = None  # serial.rfc2217.PortManager
        self.rx: WirePacer | None = None
        self.tx: WirePacer | None = None

    # the PortManager's "connection": Telnet replies go straight out, unpaced
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.server.wire_time:
            self.rx = WirePacer(self.server._from_host)
            self.tx = WirePacer(self._to_host_now)
        if self.server.rfc2217:
            assert self.server._shim is not None
            self.telnet = PortManager(self.server._shim, self)
        self.server._attach(self)

    def data_received(self, data: bytes) -> None:
        if self.server._conn is not self:
            return
        if self.telnet is not None:
            data = self._untelnet(data)
        if self.rx is not None:
            self.rx.put(data, self.server.loader.baud)
        elif data:
            self.server._from_host(data)

    def _untelnet(self, data: bytes) -> bytes:
        pm = self.telnet
        if b"\xff" not in data and pm.mode == M_NORMAL and pm.suboption is None:
            return data  # no Telnet commands: skip the byte-by-byte filter
        return b"".join(pm.filter(data))

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()
        self.server._detach(self)

    def to_host(self, data: bytes, baud: int) -> None:
        if self.tx is not None:
            self.tx.put(data, baud)
        else:
            self._to_host_now(data)

    def _to_host_now(self, data: bytes) -> None:
        if self.telnet is not None:
            data = data.replace(b"\xff", b"\xff\xff")  # Telnet IAC escaping
        transport = self.transport
        if (
            transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() < _MAX_BACKLOG
        ):
            transport.write(data)

    def purge(self) -> None:
        if self.tx is not None:
            self.tx.clear()

    def close(self) -> None:
        for pacer in (self.rx, self.tx):
            if pacer is not None:
                pacer.close()
        self.rx = self.tx = None
        if self.transport is not None:
            self.transport.abort()


class RomServer:
    """One simulated unit's UART on 127.0.0.1: `url` is what esptool's --port takes.

    `state_dir` keeps flash (flash.bin, written sectors only) and eFuses (efuse.bin,
    espefuse's --virt format) across restarts; `mac` and `seed` only shape a fresh unit.
    `wire_time` throttles both directions to the loader's baud rate. Use from its event
    loop; `RomServerThread` wraps it for blocking callers.
    """

    def __init__(
        self,
        chip: str = "esp32s3",
        *,
        state_dir: Path | None = None,
        mac: str | None = None,
        seed: int = 0,
        port: int = 0,
        wire_time: bool = False,
        rfc2217: bool = False,
        flash_size: int | None = None,
        flash_attached: bool = True,
        debug: Callable[[str], None] | None = None,
    ) -> None:
        self.profile: ChipProfile = get_profile(chip)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.mac = mac
        self.seed = seed
        self.port = port
        self.wire_time = wire_time
        self.rfc2217 = rfc2217
        self.flash_size = flash_size or self.profile.default_flash_size
        self.flash_attached = flash_attached  # False: a board whose SPI flash is missing
        self.debug = debug
        self.connections = 0  # clients accepted since start
        self._loader: RomLoader | None = None
        self._server: asyncio.Server | None = None
        self._conn: _Connection | None = None
        self._shim: _SerialShim | None = _SerialShim(self) if rfc2217 else None
        self._en_low = False
        self._io0_low = False
        self._release: asyncio.Task[None] | None = None
        self._changed: asyncio.Event | None = None

    # ---- lifetime -------------------------------------------------------------------

    async def start(self) -> None:
        flash, efuses = await asyncio.to_thread(self._load_state)
        flash.attached = self.flash_attached
        self._loader = RomLoader(self.profile, flash, efuses, debug=self.debug)
        self._changed = asyncio.Event()
        # Power-on. Without modem lines the fixture holds IO0 low; with RFC 2217 the
        # lines start released (IO0 high): a normal boot until esptool resets the chip.
        self._loader.reset(download=not self.rfc2217)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def _load_state(self) -> tuple[SparseFlash, EfuseBank]:
        if self.state_dir is None:
            return SparseFlash(self.flash_size), EfuseBank(
                self.profile, mac=self.mac, seed=self.seed
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        flash_path = self.state_dir / FLASH_FILE
        flash = (
            SparseFlash.load(flash_path) if flash_path.exists() else SparseFlash(self.flash_size)
        )
        efuses = EfuseBank(
            self.profile, path=self.state_dir / EFUSE_FILE, mac=self.mac, seed=self.seed
        )
        return flash, efuses

    async def stop(self) -> None:
        self._cancel_release()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._loader is not None:
            self.save()

    def save(self) -> None:
        """Write flash (if changed) and eFuses to the state directory, if there is one."""
        if self.state_dir is None or self._loader is None:
            return
        if self._loader.flash.dirty:
            self._loader.flash.save(self.state_dir / FLASH_FILE)
        self._loader.efuses.save()

    @property
    def url(self) -> str:
        scheme = "rfc2217" if self.rfc2217 else "socket"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def loader(self) -> RomLoader:
        if self._loader is None:
            raise RuntimeError("RomServer not started")
        return self._loader

    @property
    def flash(self) -> SparseFlash:
        return self.loader.flash

    @property
    def efuses(self) -> EfuseBank:
        return self.loader.efuses

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def wait_for(self, predicate: Callable[[RomServer], bool]) -> None:
        """Until `predicate(self)` holds; re-checked after every chunk served or event."""
        assert self._changed is not None, "server not started"
        while not predicate(self):
            self._changed.clear()
            await self._changed.wait()

    # ---- what the fixture does --------------------------------------------------------

    def reset(self, *, download: bool = True) -> None:
        """An EN pulse with IO0 low (`download`) or high; the banner goes to the client."""
        self._send(self.loader.reset(download=download), self.loader.baud)

    # ---- connections ------------------------------------------------------------------

    def _attach(self, conn: _Connection) -> None:
        old, self._conn = self._conn, conn
        if old is not None:
            old.close()  # the newest client wins, like the next program grabbing the port
        self.connections += 1
        if not self.rfc2217:
            # The fixture reset the unit into download mode before the host listened:
            # the banner was sent to nobody.
            self.loader.reset(download=True)
        self._notify()

    def _detach(self, conn: _Connection) -> None:
        if self._conn is conn:
            self._conn = None
            self.save()
        self._notify()

    def _purge_output(self) -> None:
        if self._conn is not None:
            self._conn.purge()

    def _send(self, data: bytes, baud: int) -> None:
        if data and self._conn is not None:
            self._conn.to_host(data, baud)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _from_host(self, data: bytes) -> None:
        loader = self.loader
        baud = loader.baud  # a CHANGE_BAUDRATE reply still goes out at the old rate
        self._send(loader.receive(data), baud)
        event = loader.take_event()
        if event is LoaderEvent.REBOOT:
            download = True if not self.rfc2217 else self._io0_low
            self._send(loader.reset(download=download, cause=SW_SYS_RESET), loader.baud)
        elif event is LoaderEvent.HARD_RESET and not self.rfc2217:
            # No RTS can follow on a plain socket: act on esptool's announcement.
            self._send(loader.reset(download=True), loader.baud)
        self._notify()

    # ---- the auto-reset circuit (RFC 2217) ---------------------------------------------

    def _lines(self, dtr: bool, rts: bool) -> None:
        if self.debug is not None:
            self.debug(f"lines DTR={int(dtr)} RTS={int(rts)}")
        en_low = rts and not dtr
        self._io0_low = dtr and not rts
        if en_low and not self._en_low:
            self._en_low = True
            self._cancel_release()
            self.loader.power_off()  # held in reset
        elif not en_low and self._en_low:
            self._en_low = False
            self._release = asyncio.get_running_loop().create_task(self._boot_after_release())
        if self._release is not None and self._io0_low:
            # IO0 went low while EN was still rising: the straps read download mode.
            self._cancel_release()
            self._boot(download=True)
        self._notify()

    def _cancel_release(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None

    async def _boot_after_release(self) -> None:
        # EN rises through its RC network; IO0 was high all along: a normal boot.
        await asyncio.sleep(_EN_RC_S)
        self._release = None
        self._boot(download=False)

    def _boot(self, *, download: bool) -> None:
        self._send(self.loader.reset(download=download, cause=POWERON), self.loader.baud)
        self._notify()


class RomServerThread:
    """A RomServer on its own event loop in a daemon thread, as a context manager.

    For blocking callers (esptool, espefuse as libraries or tests): `url` to connect to,
    `call(fn)` to run `fn(server)` on the server's loop and get its result.
    """

    def __init__(self, chip: str = "esp32s3", **kwargs: Any) -> None:
        self._args = (chip, kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: RomServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> RomServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        chip, kwargs = self._args
        self._server = RomServer(chip, **kwargs)  # argument errors surface here
        self._thread = threading.Thread(target=self._run, name=f"rom-sim {chip}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        assert self._server is not None
        try:
            loop.run_until_complete(self._server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._server.stop())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = None

    @property
    def server(self) -> RomServer:
        if self._server is None:
            raise RuntimeError("RomServerThread not started")
        return self._server

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, fn: Callable[[RomServer], T]) -> T:
        """`fn(server)` on the server's loop thread (its state is not thread-safe)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("RomServerThread not running")

        async def run() -> T:
            return fn(self.server)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)

    def wait_for(self, predicate: Callable[[RomServer], bool], timeout: float = 30) -> None:
        """Block until `predicate(server)` holds (checked on the server's loop)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("RomServerThread not running")

        async def wait() -> None:
            async with asyncio.timeout(timeout):
                await self.server.wait_for(predicate)

        asyncio.run_coroutine_threadsafe(wait(), loop).result()


def run_sim_rom(
    port: int,
    chip: str,
    state_dir: str | None,
    wire_time: bool,
    rfc2217: bool,
    *,
    debug: bool = False,
) -> int:
    """Serve one simulated unit until Ctrl-C or SIGTERM, printing its URL first.

    Returns the exit code: 0 after a clean stop, 2 for bad arguments.
    """
    try:
        server = RomServer(
            chip,
            state_dir=Path(state_dir) if state_dir else None,
            port=port,
            wire_time=wire_time,
            rfc2217=rfc2217,
            debug=(lambda line: print(line, file=sys.stderr, flush=True)) if debug else None,
        )
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_serve(server))
    return 0


async def _serve(server: RomServer) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await server.start()
    except (OSError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        print(server.url, flush=True)
        print(
            f"{server.profile.chip_name} MAC {server.efuses.mac.hex(':')}: try "
            f"`esptool --chip {server.profile.name} --port {server.url} "
            f"--before {'default-reset' if server.rfc2217 else 'no-reset'} read-mac`. "
            "Ctrl-C stops.",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        await server.stop()
    return 0
