"""The simulated fixture: the controller twin and one DutServer per slot, on one event loop
(SimFixture) or on a thread of their own (SimFixtureThread), like separate hardware.

Also owns persistent units (`simulation.state_dir`: each slot's flash and eFuses in files,
written as the chip would keep them) and the power-cut hook of the power-loss tests.
May import ate.protocol, ate.config, ate.model and ate.sim only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
import random
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pydantic import ValidationError

from ate.config.errors import InputError
from ate.config.files import IMAGE_MAX, FileRefused, read_file
from ate.config.fixture import Fixture, SimSlotSpec, SimulationSpec
from ate.config.loader import load_model
from ate.model.units import Quantity
from ate.protocol.lines import (
    PROTOCOL_VERSION,
    Corrupt,
    HostDecoder,
    Request,
    encode_error,
    encode_notice,
    encode_reply,
)
from ate.sim.board import (
    BoardSpec,
    CommandError,
    SimBoard,
    check_args,
    parse_int,
    protocol_error,
    show,
)
from ate.sim.dut_server import (
    CutPoint,
    DutServer,
    SocketLink,
    Transport,
    UnitLoader,
    check_transport,
    feed_lines,
    make_link,
)
from ate.sim.replay import ReplayBoard, load_slot_log
from ate.sim.rf_space import RfSpace
from ate.sim.rom.chips import get_profile
from ate.sim.rom.efuses import EfuseBank
from ate.sim.rom.face import RomFace
from ate.sim.rom.flash import SparseFlash
from ate.sim.timing import LINE, LineTimes

LED_STATES = ("off", "busy", "pass", "fail", "error")
BUZZER_PATTERNS = ("off", "pass", "fail")
CONTROLLER_FW = "ate-fixture-sim/1.0.0"

T = TypeVar("T")


class UnitFlash(SparseFlash):
    """A unit's flash that, given a `path`, is saved there after every program or erase
    that changed it: a killed simulator loses nothing the chip would have kept."""

    path: Path | None = None

    @classmethod
    def load(cls, path: Path) -> UnitFlash:
        flash = super().load(path)
        assert isinstance(flash, UnitFlash)
        return flash

    def program(self, offset: int, data: bytes) -> None:
        super().program(offset, data)
        self._persist()

    def erase(self, offset: int, length: int) -> None:
        super().erase(offset, length)
        self._persist()

    def erase_all(self) -> None:
        super().erase_all()
        self._persist()

    def _persist(self) -> None:
        if self.path is not None and self.dirty:
            self.save(self.path)


@dataclass
class _Unit:
    """What a unit keeps without power: its flash and its eFuses."""

    flash: UnitFlash
    efuses: EfuseBank


@dataclass
class SimSlot:
    """What the controller knows about one slot of the fixture."""

    slot: int
    server: DutServer | None  # None: slot disabled in the fixture file
    board: SimBoard | None  # None: no board in the slot
    rails: frozenset[str]  # what the DMM mux can route, board or not
    noise: random.Random
    led: str = "off"
    switched_on: bool = False


@dataclass
class _Inflight:
    ids: set[int] = field(default_factory=set)
    last: tuple[Request, bytes] | None = None


class FixtureController:
    """The controller MCU twin. Commands run concurrently (each channel has its own
    hardware) except DMM reads, which share the one DMM behind the mux."""

    def __init__(
        self,
        slots: Mapping[int, SimSlot],
        *,
        transport: str = "pty",
        clamp_closed: bool = True,
        sample_s: float = 0.001,
        dmm_s: float = 0.020,
    ) -> None:
        self.slots = dict(slots)
        self.clamp_closed = clamp_closed
        self.sample_s = sample_s
        self.dmm_s = dmm_s
        # Time the controller's instruments spend per slot, and the DMM in all (shared).
        self.slot_s: dict[int, float] = dict.fromkeys(self.slots, 0.0)
        self.dmm_busy_s = 0.0
        self._link = make_link(transport, self._on_data, self._on_connect)
        self._decoder = HostDecoder()
        self._state = _Inflight()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dmm: asyncio.Lock | None = None
        self.buzzer = "off"
        self._port = 0
        self.buzzes: list[str] = []  # every pattern sounded, for tests

    @property
    def endpoint(self) -> str:
        return self._link.endpoint

    async def start(self) -> None:
        self._dmm = asyncio.Lock()
        await self._link.open()
        self._port = int(self.endpoint.rsplit(":", 1)[1]) if "://" in self.endpoint else 0

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._link.close()

    def set_clamp(self, closed: bool) -> None:
        """The operator's hand on the clamp: a CLAMP notice when it changes."""
        if closed != self.clamp_closed:
            self.clamp_closed = closed
            self._link.write(encode_notice("CLAMP", {"closed": int(closed)}))

    def press_button(self) -> None:
        """The operator's start button: a BUTTON notice."""
        self._link.write(encode_notice("BUTTON", {"pressed": 1}))

    async def unplug(self) -> None:
        """The controller's cable pulled: the host's port closes and stays gone until
        `replug` (same endpoint for a socket; a pty is made anew, so socket only)."""
        if not isinstance(self._link, SocketLink):
            raise ValueError("unplug needs the socket transport")
        await self._link.close()

    async def replug(self) -> None:
        assert isinstance(self._link, SocketLink)
        await self._link.open(port=self._port)

    # ---- requests --------------------------------------------------------------------

    def _on_connect(self) -> None:
        self._decoder = HostDecoder()

    def _on_data(self, data: bytes) -> None:
        for event in feed_lines(self._decoder, data):
            if isinstance(event, Corrupt):
                self._link.write(protocol_error(event))
                continue
            st = self._state
            if st.last is not None and st.last[0] == event:
                self._link.write(st.last[1])  # rule 4: answered again, not executed again
            elif event.id not in st.ids:  # a resend of a running command: its answer comes
                st.ids.add(event.id)
                task = asyncio.get_running_loop().create_task(self._run(event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _run(self, req: Request) -> None:
        try:
            reply = encode_reply(req.id, await self._execute(req))
        except CommandError as exc:
            reply = encode_error(req.id, exc.code, exc.message)
        finally:
            self._state.ids.discard(req.id)
        self._state.last = (req, reply)
        self._link.write(reply)

    def _slot(self, text: str) -> SimSlot:
        n = parse_int(text, "slot", 0, 255)
        slot = self.slots.get(n)
        if slot is None:
            raise CommandError("EARG", f"no slot {n} on this fixture")
        return slot

    async def _execute(self, req: Request) -> dict[str, object]:
        cmd, args = req.command, req.args
        if cmd in ("ping", "info"):
            check_args(req, 0)
            return {"proto": PROTOCOL_VERSION, "fw": CONTROLLER_FW, "slots": len(self.slots)}
        if cmd == "clamp.get":
            check_args(req, 0)
            return {"closed": int(self.clamp_closed)}
        if cmd == "power.set":
            check_args(req, 2)
            slot = self._slot(args[0])
            on = bool(parse_int(args[1], "state", 0, 1))
            slot.switched_on = on
            if slot.server is not None:
                slot.server.power(on)
            return {}
        if cmd == "strap":
            check_args(req, 2)
            slot = self._slot(args[0])
            if args[1] not in ("run", "boot"):
                raise CommandError("EARG", "strap run or strap boot")
            if slot.server is not None:
                slot.server.reset(boot_mode=args[1] == "boot")
            return {}
        if cmd == "present.get":
            check_args(req, 1)
            return {"present": int(self._slot(args[0]).board is not None)}
        if cmd == "led.set":
            check_args(req, 2)
            slot = self._slot(args[0])
            if args[1] not in LED_STATES:
                raise CommandError("EARG", f"led state: {', '.join(LED_STATES)}")
            slot.led = args[1]
            return {}
        if cmd == "buzzer.set":
            check_args(req, 1)
            if args[0] not in BUZZER_PATTERNS:
                raise CommandError("EARG", f"buzzer: {', '.join(BUZZER_PATTERNS)}")
            self.buzzer = args[0]
            self.buzzes.append(args[0])
            return {}
        if cmd == "isense.read":
            kwargs = check_args(req, 1, ("samples",))
            slot = self._slot(args[0])
            n = parse_int(kwargs.get("samples", "1"), "samples", 1, 1000)
            if isinstance(slot.board, ReplayBoard) and slot.board.powered:
                ma = repr(slot.board.recorded_current())  # as logged, no sense-amp noise
                return {"ma": ma, "min": ma, "max": ma}
            return await self._isense(slot, n)
        if cmd == "dmm.read":
            check_args(req, 2)
            slot = self._slot(args[0])
            if args[1] not in slot.rails:
                raise CommandError("EARG", f"no rail {show(args[1])} on slot {slot.slot}")
            if isinstance(slot.board, ReplayBoard) and slot.board.powered:
                return {"v": repr(slot.board.recorded(f"rail.{args[1]}", Quantity.VOLTAGE))}
            return await self._dmm_read(slot, args[1])
        raise CommandError("EUNKNOWN", f"no command {cmd}")

    async def _isense(self, slot: SimSlot, n: int) -> dict[str, object]:
        # Sampled in a few slices over the window so a mode change mid-read shows up.
        samples: list[float] = []
        slice_n = max(1, n // 8)
        while len(samples) < n:
            k = min(slice_n, n - len(samples))
            if self.sample_s > 0:
                self.slot_s[slot.slot] += k * self.sample_s
                await asyncio.sleep(k * self.sample_s)
            base = slot.board.current_ma() if slot.board is not None else 0.0
            for _ in range(k):
                # Sense-amp noise: 0.4 % of reading plus a 0.3 uA floor; no current, no noise.
                noisy = base + slot.noise.gauss(0.0, base * 0.004 + 0.0003) if base else 0.0
                samples.append(max(0.0, noisy))
        return {
            "ma": f"{sum(samples) / n:.4f}",
            "min": f"{min(samples):.4f}",
            "max": f"{max(samples):.4f}",
        }

    async def _dmm_read(self, slot: SimSlot, rail: str) -> dict[str, object]:
        assert self._dmm is not None
        async with self._dmm:
            if self.dmm_s > 0:
                self.slot_s[slot.slot] += self.dmm_s
                self.dmm_busy_s += self.dmm_s
                await asyncio.sleep(self.dmm_s)
            v = slot.board.rail_v(rail) if slot.board is not None else 0.0
            if v:
                v += slot.noise.gauss(0.0, 0.0005)
        return {"v": f"{v:.4f}"}


class SimFixture:
    """A whole simulated fixture from a Fixture model with a `simulation:` section.

    Board paths are relative to `base_dir` (the fixture file's directory). Boards start
    unpowered, as on a real fixture: the host switches them on with power.set.
    """

    def __init__(
        self,
        fixture: Fixture,
        base_dir: str | Path,
        *,
        transport: str = "pty",
        clamp_closed: bool = True,
    ) -> None:
        self.transport: Transport = check_transport(transport)
        sim = fixture.simulation
        if sim is None:
            raise InputError(None, f"fixture {fixture.fixture}: no simulation section")
        self.fixture = fixture
        self.base_dir = Path(base_dir)
        self.state_dir: Path | None = None
        if sim.state_dir is not None:
            self.state_dir = self.base_dir / sim.state_dir  # an absolute state_dir wins
        self._units: list[_Unit] = []
        self.timing: LineTimes | None = LINE if sim.timing == "line" else None
        self._lock: int | None = None  # the state_dir's lock file, held while running
        numbers = {s.slot for s in fixture.slots}
        for n in sim.slots:
            if n not in numbers:
                raise InputError(None, f"simulation.slots.{n}: no such slot in the fixture")
        specs: dict[str, BoardSpec] = {}

        def spec_for(rel: str) -> BoardSpec:
            if rel not in specs:
                specs[rel] = load_model(self.base_dir / rel, BoardSpec)
            return specs[rel]

        # One shield box: the golden twins and every slot's unit share its air.
        self.rf_space = RfSpace(sim.rf, sim.seed)
        self._golden: dict[str, DutServer] = {}
        for i, name in enumerate(fixture.golden_boards()):
            res = fixture.resources[name]
            if res.port is None or not res.port.sim:
                continue
            golden = SimBoard(
                spec_for(sim.rf.golden_board or sim.board), sim.seed, -1 - i, role="golden"
            )
            golden.rf_space = self.rf_space
            self._golden[name] = DutServer(golden, self.transport, timing=self.timing)
        self._slots: dict[int, SimSlot] = {}
        for s in fixture.slots:
            plan = sim.slots.get(s.slot, SimSlotSpec())
            spec = spec_for(plan.board or sim.board)
            if plan.faults:
                try:
                    spec = spec.with_faults(plan.faults)
                except ValidationError as exc:
                    err = exc.errors()[0]
                    loc = "".join(f".{p}" for p in err["loc"])
                    raise InputError(
                        None, f"simulation.slots.{s.slot}{loc}: {err['msg']}"
                    ) from None
            board: SimBoard | None = None
            if plan.empty or not s.enabled:
                pass
            elif plan.replay is not None:
                script = load_slot_log(
                    self.base_dir / plan.replay, f"simulation.slots.{s.slot}.replay: "
                )
                board = ReplayBoard(spec, script, s.slot)
            else:
                board = SimBoard(spec, sim.seed, s.slot)
            if board is not None:
                board.rf_space = self.rf_space
            rom = self._rom_face(board, sim, plan, s.slot) if board is not None else None
            server = (
                DutServer(board, self.transport, rom=rom, timing=self.timing) if s.enabled else None
            )
            self._slots[s.slot] = SimSlot(
                slot=s.slot,
                server=server,
                board=board,
                rails=frozenset(board.rails if board is not None else spec.rails),
                noise=random.Random(f"{sim.seed}:{s.slot}:fixture"),
            )
        self.controller = FixtureController(
            self._slots, transport=self.transport, clamp_closed=clamp_closed
        )

    def _rom_face(
        self, board: SimBoard, sim: SimulationSpec, plan: SimSlotSpec, slot: int
    ) -> RomFace:
        """The unit's ROM side: blank flash (or the fixture's preflash image) and factory
        eFuses carrying the board's MAC, so ROM and test firmware name the same unit.

        With a state_dir the unit is the one stored in <state_dir>/slot<N> (flash.bin,
        efuse.bin); a unit is new (preflash image, arrival eFuses) only the first time.
        """
        profile = get_profile(board.spec.chip)
        jedec = next((d.jedec for d in board.spec.spi if d.bus == 1), None)
        if jedec is not None:  # manufacturer, type, capacity -> RDID's register byte order
            jedec = (jedec & 0xFF) << 16 | (jedec & 0xFF00) | jedec >> 16
        unit_dir = None if self.state_dir is None else self.state_dir / f"slot{slot}"
        flash_path = efuse_path = None
        if unit_dir is not None:
            try:
                unit_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(
                    None, f"simulation.state_dir: cannot create {unit_dir}: {exc}"
                ) from None
            flash_path, efuse_path = unit_dir / "flash.bin", unit_dir / "efuse.bin"
        if flash_path is not None and flash_path.exists():
            try:
                flash = UnitFlash.load(flash_path)
            except (OSError, ValueError) as exc:
                raise InputError(
                    flash_path, f"simulation.state_dir: slot {slot}'s flash: {exc}"
                ) from None
        else:
            flash = UnitFlash(profile.default_flash_size, jedec_id=jedec)
            if sim.preflash is not None:
                path = self.base_dir / sim.preflash
                try:
                    flash.program(profile.app_offset, read_file(path, IMAGE_MAX))
                except FileRefused as exc:
                    raise InputError(path, f"simulation.preflash: {exc}") from None
            if flash_path is not None:
                flash.save(flash_path)
        flash.path = flash_path
        flash.attached = not board.spec.faults.no_flash
        new_efuses = efuse_path is None or not efuse_path.exists()
        try:
            efuses = EfuseBank(profile, path=efuse_path, mac=board.mac, seed=sim.seed)
        except (OSError, ValueError) as exc:
            raise InputError(
                efuse_path, f"simulation.state_dir: slot {slot}'s eFuses: {exc}"
            ) from None
        if new_efuses:
            for name, value in plan.efuses.items():
                try:
                    efuses.burn(name, value)
                except ValueError as exc:
                    raise InputError(
                        None, f"simulation.slots.{slot}.efuses.{name}: {exc}"
                    ) from None
        self._units.append(_Unit(flash, efuses))
        return RomFace(
            UnitLoader(profile, flash, efuses), wire_time=sim.wire_time, timing=self.timing
        )

    async def start(self) -> None:
        self._lock_state()
        parts: list[DutServer | FixtureController] = [
            s.server for s in self._slots.values() if s.server is not None
        ]
        parts.append(self.controller)
        parts.extend(self._golden.values())
        started: list[DutServer | FixtureController] = []
        try:
            for part in parts:
                await part.start()
                started.append(part)
            for server in self._golden.values():
                # Powered all along, outside the slots' switches: up before any panel.
                assert server.board is not None
                server.board.power_on()
                server.board.finish_boot()
        except BaseException:
            for part in reversed(started):
                await part.stop()
            self._unlock_state()
            raise

    async def stop(self) -> None:
        for server in self._golden.values():
            await server.stop()
        await self.controller.stop()
        for s in self._slots.values():
            if s.server is not None:
                await s.server.stop()
        self.save_units()
        self._unlock_state()

    def save_units(self) -> None:
        """Write every unit's flash and eFuses to the state_dir (no-op without one)."""
        for unit in self._units:
            if unit.flash.path is not None:
                unit.flash.save(unit.flash.path)
            if unit.efuses.path is not None:
                unit.efuses.save()

    def _lock_state(self) -> None:
        """One running fixture per state_dir: two would overwrite each other's units."""
        if self.state_dir is None or self._lock is not None:
            return
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            lock = os.open(self.state_dir / "lock", os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(None, f"simulation.state_dir {self.state_dir}: {exc}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            raise InputError(
                None,
                f"simulation.state_dir {self.state_dir}: another simulated fixture is "
                "running on these units; stop it first",
            ) from None
        self._lock = lock

    def _unlock_state(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            os.close(lock)  # closing releases the flock

    async def __aenter__(self) -> SimFixture:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def line_time(self) -> dict[str, object]:
        """The line-time model's account so far: per slot the unit's own time (ROM side,
        firmware side, the controller's instruments on that slot) and the golden board's
        share; the DMM's busy time. What the benchmark's floor is computed from."""
        slots: dict[str, dict[str, float]] = {}
        for n, s in self._slots.items():
            if s.server is None or s.board is None:
                continue
            rom = s.server.rom.critical_s if s.server.rom is not None else 0.0
            fixture = self.controller.slot_s.get(n, 0.0)
            slots[str(n)] = {
                "unit_s": s.server.critical_s + fixture,
                "rom_s": rom,
                "firmware_s": s.server.modelled_s,
                "fixture_s": fixture,
                "rf_s": s.server.rf_s,
            }
        golden = {name: server.modelled_s for name, server in self._golden.items()}
        return {"slots": slots, "dmm_busy_s": self.controller.dmm_busy_s, "golden_busy_s": golden}

    @property
    def endpoints(self) -> dict[int, str]:
        """Slot -> port string (pty path or socket:// url), for every enabled slot."""
        return {n: s.server.endpoint for n, s in self._slots.items() if s.server is not None}

    @property
    def controller_endpoint(self) -> str:
        return self.controller.endpoint

    @property
    def golden_endpoints(self) -> dict[str, str]:
        """golden_board resource -> its twin's port, for those with `port: sim`."""
        return {name: server.endpoint for name, server in self._golden.items()}

    def golden_board(self, name: str) -> SimBoard | None:
        server = self._golden.get(name)
        return server.board if server is not None else None

    @property
    def slots(self) -> tuple[int, ...]:
        return tuple(self._slots)

    def board(self, slot: int) -> SimBoard | None:
        return self._slots[slot].board

    def server(self, slot: int) -> DutServer | None:
        return self._slots[slot].server

    def led(self, slot: int) -> str:
        return self._slots[slot].led

    @property
    def clamp_closed(self) -> bool:
        return self.controller.clamp_closed

    async def set_clamp(self, closed: bool) -> None:
        self.controller.set_clamp(closed)

    async def press_button(self) -> None:
        self.controller.press_button()

    def arm_power_cut(
        self,
        slot: int,
        at: CutPoint,
        *,
        nth: int = 1,
        applied: bool = True,
        command: str | None = None,
    ) -> threading.Event:
        """The unit in `slot` loses power at the `nth` occurrence (counted from now) of an
        eFuse program operation, a flash program block from the host, or a test-firmware
        request named `command`: with `applied` the effect happens first, else it does
        not; no reply is sent, and the slot stays off (for the controller too) until the
        host's next `power.set <slot> 1`. One-shot; the Event is set when the cut has
        happened. Call on the fixture's event loop (SimFixtureThread has a wrapper)."""
        s = self._slots.get(slot)
        if s is None:
            raise ValueError(f"no slot {slot} on this fixture")
        if s.server is None or s.board is None:
            raise ValueError(f"slot {slot} holds no unit: there is no power to cut")
        return s.server.arm_power_cut(
            at,
            nth=nth,
            applied=applied,
            command=command,
            on_cut=functools.partial(self._switched_off, s),
        )

    @staticmethod
    def _switched_off(slot: SimSlot) -> None:
        slot.switched_on = False


class SimFixtureThread:
    """A SimFixture on its own event loop in a daemon thread (the executive's loop and the
    simulated hardware's are separate, as on a real line). Endpoints are ready when
    `with` returns; leaving the block stops the fixture and the thread."""

    def __init__(
        self,
        fixture: Fixture,
        base_dir: str | Path,
        transport: str = "pty",
        *,
        clamp_closed: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self._args = (fixture, Path(base_dir), check_transport(transport), clamp_closed)
        self._timeout = timeout
        self._sim: SimFixture | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def sim(self) -> SimFixture:
        if self._sim is None:
            raise RuntimeError("SimFixtureThread not started")
        return self._sim

    def __enter__(self) -> SimFixtureThread:
        fixture, base_dir, transport, clamp_closed = self._args
        # Built here, not on the thread: bad board files raise InputError to the caller.
        self._sim = SimFixture(fixture, base_dir, transport=transport, clamp_closed=clamp_closed)
        self._thread = threading.Thread(
            target=self._main, name=f"sim-fixture {fixture.fixture}", daemon=True
        )
        self._thread.start()
        if not self._started.wait(self._timeout):
            raise TimeoutError(f"simulated fixture did not start in {self._timeout} s")
        if self._error is not None:
            self._thread.join(self._timeout)
            raise self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):  # the loop may already be gone
            asyncio.run_coroutine_threadsafe(self.sim.stop(), loop).result(self._timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(self._timeout)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self.sim.start())
            except BaseException as exc:
                self._error = exc
                return
            finally:
                self._started.set()
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the fixture's loop and wait for its result (thread-safe)."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("SimFixtureThread not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self._timeout)

    @property
    def endpoints(self) -> dict[int, str]:
        return self.sim.endpoints

    @property
    def controller_endpoint(self) -> str:
        return self.sim.controller_endpoint

    @property
    def golden_endpoints(self) -> dict[str, str]:
        return self.sim.golden_endpoints

    def board(self, slot: int) -> SimBoard | None:
        return self.sim.board(slot)

    def led(self, slot: int) -> str:
        return self.sim.led(slot)

    def set_clamp(self, closed: bool) -> None:
        """Open or close the clamp from any thread; returns once the notice is sent."""
        self.run(self.sim.set_clamp(closed))

    def press_button(self) -> None:
        self.run(self.sim.press_button())

    def unplug_controller(self) -> None:
        """Pull the controller's cable (socket transport): the host sees its port close."""
        self.run(self.sim.controller.unplug())

    def replug_controller(self) -> None:
        self.run(self.sim.controller.replug())

    @property
    def buzzes(self) -> list[str]:
        return list(self.sim.controller.buzzes)

    def arm_power_cut(
        self,
        slot: int,
        at: CutPoint,
        *,
        nth: int = 1,
        applied: bool = True,
        command: str | None = None,
    ) -> threading.Event:
        """SimFixture.arm_power_cut from any thread (armed on the fixture's loop)."""

        async def arm() -> threading.Event:
            return self.sim.arm_power_cut(slot, at, nth=nth, applied=applied, command=command)

        return self.run(arm())
