"""The store sink on the event stream: each unit record (and the station's audit entries)
goes into the station's spool first, durably, then a delivery task hands it to the line
database, in order, exactly once, whenever the database can be reached.

May import ate.model, ate.records, ate.scheduler.bus and ate.store; never drives a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ate.model.events import (
    Event,
    PanelEnded,
    PanelStarted,
    ProvisionAct,
    SlotEnded,
    UnitIdentified,
)
from ate.records.unit_record import build_record
from ate.scheduler.bus import EventBus
from ate.store.api import (
    AuditSigner,
    SchemaTooNew,
    Store,
    StoreError,
    StoreUnavailable,
    open_store,
    redact_url,
)
from ate.store.signing import StationKey
from ate.store.spool import DEFAULT_KEEP_DAYS, AuditHead, Spool, SpoolError, SpoolItem

T = TypeVar("T")
StoreOpener = Callable[[str], Store]

SPOOLED_KEPT = 1024
_log = logging.getLogger(__name__)
_BATCH = 100
_PRUNE_EVERY_S = 3600.0
_REFUSES = "line database not usable"
_SPOOL_BAD = "station spool unusable"
_FAILED = "store delivery failed"


@dataclass(frozen=True, slots=True)
class SinkStatus:
    url: str  # the line database, any password replaced by ***
    spool: Path
    connected: bool  # the last delivery attempt reached the database
    waiting: int  # records and audit entries spooled, not yet in the line database
    waiting_records: int  # of which unit records
    rejected: int  # refused by the store: kept in the spool, offered again next start
    unspooled: tuple[str, ...]  # record ids that could NOT be spooled (disk full, ...)
    last_error: str | None  # why the database could not be reached, while it cannot


def audit_kind(act: ProvisionAct) -> str | None:
    """The audit entry kind of a provisioning outcome, or None when it is not audited."""
    if act.kind != "outcome":
        return None
    if act.act == "cert.issue":
        return "issue"
    if act.act.startswith("efuse:") or act.act == "serial.burn":
        return "burn"
    return None


def _where(url: str) -> str:
    """host:port of a PostgreSQL URL, the path of an SQLite one."""
    try:
        parts = urlsplit(url)
        if parts.scheme.startswith("postgres"):
            return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    except ValueError:
        pass
    return redact_url(url)


class _Transient(Exception):
    """Nothing can be delivered now; retry later. `what` is the warning's opening words."""

    def __init__(self, reason: str, what: str = "line database unreachable") -> None:
        super().__init__(reason)
        self.reason = reason
        self.what = what


class _Worker(Executor):
    """One daemon thread running blocking calls in order: a database call that hangs can
    never keep the station process from exiting."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        fut: Future[T] = Future()
        self._jobs.put((fut, lambda: fn(*args, **kwargs)))
        return fut

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fut, fn = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._jobs.put(None)
        if wait:
            self._thread.join()


class StoreSink:
    """Subscribe it to the bus *before* anything that shows a unit as done: a record is in
    the spool (fsynced) when `__call__` returns for its SlotEnded."""

    def __init__(
        self,
        spool: Spool,
        url: str,
        *,
        station: str,
        opener: StoreOpener | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        signer: AuditSigner | None = None,
    ) -> None:
        self.spool = spool
        self.signer = signer  # signs each audit entry as it reaches the line database
        self.url = url
        self.station = station
        self._open = opener or open_store
        self._backoff = (backoff_initial, backoff_max)
        self._panels: dict[str, PanelStarted] = {}
        self._macs: dict[tuple[str, int], str] = {}
        self._unspooled: list[str] = []
        # The latest record ids spooled by this sink, in order (bounded: a station runs for
        # months; the spool and the store hold them all).
        self.spooled: deque[str] = deque(maxlen=SPOOLED_KEPT)
        # Touched only on the worker thread:
        self._store: Store | None = None
        # Touched only on the loop:
        self._worker = _Worker("ate-store-sink")
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._kick = asyncio.Event()
        self._progress = asyncio.Event()
        self._attempts_started = 0
        self._attempts_failed_at = 0  # number of the last attempt that failed
        self._connected = False
        self._down_reason: str | None = None
        self._down_what: str | None = None
        self._closed = False
        self._pruned_at = time.monotonic()  # the spool pruned itself when opened

    @classmethod
    def start(
        cls,
        url: str,
        spool_path: Path,
        *,
        station: str,
        operator: str | None = None,
        keep_days: float = DEFAULT_KEEP_DAYS,
        opener: StoreOpener | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> StoreSink:
        """Open (or recover) the spool at `spool_path` and make the sink; with `operator`,
        spool a "signin" audit entry. Nothing is connected yet: delivery starts on the
        running loop at the first event (or `drain`), so a dead database never delays a
        station's start."""
        spool = Spool.open_or_recover(spool_path, keep_days=keep_days)
        sink = cls(
            spool,
            url,
            station=station,
            opener=opener,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            # The key lives beside the spool, in the station's state folder.
            signer=StationKey.load_or_create(spool_path.parent),
        )
        if operator is not None:
            spool.append_audit(station, "signin", {"operator": operator})
        return sink

    def attach(self, bus: EventBus) -> None:
        bus.subscribe(self)

    # -- the event stream (on the loop; quick, apart from the spool's fsync) -------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, SlotEnded):
            self._slot_ended(event)
        elif isinstance(event, PanelStarted):
            self._panels[event.panel_id] = event
            seq = event.sequence
            self._spool_audit(
                event.station,
                "run",
                {
                    "panel_id": event.panel_id,
                    "fixture": event.fixture,
                    "operator": event.operator,
                    "slots": list(event.slots),
                    "sequence": {k: seq.get(k) for k in ("name", "version", "sha256")},
                },
            )
        elif isinstance(event, UnitIdentified):
            self._macs[(event.panel_id, event.slot)] = event.unit.mac
        elif isinstance(event, ProvisionAct):
            self._provision_act(event)
        elif isinstance(event, PanelEnded):
            self._panels.pop(event.panel_id, None)
            for key in [k for k in self._macs if k[0] == event.panel_id]:
                del self._macs[key]
        else:
            return
        self._poke()

    def _slot_ended(self, event: SlotEnded) -> None:
        record_id = f"{event.panel_id}-slot{event.result.slot}"
        panel = self._panels.get(event.panel_id)
        if panel is None:
            self._unspooled.append(record_id)
            _log.error(
                "unit record %s was NOT spooled: the sink did not see its panel start "
                "(subscribe the store sink before the panel starts)",
                record_id,
            )
            return
        try:
            self.spool.append(build_record(panel, event.result))
        except SpoolError as exc:
            self._unspooled.append(record_id)
            _log.error("unit record %s was NOT spooled: %s", record_id, exc)
            return
        self.spooled.append(record_id)

    def _provision_act(self, event: ProvisionAct) -> None:
        kind = audit_kind(event)
        panel = self._panels.get(event.panel_id)
        if kind is None:
            return
        self._spool_audit(
            panel.station if panel else self.station,
            kind,
            {
                "panel_id": event.panel_id,
                "slot": event.slot,
                "chip_id": self._macs.get((event.panel_id, event.slot)),
                "operator": panel.operator if panel else None,
                "act": event.act,
                "status": event.status,
                "detail": event.detail,
            },
        )

    def _spool_audit(self, station: str, kind: str, payload: dict[str, Any]) -> None:
        try:
            self.spool.append_audit(station, kind, payload)
        except SpoolError as exc:
            _log.error("audit entry %s of station %s was NOT spooled: %s", kind, station, exc)

    def _poke(self) -> None:
        try:
            self._ensure_task()
        except RuntimeError:
            return  # no running loop: the next drain delivers
        self._wake.set()

    def _ensure_task(self) -> None:
        loop = asyncio.get_running_loop()
        if self._closed:
            return
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        # A new loop (asyncio.run again): events are bound to the loop that first awaits.
        self._wake, self._kick, self._progress = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._task = loop.create_task(self._deliver_forever(), name="ate-store-delivery")

    # -- delivery (a task on the loop; blocking work on the worker thread) ----------------

    async def _deliver_forever(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._backoff[0]
        while True:
            self._wake.clear()
            self._kick.clear()
            self._attempts_started += 1
            attempt = self._attempts_started
            try:
                try:
                    await loop.run_in_executor(self._worker, self._deliver_all)
                except _Transient:
                    raise
                except Exception as exc:  # a bug must not end delivery for good
                    _log.exception("store delivery failed; retrying")
                    raise _Transient(f"{type(exc).__name__}: {exc}", _FAILED) from None
            except _Transient as exc:
                self._attempts_failed_at = attempt
                self._went_down(exc)
                self._notify()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            delay = self._backoff[0]
            self._came_back()
            self._notify()
            await self._wake.wait()

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    def _went_down(self, exc: _Transient) -> None:
        """One warning line per outage (or per change of cause), none per retry."""
        first = self._down_reason is None or exc.what != self._down_what
        self._connected = False
        self._down_reason, self._down_what = exc.reason, exc.what
        if first:
            try:
                waiting = self.spool.counts().pending_records
            except SpoolError:
                waiting = -1
            where = _where(self.url) if exc.what != _SPOOL_BAD else str(self.spool.path)
            detail = exc.reason if where in exc.reason else f"{where}: {exc.reason}"
            _log.warning(
                "%s (%s); spooling locally, %s records waiting",
                exc.what,
                detail,
                waiting if waiting >= 0 else "some",
            )

    def _came_back(self) -> None:
        if self._down_reason is not None:
            _log.info("line database %s reachable again; spool delivered", _where(self.url))
        self._down_reason = self._down_what = None
        self._connected = True

    def _deliver_all(self) -> None:
        """On the worker thread: connect if needed, deliver every pending item in order."""
        try:
            store = self._connect()
            while items := self.spool.pending_items(limit=_BATCH):
                for item in items:
                    self._deliver_one(store, item)
        except _Transient:
            self._drop_store()
            raise
        except SpoolError as exc:
            raise _Transient(str(exc), _SPOOL_BAD) from None
        now = time.monotonic()
        if now - self._pruned_at > _PRUNE_EVERY_S:
            self._pruned_at = now
            with contextlib.suppress(SpoolError):
                self.spool.prune()

    def _connect(self) -> Store:
        if self._store is None:
            try:
                self._store = self._open(self.url)
            except SchemaTooNew as exc:
                raise _Transient(str(exc), _REFUSES) from None
            except StoreUnavailable as exc:
                raise _Transient(_reason(exc)) from None
            except StoreError as exc:  # a bad URL, a database behind: the operator must act
                raise _Transient(str(exc), _REFUSES) from None
            except OSError as exc:
                raise _Transient(str(exc)) from None
        return self._store

    def _drop_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()

    def _deliver_one(self, store: Store, item: SpoolItem) -> None:
        try:
            if item.kind == "record":
                store.ingest(item.body)  # idempotent on record_id
                self.spool.mark_delivered(item.key)
                return
            station = str(item.body["station"])
            entry = None
            if item.attempts > 0:
                # Tried before a crash: it may be in the chain already; never append twice.
                entry = next(
                    (
                        e
                        for e in reversed(store.audit_entries(station))
                        if e.payload.get("spool_id") == item.key
                    ),
                    None,
                )
            if entry is None:
                self.spool.mark_attempt(item.key)
                entry = store.audit_append(
                    station, str(item.body["kind"]), item.body["payload"], signer=self.signer
                )
            head = AuditHead(station, entry.seq, entry.hash, entry.at)
            self.spool.mark_delivered(item.key, head=head)
        except SpoolError:
            raise
        except StoreUnavailable as exc:
            raise _Transient(_reason(exc)) from None
        except SchemaTooNew as exc:
            raise _Transient(str(exc), _REFUSES) from None
        except StoreError as exc:
            self._reject(item, str(exc))
        except Exception as exc:
            if _looks_like_connection_error(exc):
                raise _Transient(str(exc) or type(exc).__name__) from None
            _log.exception("the line database refused %s", item.key)
            self._reject(item, f"{type(exc).__name__}: {exc}")

    def _reject(self, item: SpoolItem, reason: str) -> None:
        _log.error(
            "the line database refused %s %s (%s); it stays in the station spool %s",
            item.kind,
            item.key,
            reason,
            self.spool.path,
        )
        self.spool.mark_rejected(item.key, reason)

    # -- the station's side ---------------------------------------------------------------

    async def drain(self, timeout: float) -> int:
        """Deliver what can be delivered now: returns when the spool is empty (0), when an
        attempt begun after this call failed, or after `timeout` seconds; returns how many
        entries are still waiting."""
        if self._closed:
            raise RuntimeError("the store sink is closed; drain before closing it")
        self._ensure_task()
        first = self._attempts_started + 1
        self._kick.set()
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            waiting = self.spool.counts().pending
            if waiting == 0 or self._attempts_failed_at >= first:
                return waiting
            remaining = deadline - loop.time()
            if remaining <= 0:
                return waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)

    def status(self) -> SinkStatus:
        counts = self.spool.counts()
        return SinkStatus(
            url=redact_url(self.url),
            spool=self.spool.path,
            connected=self._connected,
            waiting=counts.pending,
            waiting_records=counts.pending_records,
            rejected=counts.rejected,
            unspooled=tuple(self._unspooled),
            last_error=self._down_reason,
        )

    async def aclose(self) -> None:
        """Stop delivering (what is spooled stays spooled) and close everything."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.get_running_loop().run_in_executor(self._worker, self._drop_store)
        self.close()

    def close(self) -> None:
        """Stop delivering and close the spool and the store; waits up to 10 s for a
        database call in flight (the worker thread never keeps the process alive)."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.get_loop().call_soon_threadsafe(task.cancel)
        done = self._worker.submit(self._drop_store)
        with contextlib.suppress(Exception):
            done.result(timeout=10.0)
        self._worker.shutdown(wait=False)
        self.spool.close()


# "cannot connect to the line database URL (host h, port p, database d): REASON; check ..."
_WRAPPED = re.compile(r"\((?:host|database)[^()]*\): (?P<reason>.+?)(?:; (?:check|retry) .*)?$")


def _reason(exc: StoreUnavailable) -> str:
    """The driver's own reason ("Connection refused") without the store's framing."""
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason)
    text = str(exc)
    m = _WRAPPED.search(text)
    return m["reason"] if m else text


def _looks_like_connection_error(exc: BaseException) -> bool:
    """A driver's connection error that slipped past the store's own mapping."""
    if isinstance(exc, OSError | ConnectionError | TimeoutError):
        return True
    return any(c.__name__ in ("OperationalError", "InterfaceError") for c in type(exc).__mro__)
