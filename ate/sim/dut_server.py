"""Serves one SimBoard on a real pty or TCP socket: boot text, READY, latency, sleep, faults.

Also owns the byte links (pty pair, TCP listener) the fixture twin reuses, the unit's
dev_key partition in its simulated flash (FlashKeyStore), and the power cuts a test can
arm at a flash write, an eFuse burn or a command (UnitLoader, DutServer.arm_power_cut).
Under the line-time model (ate.sim.timing) it boots in the modelled time and keeps the
model's time for this unit (`critical_s`, `rf_s`) for the benchmark's floor.
May import ate.protocol, ate.config, ate.model and ate.sim only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import threading
import tty
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from ate.protocol.lines import Corrupt, HostDecoder, LogLine, Request, encode_notice
from ate.protocol.slip import DIRECTION_REQUEST, Op
from ate.sim import devkey
from ate.sim.board import Action, Phase, SimBoard
from ate.sim.boot import NoApp
from ate.sim.prod_boot import ProductionApp
from ate.sim.rom.face import RomFace
from ate.sim.rom.flash import SparseFlash
from ate.sim.rom.loader import POWERON, SW_SYS_RESET, LoaderEvent, RomLoader
from ate.sim.timing import LineTimes

Transport = Literal["pty", "socket"]
TRANSPORTS: tuple[Transport, ...] = ("pty", "socket")

# A UART has no flow control: what the host does not read in time is lost. The cap
# keeps a sim with no client attached from buffering without bound.
_MAX_BACKLOG = 64 * 1024
# The ROM loader's answers are paced by the UART on a chip, so the host gets all of them;
# without the wire-time model they come in bursts (a stub read sends 256 KiB at once) and
# are queued for the host instead of being lost in a full pty buffer.
_MAX_RELIABLE_BACKLOG = 16 * 1024 * 1024

CutPoint = Literal["efuse-burn", "flash-write", "command"]
CUT_POINTS: tuple[CutPoint, ...] = ("efuse-burn", "flash-write", "command")
_FLASH_DATA_OPS = frozenset({Op.FLASH_DATA, Op.FLASH_DEFL_DATA})


# ---- the unit's flash as the test firmware sees it -------------------------------------


class FlashKeyStore:
    """The dev_key partition in the unit's simulated flash: what esptool reads there is
    what the firmware stored (in plain text: the test firmware runs before flash
    encryption is on; the production app's view is ate.sim.prod_boot's)."""

    def __init__(
        self,
        flash: SparseFlash,
        offset: int = devkey.DEV_KEY_OFFSET,
        size: int = devkey.DEV_KEY_SIZE,
    ) -> None:
        self.flash = flash
        self.offset = offset
        self.size = size

    def read(self) -> bytes:
        return self.flash.read(self.offset, self.size)

    def write(self, record: bytes) -> None:
        if len(record) > self.size:
            raise ValueError(f"{len(record)} bytes do not fit in the dev_key partition")
        self.flash.erase(self.offset, self.size)  # esp_partition_erase_range
        self.flash.program(self.offset, record)  # esp_partition_write


# ---- power cuts ------------------------------------------------------------------------


class PowerLost(Exception):
    """Raised inside the loader at an armed cut point: the chip has no power from here."""


class UnitLoader(RomLoader):
    """A RomLoader whose flash program blocks (FLASH_DATA, FLASH_DEFL_DATA, ROM or stub)
    and eFuse program commands (the CMD register write that programs a block) are points
    where its DutServer may cut the power.

    `cut_point(kind)` answers None (go on), True (the power goes right after the effect)
    or False (right before it); `on_power_lost()` then switches the unit off. No reply
    leaves the chip for the command that was cut.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cut_point: Callable[[CutPoint], bool | None] = lambda _kind: None
        self.on_power_lost: Callable[[], None] = lambda: None

    def receive(self, data: bytes) -> bytes:
        try:
            return super().receive(data)
        except PowerLost:
            self.on_power_lost()
            return b""

    def _frame(self, frame: bytes) -> bytes:
        if len(frame) >= 2 and frame[0] == DIRECTION_REQUEST and frame[1] in _FLASH_DATA_OPS:
            applied = self.cut_point("flash-write")
            if applied is not None:
                if applied:
                    super()._frame(frame)  # the block is written; its answer never leaves
                raise PowerLost
        return super()._frame(frame)

    def write_reg(self, addr: int, value: int, mask: int = 0xFFFFFFFF) -> None:
        if self.programs_efuses(addr, value, mask):
            applied = self.cut_point("efuse-burn")
            if applied is not None:
                if applied:
                    super().write_reg(addr, value, mask)  # burnt (and saved by the bank)
                raise PowerLost
        super().write_reg(addr, value, mask)


@dataclass(eq=False)
class _Cut:
    at: CutPoint
    nth: int
    applied: bool
    command: str | None
    event: threading.Event
    on_cut: Callable[[], None] | None
    seen: int = 0


class Link:
    """A serial-like byte pipe to one host: bytes in via `on_data`, `write` out."""

    endpoint: str = ""

    def __init__(
        self, on_data: Callable[[bytes], None], on_connect: Callable[[], None] | None = None
    ) -> None:
        self._on_data = on_data
        self._on_connect = on_connect or (lambda: None)

    async def open(self) -> None:
        raise NotImplementedError

    def write(self, data: bytes, *, reliable: bool = False) -> None:
        """Send `data`; a host that does not read in time loses it, unless `reliable`
        (the ROM loader's paced answers): then it waits for the host, in order."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class PtyLink(Link):
    """The sim holds the master and keeps the slave open, so a client may close and
    reopen the slave path (pyserial) without the master ever seeing EIO."""

    def __init__(
        self, on_data: Callable[[bytes], None], on_connect: Callable[[], None] | None = None
    ) -> None:
        super().__init__(on_data, on_connect)
        self._master = -1
        self._slave = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = bytearray()  # waiting for room in the tty buffer, in order

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[3] &= ~(termios.ECHO | termios.ECHONL)
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        os.set_blocking(self._master, False)
        self.endpoint = os.ttyname(self._slave)
        self._loop.add_reader(self._master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # EIO would mean no slave fd open; we hold one, so only at close
            return
        if data:
            self._on_data(data)

    def write(self, data: bytes, *, reliable: bool = False) -> None:
        if self._master < 0:
            return
        if self._pending:  # behind queued reliable bytes: keep the order
            cap = _MAX_RELIABLE_BACKLOG if reliable else _MAX_BACKLOG
            if len(self._pending) + len(data) <= cap:
                self._pending += data
            return
        # Never block the loop for a slow or absent reader: a full tty buffer loses the
        # rest, as a UART without flow control would (reliable bytes wait instead).
        try:
            sent = os.write(self._master, data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return
        if reliable and sent < len(data) and self._loop is not None:
            self._pending += data[sent:]
            self._loop.add_writer(self._master, self._flush)

    def _flush(self) -> None:
        try:
            sent = os.write(self._master, self._pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(self._pending)
        del self._pending[:sent]
        if not self._pending and self._loop is not None:
            self._loop.remove_writer(self._master)

    async def close(self) -> None:
        if self._master >= 0:
            if self._loop is not None:
                self._loop.remove_reader(self._master)
                self._loop.remove_writer(self._master)
            self._pending.clear()
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1


class _LinkProtocol(asyncio.Protocol):
    def __init__(self, link: SocketLink) -> None:
        self._link = link
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._link._attach(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None and self._link.current is self._transport:
            self._link._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._link._detach(self._transport)


class SocketLink(Link):
    """A TCP listener on 127.0.0.1 (ephemeral port); one client at a time, the newest wins
    (like a serial port grabbed by the next program)."""

    def __init__(
        self, on_data: Callable[[bytes], None], on_connect: Callable[[], None] | None = None
    ) -> None:
        super().__init__(on_data, on_connect)
        self._server: asyncio.Server | None = None
        self.current: asyncio.Transport | None = None

    async def open(self, port: int = 0) -> None:
        """Listen on `port` (0: an ephemeral one; a given one again after a close)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _LinkProtocol(self), "127.0.0.1", port, reuse_address=True
        )
        port = self._server.sockets[0].getsockname()[1]
        self.endpoint = f"socket://127.0.0.1:{port}"

    def _attach(self, transport: asyncio.Transport) -> None:
        old, self.current = self.current, transport
        if old is not None:
            old.abort()
        self._on_connect()

    def _detach(self, transport: asyncio.Transport) -> None:
        if self.current is transport:
            self.current = None

    def write(self, data: bytes, *, reliable: bool = False) -> None:
        t = self.current
        cap = _MAX_RELIABLE_BACKLOG if reliable else _MAX_BACKLOG
        if t is not None and not t.is_closing() and t.get_write_buffer_size() < cap:
            t.write(data)

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        if self.current is not None:
            self.current.abort()
            self.current = None
        await self._server.wait_closed()
        self._server = None


def check_transport(name: str) -> Transport:
    """`name` as a Transport; ValueError for anything but pty or socket."""
    if name == "pty":
        return "pty"
    if name == "socket":
        return "socket"
    raise ValueError(f"transport {name!r}: allowed are pty, socket")


def make_link(
    transport: str,
    on_data: Callable[[bytes], None],
    on_connect: Callable[[], None] | None = None,
) -> Link:
    if check_transport(transport) == "pty":
        return PtyLink(on_data, on_connect)
    return SocketLink(on_data, on_connect)


def feed_lines(decoder: HostDecoder, data: bytes) -> list[Request | Corrupt]:
    """Protocol events in `data`, one line at a time so that a line the codec chokes on
    (it raises ValueError for some garbage) is lost alone, as a UART would lose it."""
    events: list[Request | Corrupt] = []
    pieces = data.split(b"\n")
    for i, piece in enumerate(pieces):
        chunk = piece + b"\n" if i < len(pieces) - 1 else piece
        if not chunk:
            continue
        try:
            decoded = decoder.feed(chunk)
        except ValueError:
            continue
        events.extend(e for e in decoded if not isinstance(e, LogLine))
    return events


class DutServer:
    """One DUT's UART: a SimBoard (or nothing, for an empty slot) behind a pty or socket.

    Requests are executed one at a time, in order, like the firmware's command loop.
    Control methods (power, reset) must be called on the server's event loop.
    """

    def __init__(
        self,
        board: SimBoard | None,
        transport: str = "pty",
        *,
        rom: RomFace | None = None,
        timing: LineTimes | None = None,
    ) -> None:
        self.board = board
        self.timing = timing
        if board is not None:
            board.timing = timing
        # Firmware-side time of the model: request latencies slept, boots, sleep holds;
        # rf_s is the part spent exchanging packets with the (shared) golden board.
        self.modelled_s = 0.0
        self.rf_s = 0.0
        # With a ROM face the unit is whole: its straps pick the ROM loader or a boot from
        # flash, which runs the test firmware only if that is what was flashed there.
        self.rom = rom if board is not None else None
        self._strap_boot = False  # IO0 held low by the fixture
        self.transport = check_transport(transport)
        self._link = make_link(self.transport, self._on_data, self._on_connect)
        self._decoder = HostDecoder()
        self._queue: asyncio.Queue[tuple[int, Request | Corrupt]] | None = None
        self._epoch = 0  # bumped by power, reset and sleep: queued requests are then lost
        self._life: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._handled_event: asyncio.Event | None = None
        self.handled = 0  # requests and corrupt lines the firmware has acted on
        self._unplugged = False  # faults.port_vanishes_after: the link was closed
        self._unplug: asyncio.Task[None] | None = None
        self._busy = False  # the worker is executing a request (order must be kept)
        self._cuts: list[_Cut] = []
        self._cutting: _Cut | None = None
        if board is not None and self.rom is not None:
            # The firmware keeps its key where esptool can see it: in the unit's flash.
            board.key_store = FlashKeyStore(self.rom.loader.flash)
            loader = self.rom.loader
            if isinstance(loader, UnitLoader):
                loader.cut_point = self._cut_point
                loader.on_power_lost = self._lose_power

    # ---- lifetime --------------------------------------------------------------------

    async def start(self) -> None:
        if self.rom is not None:
            self.rom.attach(self._write_reliable, self._rom_event)
        self._queue = asyncio.Queue()
        self._handled_event = asyncio.Event()
        await self._link.open()
        self._worker = asyncio.create_task(self._serve(), name=f"sim-dut {self.endpoint}")

    def _write_reliable(self, data: bytes) -> None:
        self._link.write(data, reliable=True)

    @property
    def endpoint(self) -> str:
        """The pty slave path, or socket://127.0.0.1:PORT."""
        return self._link.endpoint

    async def stop(self) -> None:
        if self.rom is not None:
            self.rom.detach()
        for task in (self._life, self._worker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._life = self._worker = None
        await self._link.close()

    async def wait_handled(self, count: int) -> None:
        """Until the firmware has acted on `count` requests since start (tests, benches)."""
        while self.handled < count:
            assert self._handled_event is not None, "server not started"
            await self._handled_event.wait()

    @property
    def critical_s(self) -> float:
        """The model's time for this unit so far: its ROM side (wire and chip) and its
        firmware side (latencies, boots, sleep holds), as if the host answered at once."""
        return self.modelled_s + (self.rom.critical_s if self.rom is not None else 0.0)

    # ---- what the fixture controller does ---------------------------------------------

    @property
    def powered(self) -> bool:
        return self.board is not None and self.board.powered

    def power(self, on: bool) -> None:
        """Slot supply switch. Power-on boots the board (boot text, READY after boot_ms)."""
        board = self.board
        if board is None:
            return
        if on:
            if not board.powered:
                board.power_on()
                self._new_epoch()
                if self.rom is not None:
                    self._boot_from_straps(self._strap_boot, POWERON)
                else:
                    self._set_life(self._boot())
        else:
            self._cancel_life()
            board.power_off()
            if self.rom is not None:
                self.rom.loader.power_off()
            self._new_epoch()

    def reset(self, boot_mode: bool = False) -> None:
        """EN pulse. boot_mode (IO0 low): ROM download mode, deaf to the test protocol."""
        board = self.board
        self._strap_boot = boot_mode
        if board is not None and self.rom is not None:
            if board.powered:
                self._boot_from_straps(boot_mode, POWERON)  # an EN reset reads as power-on
            return
        if board is None or not board.reset(boot_mode):
            return
        self._new_epoch()
        if boot_mode:
            self._cancel_life()
            self._link.write(board.download_text())
        else:
            self._set_life(self._boot())

    # ---- power cuts (power-loss tests) ----------------------------------------------------

    def arm_power_cut(
        self,
        at: CutPoint,
        *,
        nth: int = 1,
        applied: bool = True,
        command: str | None = None,
        on_cut: Callable[[], None] | None = None,
    ) -> threading.Event:
        """Cut the power at the `nth` occurrence (from now) of `at`: an eFuse program
        command, a flash program block from the host, or a test-firmware request named
        `command`. With `applied` the effect happens first, else it does not; no reply
        is sent and the unit stays off until power(True). One-shot. The Event is set (and
        `on_cut` called) when the cut has happened. Call on the server's event loop."""
        if self.board is None:
            raise ValueError("this slot has no board: there is no power to cut")
        if at not in CUT_POINTS:
            raise ValueError(f"power cut at {at!r}: allowed are {', '.join(CUT_POINTS)}")
        if nth < 1:
            raise ValueError(f"power cut at the {nth}th occurrence: nth counts from 1")
        if (at == "command") != (command is not None):
            raise ValueError("a power cut names its command exactly when at is 'command'")
        if at != "command" and not (
            self.rom is not None and isinstance(self.rom.loader, UnitLoader)
        ):
            raise ValueError(f"a power cut at {at!r} needs the unit's ROM face (UnitLoader)")
        cut = _Cut(at, nth, applied, command, threading.Event(), on_cut)
        self._cuts.append(cut)
        return cut.event

    def _cut_point(self, kind: CutPoint, command: str | None = None) -> bool | None:
        """Count one occurrence of `kind`; None to go on, else whether the effect happens
        before the power goes (then _lose_power must follow)."""
        fired: _Cut | None = None
        for cut in self._cuts:
            if cut.at != kind or cut.command != command:
                continue
            cut.seen += 1
            if fired is None and cut.seen >= cut.nth:
                fired = cut
        if fired is None:
            return None
        self._cuts.remove(fired)
        self._cutting = fired
        return fired.applied

    def _lose_power(self) -> None:
        cut, self._cutting = self._cutting, None
        self.power(False)
        if cut is not None:
            if cut.on_cut is not None:
                cut.on_cut()
            cut.event.set()

    # ---- the ROM face -------------------------------------------------------------------

    def _boot_from_straps(self, download: bool, cause: str) -> None:
        """A chip reset with the straps as the fixture holds them."""
        board, rom = self.board, self.rom
        assert board is not None and rom is not None
        self._cancel_life()
        self._new_epoch()
        board.reset(boot_mode=True)  # the test firmware is not running (yet)
        banner = rom.loader.reset(download=download, cause=cause)
        if download:
            self._link.write(banner)
            return
        app = rom.boot_flash()
        if isinstance(app, NoApp | ProductionApp):
            # Blank, corrupt, refused by secure boot, or the production app: the chip
            # prints what it prints and the test protocol gets no answer.
            self._link.write(banner + app.console.encode())
            return
        update: dict[str, object] = {"firmware": f"ate-testfw/{app.version}"}
        if self.timing is not None:
            secure = bool(rom.loader.efuses.field("SECURE_BOOT_EN"))
            update["boot_ms"] = self.timing.boot_total_s(secure_boot=secure) * 1000.0
        board.spec = board.spec.model_copy(update=update)
        board.reset(boot_mode=False)
        self._set_life(self._boot())

    def _rom_event(self, event: LoaderEvent) -> None:
        if event is LoaderEvent.RUN_APP:
            self._boot_from_straps(False, SW_SYS_RESET)
        else:  # reboot or hard reset: the chip samples the straps the fixture holds
            self._boot_from_straps(self._strap_boot, SW_SYS_RESET)

    # ---- internals -------------------------------------------------------------------

    def _on_connect(self) -> None:
        self._decoder = HostDecoder()

    def _on_data(self, data: bytes) -> None:
        board = self.board
        if board is None or self._queue is None:
            return
        if self.rom is not None and self.rom.in_download_mode:
            self.rom.from_host(data)
            return
        for event in feed_lines(self._decoder, data):
            # Checked on arrival: what reaches a sleeping, booting or unpowered chip is lost.
            if not board.listening:
                continue
            request = event if isinstance(event, Request) else None
            if not self._busy and self._queue.empty() and board.latency_s(request) == 0:
                # Nothing ahead of it and no firmware time to simulate: answer at once,
                # without the hop through the worker task (the bare transport round trip).
                self._execute(board, event)
            else:
                self._queue.put_nowait((self._epoch, event))

    def _new_epoch(self) -> None:
        self._epoch += 1
        self._decoder = HostDecoder()  # a reset chip has lost its half-received line
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()

    def _cancel_life(self) -> None:
        if self._life is not None and not self._life.done():
            self._life.cancel()
        self._life = None

    def _set_life(self, coro: Coroutine[Any, Any, None]) -> None:
        self._cancel_life()
        self._life = asyncio.get_running_loop().create_task(coro)

    def _count_handled(self) -> None:
        self.handled += 1
        if self._handled_event is not None:
            event, self._handled_event = self._handled_event, asyncio.Event()
            event.set()

    async def _serve(self) -> None:
        assert self._queue is not None
        while True:
            epoch, item = await self._queue.get()
            board = self.board
            if board is None or epoch != self._epoch:
                continue
            self._busy = True
            try:
                request = item if isinstance(item, Request) else None
                delay = board.latency_s(request)
                if request is not None:
                    board.begin(request)  # rf.tx: its frames go on the air from now
                if delay > 0:  # zero must not even yield: benchmarks measure the bare round trip
                    self.modelled_s += delay
                    if request is not None and request.command.startswith("rf."):
                        self.rf_s += delay
                    await asyncio.sleep(delay)
                    if epoch != self._epoch:
                        continue
                self._execute(board, item)
            finally:
                self._busy = False

    def _execute(self, board: SimBoard, item: Request | Corrupt) -> None:
        vanish = board.spec.faults.port_vanishes_after
        if vanish is not None and self.handled >= vanish:
            if not self._unplugged:  # the adapter is pulled: its port is gone for good
                self._unplugged = True
                self._unplug = asyncio.get_running_loop().create_task(self._link.close())
            return
        if (
            self._cuts
            and isinstance(item, Request)
            and board.listening
            and not (board.last is not None and board.last[0] == item)  # a resend: no effect
        ):
            applied = self._cut_point("command", item.command)
            if applied is not None:
                if applied:
                    board.handle(item)  # done; the reply never leaves the chip
                    board.take_action()
                    self._count_handled()
                self._lose_power()
                return
        line = board.handle(item) if isinstance(item, Request) else board.reject(item)
        self._count_handled()
        out = board.on_wire(line)
        if out:
            self._link.write(out)
        action = board.take_action()
        if action is not None:
            self._apply(board, action)

    def _apply(self, board: SimBoard, action: Action) -> None:
        if action.kind == "reboot":
            board.restart("sw")
            self._new_epoch()
            self._set_life(self._boot())
        else:
            board.sleep(action.kind)
            self._new_epoch()
            self._set_life(self._sleep(action.hold_s))

    async def _sleep(self, hold_s: float) -> None:
        board = self.board
        assert board is not None
        self.modelled_s += hold_s
        await asyncio.sleep(hold_s)
        self._new_epoch()
        if board.wake():
            self._link.write(encode_notice("AWAKE"))
        elif board.phase is Phase.BOOTING:
            await self._boot()

    async def _boot(self) -> None:
        board = self.board
        assert board is not None
        t = 0.0
        for at, chunk in board.boot_text():
            if at > t:
                await asyncio.sleep(at - t)
                t = at
            self._link.write(chunk)
        rest = board.spec.boot_ms / 1000.0 - t
        if rest > 0:
            await asyncio.sleep(rest)
        self.modelled_s += board.spec.boot_ms / 1000.0
        if board.finish_boot():
            self._link.write(board.ready_notice())
