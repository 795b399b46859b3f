"""The station daemon: `ate station --config station.yaml`. Runs one FixtureLoop task per
fixture of the station file on one event loop, for as long as the process lives; owns the
station-wide parts (event bus, output files, spool and line database, provisioning, the
simulated twins of simulated fixtures), the signals (SIGTERM/SIGINT stop, SIGHUP reload)
and systemd's notify socket (READY, STATUS, WATCHDOG).

May import ate.station, ate.mes, ate.config, ate.scheduler, ate.provision, ate.sim (for `sim`
fixtures) and ate.cli.store_cmds (the default database URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ate.config.errors import InputError
from ate.config.fixture import PortSpec
from ate.config.loader import LoadedStation, load_station
from ate.drivers.line_client import DeviceGone
from ate.mes.gate import MesGate, admit_through
from ate.mes.registry import open_gate
from ate.model.events import Event, PanelStarted
from ate.provision.cloud_queue import CloudWorker
from ate.provision.critical import CriticalSections
from ate.provision.journal import JournalError
from ate.provision.profile import CaNotReady
from ate.scheduler.bus import EventBus
from ate.scheduler.slot import SlotOptions
from ate.statedir import write_private
from ate.station.approvals import NotApproved
from ate.station.around import LineAround
from ate.station.fixture_loop import FixtureLoop, LoopContext
from ate.station.line import LineDb
from ate.station.metrics import LineState
from ate.station.runner import Endpoints, Outputs
from ate.station.sd_notify import Notifier
from ate.station.status import StationStatus
from ate.station.store_sink import StoreSink
from ate.store.spool import default_spool_path

if TYPE_CHECKING:
    from ate.sim.fixture_twin import SimFixtureThread
    from ate.station.provisioning import StationProvisioning
    from ate.ui.app import PageServer
    from ate.ui.scans import ScanBook
    from ate.ui.view import StationView

_log = logging.getLogger("ate.station")
LINE_WATCH_S = 2.0  # how often the page's line database and spool state is refreshed


class CannotStart(Exception):
    """The station cannot run this configuration (CA, journal, database): one line."""


@dataclass
class _Running:
    """One configuration in force: what its loops share and must close."""

    loaded: LoadedStation
    ctx: LoopContext
    line: LineDb
    gate: MesGate
    provisioning: StationProvisioning | None
    loops: dict[str, FixtureLoop] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    scanners: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    cloud: CloudWorker | None = None  # drains the cloud-registration queue
    cloud_task: asyncio.Task[None] | None = None


class Station:
    """Create, then `await run()`; `request_stop`, `request_reload` and `request_start`
    are what signals and (later) the operator page call."""

    def __init__(
        self,
        config: Path,
        *,
        transport: str = "pty",
        notifier: Notifier | None = None,
        options: SlotOptions | None = None,
        loaded: LoadedStation | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.notifier = notifier or Notifier()
        self.options = options or SlotOptions()
        self.loaded = loaded or load_station(config)  # InputError: the caller exits 2
        self.status = StationStatus(self.loaded.model.station)
        self.bus = EventBus()
        self.bus.subscribe(_log_panel_start)
        self.critical = CriticalSections()
        self.twins: dict[str, SimFixtureThread] = {}
        self._stop: asyncio.Event | None = None
        self._reload: asyncio.Event | None = None
        self._ready = asyncio.Event()
        self._outputs: Outputs | None = None
        self._sink: StoreSink | None = None
        self._running: _Running | None = None
        self.page: PageServer | None = None  # the operator's page, when the file asks
        self.view: StationView | None = None
        self.scans: ScanBook | None = None  # labels scanned on the page (label_scan)
        # A sequence or profile an engineer loaded at the page, in place of the station
        # file's until the process ends (a restart runs what the file names).
        self.chosen: dict[str, Path] = {}
        # metrics and MQTT events (optional, failing soft), and the MES gate in force
        self.around = LineAround(self.loaded.model.station, self.bus, self.status)
        self.around.read_line_state(self._line_state)
        self.bus.subscribe(self._observe_gate)

    # ---- control ----------------------------------------------------------------------

    def request_stop(self) -> None:
        if self._stop is not None and not self._stop.is_set():
            _log.warning("station %s: stopping (no new panel)", self.status.station)
            self.status.stopping = True
            self.status.changed()
            self._stop.set()

    def request_reload(self) -> None:
        if self._reload is not None:
            self._reload.set()

    def request_start(self, fixture: str) -> bool:
        """The manual trigger: start a panel on `fixture` (False: no such manual fixture)."""
        run = self._running
        loop = run.loops.get(fixture) if run is not None else None
        if loop is None or loop.trigger != "manual":
            return False
        loop.start_requested.set()
        return True

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def deliver_records(self, timeout: float) -> int:
        """Deliver what the spool holds to the line database now; how many still wait
        (see StoreSink.drain)."""
        if self._sink is None:
            return 0
        return await self._sink.drain(timeout)

    # ---- the process ------------------------------------------------------------------

    async def run(self) -> int:
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = {signal.SIGTERM: self.request_stop, signal.SIGINT: self.request_stop}
        signals[signal.SIGHUP] = self.request_reload
        for sig, handler in signals.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, handler)

        def tell_systemd(st: StationStatus) -> None:
            self.notifier.status(st.summary())

        self.status.subscribe(tell_systemd)
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        line_watch: asyncio.Task[None] | None = None
        try:
            if self.loaded.model.label_scan != "off":
                from ate.ui.scans import ScanBook

                self.scans = ScanBook(_slots_of(self.loaded), self.loaded.model.label_scan)
            self.page = await self._start_page()
            await self.around.start(self.loaded.model)
            if self.view is not None:
                line_watch = asyncio.create_task(self._line_watch(self.view), name="line-watch")
            self._running = self._start(self.loaded, armed={})
            self.notifier.ready(self.status.summary())
            self._ready.set()
            _log.info("station %s running: %s", self.status.station, ", ".join(self._running.loops))
            while not self._stop.is_set():
                await _first_of(self._stop, self._reload)
                if self._reload.is_set() and not self._stop.is_set():
                    self._reload.clear()
                    await self._do_reload()
            self.notifier.stopping(self.status.summary())
            await self._stop_loops(self._running)
            return 0
        finally:
            watchdog.cancel()
            if line_watch is not None:
                line_watch.cancel()
            if self.page is not None:
                await self.page.close()
            await self.around.close()
            for sig in signals:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
            await self._close_all()

    async def _start_page(self) -> PageServer | None:
        """The operator's page on this loop: a view fed by the bus and the status, the
        slots' prompts asked on it, labels printed for locked units, sign-in against the
        line database when the station file asks for it."""
        loaded = self.loaded
        cfg = loaded.model.page
        if cfg is None:
            return None
        from ate.ui.app import Action, operator_app, start_page
        from ate.ui.auth import Authority
        from ate.ui.labels import LabelPrinter, PrinterTarget
        from ate.ui.view import StationView

        st = loaded.model
        view = StationView(
            st.station, steps_total=len(loaded.sequence.model.all_steps()), lot=st.lot or ""
        )
        view.watch(self.status)
        self.bus.subscribe(view.on_event)
        if self.scans is not None:
            view.attach_scans(self.scans)
        self.options = dataclasses.replace(self.options, prompts=view.prompts)
        if cfg.label_printer:
            printer = LabelPrinter(PrinterTarget.parse(cfg.label_printer))
            self.bus.subscribe(printer.on_event)
            view.attach_labels(printer)
        auth = None
        if cfg.signin:
            from ate.cli.store_cmds import default_db_url
            from ate.store.api import open_store

            store = open_store(st.db or default_db_url(loaded.state))
            auth = Authority(store, st.station, _session_key(loaded.state))

        async def reload() -> None:
            self.request_reload()

        app = operator_app(
            view,
            lang=cfg.lang,
            auth=auth,
            actions={"reload": Action("engineer", reload)},
            remote=not cfg.loopback,
            loader=self,
            on_load=reload,
        )
        app.router.routes.append(self.around.metrics.route())
        self.view = view
        tls = None
        if cfg.tls is not None:
            base = loaded.path.parent
            tls = ((base / cfg.tls.cert).resolve(), (base / cfg.tls.key).resolve())
            if tls[1].stat().st_mode & 0o077:
                _log.warning("the page's TLS key %s is readable by others: chmod 600", tls[1])
        page = await start_page(app, cfg.host, cfg.port, tls=tls)
        _log.info("station %s: operator page on %s", st.station, page.url)
        return page

    async def _line_watch(self, view: StationView) -> None:
        """The page's line database and spool state, read from the store sink: a spool
        count is a cheap local query, and the page must show a database that went away."""
        while True:
            sink = self._sink
            if sink is not None:
                st = sink.status()
                state = "offline" if st.last_error else "online" if st.connected else "unknown"
                view.line_state(state, st.waiting)
            await asyncio.sleep(LINE_WATCH_S)

    async def _watchdog(self) -> None:
        """WATCHDOG=1 at half of systemd's WatchdogSec: sent from the event loop, so a
        blocked loop (a hung station) stops the pings and systemd restarts it."""
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _start(self, loaded: LoadedStation, *, armed: dict[str, bool]) -> _Running:
        """Open what `loaded` needs and start its loops; CannotStart if it cannot run."""
        st = loaded.model
        try:
            loaded.state.mkdir(parents=True, exist_ok=True)
            loaded.outputs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CannotStart(f"cannot create the state or outputs folder: {exc}") from None
        from ate.cli.store_cmds import default_db_url

        db_url = st.db or default_db_url(loaded.state)
        if self._outputs is None:
            self._outputs = Outputs(loaded.outputs)
            self._outputs.attach(self.bus)
            self._sink = StoreSink.start(
                db_url, default_spool_path(loaded.state), station=st.station, operator=st.operator
            )
            self._sink.attach(self.bus)
        if st.production:
            self._check_production(loaded, db_url)
        line = LineDb(db_url, max_retests=st.max_retests)
        provisioning = None
        if loaded.profile is not None:
            from ate.station.provisioning import open_provisioning

            try:
                provisioning = open_provisioning(
                    loaded.profile,
                    loaded.sequence,
                    state_dir=loaded.state,
                    out_dir=loaded.outputs,
                    station=st.station,
                    operator=st.operator,
                    lot=st.lot,
                    line=line,
                    require_label=st.label_scan == "required",
                )
            except (CaNotReady, JournalError) as exc:
                line.close()
                raise CannotStart(f"cannot provision: {exc}") from None
            except InputError:
                line.close()
                raise
            provisioning.provisioner.critical = self.critical
        cloud = _cloud_worker(provisioning, line) if provisioning is not None else None

        gate = open_gate(
            st.mes,
            st.station,
            line.gate,
            on_drop=lambda: self.around.metrics.events_dropped.labels("cfx").inc(),
        )

        async def after_panel() -> None:
            if provisioning is not None:
                await asyncio.to_thread(provisioning.after_panel)
            if cloud is not None:
                cloud.wake()  # the units just locked are on the queue

        assert self._stop is not None
        ctx = LoopContext(
            station=st.station,
            operator=st.operator,
            sequence=loaded.sequence,
            bus=self.bus,
            status=self.status,
            critical=self.critical,
            watched_dirs=(loaded.state, loaded.outputs),
            min_free=st.min_free_bytes,
            debounce=st.debounce,
            retry_max=st.retry_max,
            stop=self._stop,
            idle_exit=asyncio.Event(),
            provisioner=provisioning.provisioner if provisioning else None,
            admit=admit_through(gate, st.station),
            after_panel=after_panel,
            options=self.options,
            labels=self.scans,
        )
        running = _Running(loaded, ctx, line, gate, provisioning, cloud=cloud)
        if cloud is not None:
            running.cloud_task = asyncio.create_task(cloud.run(), name="cloud-registration")
        for fix, trigger in zip(loaded.fixtures, loaded.triggers, strict=True):
            name = fix.model.fixture
            sim = self._twin(fix)
            prev = self.status.fixtures.get(name)
            self.status.add(name, trigger)
            self.around.metrics.add_fixture(name)
            if prev is not None:  # counters survive a reload
                fs = self.status.fixtures[name]
                fs.panels, fs.counts, fs.last_verdicts = (
                    prev.panels,
                    prev.counts,
                    prev.last_verdicts,
                )
            loop = FixtureLoop(fix, trigger, ctx, sim, armed=armed.get(name, True))
            running.loops[name] = loop
            running.tasks[name] = asyncio.create_task(loop.run(), name=f"fixture-{name}")
        for entry, fix in zip(st.fixtures, loaded.fixtures, strict=True):
            if entry.scanner is not None and self.scans is not None:
                name = fix.model.fixture
                running.scanners[name] = asyncio.create_task(
                    self._scanner(name, entry.scanner), name=f"scanner-{name}"
                )
        return running

    def _check_production(self, loaded: LoadedStation, db_url: str) -> None:
        """Production mode: the sequence and profile about to run must be approved in the
        line database (CannotStart says which is not, and how to approve it); what runs,
        under whose approval, goes to the audit log."""
        from ate.station.approvals import NotApproved, check_production
        from ate.store import StoreError, open_store

        try:
            store = open_store(db_url)
        except StoreError as exc:
            raise CannotStart(
                f"production mode: cannot check the approvals, the line database is away: {exc}"
            ) from None
        try:
            approved = check_production(store, loaded.sequence, loaded.profile)
            store.audit_append(
                loaded.model.station,
                "production",
                {
                    c.kind: {"name": c.name, "digest": c.digest, "approved_by": row.approved_by}
                    for c, row in approved
                },
            )
        except NotApproved as exc:
            with contextlib.suppress(StoreError):
                store.audit_append(loaded.model.station, "production.refused", {"why": str(exc)})
            raise CannotStart(f"production mode: {exc}") from None
        except StoreError as exc:
            raise CannotStart(f"production mode: cannot check the approvals: {exc}") from None
        finally:
            store.close()
        for c, row in approved:
            _log.info(
                "production: %s %s (%s) approved by %s", c.kind, c.name, c.short, row.approved_by
            )

    def offer(self) -> dict[str, list[dict[str, object]]]:
        """What an engineer may load at the page: the sequences beside the running one and
        the profiles beside the running profile, each with its approval (blocking: the
        files are read and the line database asked; call it from a thread)."""
        from ate.cli.store_cmds import default_db_url
        from ate.station.approvals import KINDS, candidates
        from ate.store import open_store

        loaded = self.loaded
        running = {"sequence": loaded.sequence.path, "profile": loaded.profile}
        store = open_store(loaded.model.db or default_db_url(loaded.state))
        try:
            offer: dict[str, list[dict[str, object]]] = {}
            for kind in KINDS:
                current = running[kind]
                if current is None:
                    continue
                rows = []
                for c in candidates(kind, current.parent):
                    row = store.approval_get(kind, c.digest)
                    rows.append(
                        {
                            "name": c.name,
                            "file": c.file.name,
                            "digest": c.digest,
                            "approved": row is not None and row.in_force,
                            "approved_by": row.approved_by if row is not None else None,
                            "running": c.file == current.resolve(),
                        }
                    )
                offer[kind] = rows
            return offer
        finally:
            store.close()

    def choose(self, kind: str, digest: str) -> str:
        """Load the approved `kind` file with `digest` at the next idle point (a reload);
        its name, or ValueError saying why not (blocking, like `offer`)."""
        from ate.cli.store_cmds import default_db_url
        from ate.station.approvals import KINDS, approval_in_force, candidates
        from ate.store import open_store

        loaded = self.loaded
        current = {"sequence": loaded.sequence.path, "profile": loaded.profile}.get(kind)
        if kind not in KINDS or current is None:
            raise ValueError(f"this station runs no {kind}")
        found = [c for c in candidates(kind, current.parent) if c.digest == digest]
        if not found:
            raise ValueError(f"no {kind} with digest {digest[:12]} beside {current.name}")
        content = found[0]
        store = open_store(loaded.model.db or default_db_url(loaded.state))
        try:
            approval_in_force(store, content)
        except NotApproved as exc:
            raise ValueError(str(exc)) from None
        finally:
            store.close()
        self.chosen[kind] = content.file
        return content.name

    async def _scanner(self, fixture: str, spec: PortSpec) -> None:
        """A fixture's serial barcode scanner, feeding the scan book; reopened with
        back-off when it goes away, never a reason for the fixture to stop."""
        from ate.drivers.ports import resolve_port
        from ate.drivers.scanner import SerialScanner
        from ate.ui.scans import ScanRefused

        book = self.scans
        assert book is not None
        backoff = 0.25

        def on_scan(code: str) -> None:
            try:
                slot = book.scan_next(fixture, code)
                _log.info("fixture %s: label scanned for slot %d", fixture, slot)
            except ScanRefused as exc:
                _log.warning("fixture %s: scan refused: %s", fixture, exc)
                self.status.update(fixture, last_error=f"scan refused: {exc}")

        def on_bad(why: str) -> None:
            _log.warning("fixture %s: scanner sent %s; dropped", fixture, why)

        while True:
            try:
                scanner = await SerialScanner.open(
                    resolve_port(spec), on_scan, on_bad, baud=spec.baud
                )
            except DeviceGone as exc:
                _log.warning("fixture %s: %s; retrying", fixture, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.loaded.model.retry_max)
                continue
            backoff = 0.25
            try:
                await scanner.closed.wait()
            finally:
                await scanner.close()

    def _twin(self, fix: object) -> Endpoints | None:
        from ate.config.loader import LoadedFixture

        assert isinstance(fix, LoadedFixture)
        if fix.model.controller.driver != "sim":
            return None
        name = fix.model.fixture
        if name not in self.twins:
            from ate.sim.fixture_twin import SimFixtureThread

            twin = SimFixtureThread(fix.model, fix.base_dir, transport=self.transport)
            twin.__enter__()
            self.twins[name] = twin
        twin = self.twins[name]
        return Endpoints(controller=twin.controller_endpoint, slots=dict(twin.endpoints))

    async def _stop_loops(self, running: _Running, *, idle: bool = False) -> dict[str, bool]:
        """Let every loop leave (at its next idle point when `idle`, a reload; else a stop:
        the panel ends after its irreversible acts); returns each fixture's armed state."""
        if idle:
            running.ctx.idle_exit.set()
        await asyncio.gather(*running.tasks.values(), return_exceptions=True)
        for name, task in running.tasks.items():
            if not task.cancelled() and (exc := task.exception()) is not None:
                _log.error("fixture %s: loop ended: %s: %s", name, type(exc).__name__, exc)
        return {name: loop.armed for name, loop in running.loops.items()}

    async def _do_reload(self) -> None:
        """SIGHUP: read the station file again; a file that does not validate is refused
        (its one line logged) and the running configuration goes on untouched. A good one
        replaces the loops between panels: a panel running finishes first."""
        try:
            new = await asyncio.to_thread(
                load_station,
                self.config,
                sequence=self.chosen.get("sequence"),
                profile=self.chosen.get("profile"),
            )
        except InputError as exc:
            _log.error("reload refused, the running configuration stays: %s", exc)
            self.status.config_error = str(exc)
            self.status.changed()
            return
        old = self._running
        assert old is not None
        armed = await self._stop_loops(old, idle=True)
        await self._close_running(old)
        for name in list(self.status.fixtures):
            if name not in {f.model.fixture for f in new.fixtures}:
                self.status.remove(name)
        try:
            self._running = self._start(new, armed=armed)
        except (CannotStart, InputError) as exc:
            _log.error("reload refused, the previous configuration restarts: %s", exc)
            self.status.config_error = str(exc)
            self._running = self._start(old.loaded, armed=armed)
            return
        self.loaded = new
        if self.scans is not None:
            self.scans.slots = _slots_of(new)
        self.status.config_error = None
        self.status.reloads += 1
        self.status.changed()
        _log.info("station file reloaded: %s", ", ".join(self._running.loops))

    async def _close_running(self, running: _Running) -> None:
        for task in running.scanners.values():
            task.cancel()
        await asyncio.gather(*running.scanners.values(), return_exceptions=True)
        if running.cloud_task is not None:
            running.cloud_task.cancel()  # the queue keeps what is not registered yet
            await asyncio.gather(running.cloud_task, return_exceptions=True)
        if running.provisioning is not None:
            running.provisioning.close()
        try:
            await running.gate.aclose()
        except Exception as exc:  # an MES link that fails to close never fails the stop
            _log.warning("mes %s: at close: %s", running.gate.name, exc)
        running.line.close()

    def _observe_gate(self, event: Event) -> None:
        if self._running is not None:
            self._running.gate.observe(event)

    def _line_state(self) -> LineState | None:
        """For the metrics: the store sink's view of the line database."""
        if self._sink is None:
            return None
        st = self._sink.status()
        reachable = False if st.last_error else True if st.connected else None
        return LineState(reachable, st.waiting)

    async def _close_all(self) -> None:
        if self._running is not None:
            for task in self._running.tasks.values():
                task.cancel()
            await asyncio.gather(*self._running.tasks.values(), return_exceptions=True)
            await self._close_running(self._running)
            self._running = None
        if self._sink is not None:
            with contextlib.suppress(Exception):
                left = await self._sink.drain(5.0)
                if left:
                    _log.warning("%d entries wait in the station spool for the database", left)
            await self._sink.aclose()
            self._sink = None
        if self._outputs is not None:
            self._outputs.close()
            self._outputs = None
        for twin in self.twins.values():
            twin.close()
        self.twins.clear()
        self.notifier.close()


def _slots_of(loaded: LoadedStation) -> dict[str, tuple[int, ...]]:
    return {
        f.model.fixture: tuple(s.slot for s in f.model.slots if s.enabled) for f in loaded.fixtures
    }


def _log_panel_start(event: Event) -> None:
    if isinstance(event, PanelStarted):
        _log.info("fixture %s: panel %s started", event.fixture, event.panel_id)


def _cloud_worker(provisioning: StationProvisioning, line: LineDb) -> CloudWorker | None:
    """The worker for the profile's cloud registration; CannotStart without boto3."""
    if provisioning.cloud is None:
        return None
    spec = provisioning.profile.model.cloud
    try:
        from ate.provision.cloud_iot import AwsIotRegistrar
    except ImportError:
        provisioning.close()
        line.close()
        raise CannotStart(
            "the profile registers units with AWS IoT (cloud.registration: aws_iot) but boto3 "
            "is not installed: pip install 'ate[cloud]'"
        ) from None
    registrar = AwsIotRegistrar(
        region=spec.region, policy=spec.policy, endpoint_url=spec.endpoint_url or None
    )
    return CloudWorker(provisioning.cloud, registrar)


async def _first_of(*events: asyncio.Event) -> None:
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


def _session_key(state: Path) -> bytes:
    """The page's cookie-signing key: 32 random bytes in a 0600 file of the state folder,
    so sessions survive a restart of the station."""
    path = state / "page-session.key"
    if not path.exists():
        write_private(path, secrets.token_bytes(32))
    return path.read_bytes()
