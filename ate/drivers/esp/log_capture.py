"""Per-thread capture of esptool/espefuse output: one log and one progress feed per slot.

esptool 5.6 prints everything through one process-wide logger (`esptool.logger.log`, a
proxy that reads `esp_pylib.logger.EspLog.instance`). `LogRouter` is installed as that
instance and hands each call to the `SlotCapture` registered by the calling thread; a
thread with no capture goes to the logger that was there before (a CLI run of esptool in
the same process keeps its console output). Text that bypasses the logger and writes
`sys.stdout`/`sys.stderr` directly (5.6 does this only in `espefuse dump`) is routed the
same way by a thread-aware stream proxy, present only while a capture is registered.

The router is necessarily process-wide because esptool's logger is. Imports esptool's
logger and rich (for markup), nothing from ate.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO, cast

import esptool.logger  # installs EsptoolLogger as EspLog.instance if nobody has yet
from esp_pylib.logger import EspLog, EspLogBase, Verbosity
from rich.errors import MarkupError
from rich.text import Text


@dataclass(frozen=True, slots=True)
class FlashProgress:
    """How far one slot is through one stage; bytes of the image, not of the wire."""

    slot_label: str
    stage: str  # "write", "read", "verify", "erase"
    done_bytes: int
    total_bytes: int
    offset: int | None = None


LineSink = Callable[[str], None]
ProgressSink = Callable[[FlashProgress], None]

_ADDRESS = re.compile(r"0x([0-9a-fA-F]+)")
_STAGE_WORDS = (("writ", "write"), ("read", "read"), ("eras", "erase"), ("verif", "verify"))


class StageState:
    """The stage a slot is in, so esptool's progress bars map onto image bytes."""

    __slots__ = ("base", "last_done", "name", "size", "wire_total")

    def __init__(self, name: str, base: int, size: int) -> None:
        self.name, self.base, self.size = name, base, size
        # esptool's bar total: bytes it sends (compressed size when compressing).
        self.wire_total: int | None = None
        self.last_done = -1


class SlotCapture:
    """Where one slot's esptool output goes. Register it from the slot's worker thread."""

    def __init__(
        self,
        label: str,
        line: LineSink,
        progress: ProgressSink | None = None,
        *,
        verbose: bool = False,
    ) -> None:
        self.label = label
        self._line = line
        self._progress = progress
        self.verbose = verbose
        self._partial = ""
        self._stage: StageState | None = None

    # -- text -------------------------------------------------------------------------

    def write(self, text: str) -> None:
        """Accumulate text; every completed line goes to the sink."""
        self._partial += text
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            self._emit(line.rstrip("\r"))

    def flush(self) -> None:
        if self._partial:
            line, self._partial = self._partial, ""
            self._emit(line.rstrip("\r"))

    def _emit(self, line: str) -> None:
        if not line.strip():
            return  # esptool's spacing lines say nothing in a slot log
        # A broken log sink must not abort a flash half-way through; the line is lost,
        # the DUT is not.
        with contextlib.suppress(Exception):
            self._line(line)

    # -- progress ---------------------------------------------------------------------

    @contextlib.contextmanager
    def stage(self, name: str, base: int, size: int) -> Iterator[StageState]:
        """Map esptool's progress bars inside this block onto [base, base + size)."""
        state = StageState(name, base, size)
        previous, self._stage = self._stage, state
        try:
            self.report(name, 0, size, base)
            yield state
            self.report(name, size, size, base)
        finally:
            self._stage = previous

    def report(self, stage: str, done: int, total: int, offset: int | None = None) -> None:
        """Send one FlashProgress, dropping updates of less than 1 % (ROM blocks are
        1 KiB: a MiB would otherwise be a thousand callbacks)."""
        if self._progress is None:
            return
        state = self._stage
        if state is not None and state.name == stage:
            step = max(total // 100, 1)
            if done != total and state.last_done >= 0 and done - state.last_done < step:
                return
            if done == state.last_done:
                return
            state.last_done = done
        with contextlib.suppress(Exception):  # as for a broken line sink
            self._progress(FlashProgress(self.label, stage, done, total, offset))

    def progress_bar(self, cur: int, total: int, description: str) -> None:
        """esptool's bar: `cur` of `total` wire bytes, description 'Writing at 0x...'."""
        state = self._stage
        match = _ADDRESS.search(description)
        if state is None:
            stage = next((s for w, s in _STAGE_WORDS if w in description.lower()), "busy")
            self.report(stage, cur, total, None)
            return
        state.wire_total = total
        if cur >= total:
            done = state.size
        elif match is not None:
            # The address esptool prints is where the next block lands (uncompressed),
            # so it measures image bytes even when the wire carries deflated data.
            done = min(max(int(match.group(1), 16) - state.base, 0), state.size)
        else:
            done = state.size * cur // total if total else 0
        self.report(state.name, done, state.size, state.base)


def _plain(arg: object, markup: bool) -> str:
    if isinstance(arg, str):
        if not markup:
            return arg
        try:
            return Text.from_markup(arg).plain
        except MarkupError:
            # esptool text with a stray '[/...]' (the 5.6 --trace crash); keep it raw.
            return arg
    if isinstance(arg, Text):
        return arg.plain
    if isinstance(arg, list | dict | tuple | set):
        return repr(arg)
    return str(arg)


def _render(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    markup = kwargs.get("markup", True) is not False
    sep = kwargs.get("sep", " ")
    end = kwargs.get("end", "\n")
    return str(sep).join(_plain(a, markup) for a in args) + str(end)


class _ThreadStream:
    """sys.stdout/sys.stderr stand-in: a registered thread's writes go to its capture."""

    def __init__(self, inner: TextIO, router: LogRouter) -> None:
        self._inner = inner
        self._router = router

    def write(self, text: str) -> int:
        slot = self._router.slot()
        if slot is None:
            return self._inner.write(text)
        slot.write(text)
        return len(text)

    def flush(self) -> None:
        if self._router.slot() is None:
            self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class LogRouter(EspLogBase):
    """esptool's logger for the whole process, dispatching on the calling thread."""

    def __init__(self, fallback: EspLogBase) -> None:
        self.fallback = fallback
        self._slots: dict[int, SlotCapture] = {}
        self._lock = threading.Lock()

    # -- registry ---------------------------------------------------------------------

    def slot(self) -> SlotCapture | None:
        return self._slots.get(threading.get_ident())

    def register(self, capture: SlotCapture) -> None:
        with self._lock:
            ident = threading.get_ident()
            other = self._slots.get(ident)
            if other is not None and other is not capture:
                raise RuntimeError(f"thread already captures slot {other.label!r}")
            self._slots[ident] = capture
            _install_streams(self)

    def unregister(self) -> None:
        with self._lock:
            capture = self._slots.pop(threading.get_ident(), None)
            if not self._slots:
                _remove_streams()
        if capture is not None:
            capture.flush()

    # -- EspLogBase -------------------------------------------------------------------

    def print(self, *args: Any, **kwargs: Any) -> None:
        slot = self.slot()
        file = kwargs.get("file")
        if slot is None:
            self.fallback.print(*args, **kwargs)
        elif file is None or _is_std_stream(file):
            slot.write(_render(args, kwargs))
        else:
            # An explicit file (e.g. `summary --file`): the caller wants it there.
            file.write(_render(args, kwargs))

    def _tagged(self, tag: str, args: tuple[Any, ...]) -> bool:
        slot = self.slot()
        if slot is None:
            return False
        # A note can arrive in the middle of "Connecting....": end that line first so
        # both stay readable and in order.
        slot.flush()
        slot.write(_render((tag, *args), {}))
        return True

    def err(self, *args: Any, suggestion: str | None = None) -> None:
        if not self._tagged("ERROR:", args):
            self.fallback.err(*args, suggestion=suggestion)

    def warn(self, *args: Any, suggestion: str | None = None) -> None:
        if not self._tagged("WARNING:", args):
            self.fallback.warn(*args, suggestion=suggestion)

    def note(self, *args: Any) -> None:
        if not self._tagged("NOTE:", args):
            self.fallback.note(*args)

    def hint(self, *args: Any) -> None:
        if not self._tagged("HINT:", args):
            self.fallback.hint(*args)

    def debug(self, *args: Any) -> None:
        slot = self.slot()
        if slot is None:
            self.fallback.debug(*args)
        elif slot.verbose:
            slot.write(_render(args, {}))

    # esptool 5.6 still calls these backward-compatible names (cmds.py, loader.py).
    def warning(self, message: str, suggestion: str | None = None) -> None:
        self.warn(message, suggestion=suggestion)

    def error(self, message: str, suggestion: str | None = None) -> None:
        self.err(message, suggestion=suggestion)

    def stage(self, finish: bool = False) -> None:
        # Stages collapse console output; a slot log keeps every line.
        if self.slot() is None:
            self.fallback.stage(finish)

    def set_verbosity(self, mode: int | str) -> None:
        slot = self.slot()
        if slot is None:
            self.fallback.set_verbosity(mode)
        else:
            slot.verbose = mode in (Verbosity.VERBOSE, "verbose", "VERBOSE")

    def set_info_stream(self, stream: Any) -> None:
        self.fallback.set_info_stream(stream)

    def progress_bar(
        self,
        cur_iter: int,
        total_iters: int,
        prefix: str = "",
        suffix: str = "",
        bar_length: int = 30,
    ) -> None:
        slot = self.slot()
        if slot is None:
            self.fallback.progress_bar(cur_iter, total_iters, prefix, suffix, bar_length)
        else:
            slot.progress_bar(cur_iter, total_iters, prefix)

    def counter_line(self, prefix: str, suffix: str, *, final: bool = False) -> None:
        slot = self.slot()
        if slot is None:
            self.fallback.counter_line(prefix, suffix, final=final)
        elif final:
            slot.write(f"{prefix}{suffix}\n")

    def set_logger(self, new_logger: EspLogBase) -> None:
        """`log.set_logger(x)` while the router is in place: x gets the output of every
        thread without a capture; slots keep theirs."""
        if not isinstance(new_logger, EspLogBase):
            raise TypeError(
                "ate routes esptool output per slot; install an esp_pylib EspLogBase, "
                f"not {type(new_logger).__name__}"
            )
        self.fallback = new_logger


def _is_std_stream(file: object) -> bool:
    return isinstance(file, _ThreadStream) or any(
        file is s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    )


def _install_streams(router: LogRouter) -> None:
    if not isinstance(sys.stdout, _ThreadStream):
        sys.stdout = cast(TextIO, _ThreadStream(sys.stdout, router))
    if not isinstance(sys.stderr, _ThreadStream):
        sys.stderr = cast(TextIO, _ThreadStream(sys.stderr, router))


def _remove_streams() -> None:
    # Only unwrap our own proxy: if someone replaced sys.stdout since, theirs stays.
    out, err = cast(object, sys.stdout), cast(object, sys.stderr)
    if isinstance(out, _ThreadStream):
        sys.stdout = out._inner
    if isinstance(err, _ThreadStream):
        sys.stderr = err._inner


_install_lock = threading.Lock()
_router: LogRouter | None = None


def router() -> LogRouter:
    """The process's router, installed over esptool's logger on first use. If something
    replaced esptool's logger since, that logger becomes the fallback and the router goes
    back in place, keeping every slot's registration."""
    global _router
    with _install_lock:
        current = EspLog.instance
        if _router is None:
            _router = LogRouter(current if current is not None else esptool.logger.EsptoolLogger())
        elif current is not None and current is not _router:
            _router.fallback = current
        if EspLog.instance is not _router:
            EspLog.set_logger(_router)
        return _router


def register(capture: SlotCapture) -> None:
    """Send everything esptool prints from the calling thread to `capture`."""
    router().register(capture)


def unregister() -> None:
    """Stop capturing the calling thread; a partial last line is flushed."""
    router().unregister()


@contextlib.contextmanager
def captured(capture: SlotCapture) -> Iterator[SlotCapture]:
    """`with captured(SlotCapture(...)):` around esptool calls in a plain thread."""
    register(capture)
    try:
        yield capture
    finally:
        unregister()
