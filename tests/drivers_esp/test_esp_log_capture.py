"""The per-thread router for esptool's process-wide logger, with plain threads."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from esp_pylib.logger import EspLog, EspLogBase
from esptool.logger import log

from ate.drivers.esp import log_capture
from ate.drivers.esp.log_capture import FlashProgress, SlotCapture


def in_thread(fn: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    assert not t.is_alive()
    if errors:
        raise errors[0]


class Recorder(EspLogBase):
    """A fallback logger standing in for esptool's console logger."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def print(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("print", args))

    def err(self, *args: Any, suggestion: str | None = None) -> None:
        self.calls.append(("err", args))

    def warn(self, *args: Any, suggestion: str | None = None) -> None:
        self.calls.append(("warn", args))

    def note(self, *args: Any) -> None:
        self.calls.append(("note", args))

    def hint(self, *args: Any) -> None:
        self.calls.append(("hint", args))

    def debug(self, *args: Any) -> None:
        self.calls.append(("debug", args))

    def set_verbosity(self, mode: int | str) -> None:
        pass

    def progress_bar(
        self,
        cur_iter: int,
        total_iters: int,
        prefix: str = "",
        suffix: str = "",
        bar_length: int = 30,
    ) -> None:
        self.calls.append(("bar", (cur_iter, total_iters)))


@pytest.fixture
def recorder() -> Any:
    router = log_capture.router()
    saved = router.fallback
    rec = Recorder()
    log.set_logger(rec)  # through esptool's proxy, as a library user would
    try:
        yield rec
    finally:
        router.fallback = saved


def test_two_threads_each_get_only_their_own_lines(recorder: Recorder) -> None:
    sinks: dict[str, list[str]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def slot(name: str) -> Callable[[], None]:
        def run() -> None:
            with log_capture.captured(SlotCapture(name, sinks[name].append)):
                for i in range(50):
                    barrier.wait(5)  # interleave the two threads' calls
                    log.print(f"{name} line {i}")
                log.note(f"{name} [bold]noted[/bold]")
                log.warning(f"{name} warned")
                log.err(f"{name} failed")

        return run

    threads = [threading.Thread(target=slot(n)) for n in sinks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for name, other in (("a", "b"), ("b", "a")):
        lines = sinks[name]
        assert lines[:50] == [f"{name} line {i}" for i in range(50)]
        assert lines[50:] == [
            f"NOTE: {name} noted",
            f"WARNING: {name} warned",
            f"ERROR: {name} failed",
        ]
        assert not any(line.startswith(other) or f" {other} " in line for line in lines)
    assert recorder.calls == []  # nothing fell through to the console logger


def test_thread_without_capture_goes_to_the_previous_logger(recorder: Recorder) -> None:
    captured: list[str] = []
    log_capture.register(SlotCapture("main?", captured.append))  # this thread...
    log_capture.unregister()  # ...then not any more
    in_thread(lambda: log.print("from a plain thread"))
    log.warn("from the test thread")
    assert ("print", ("from a plain thread",)) in recorder.calls
    assert ("warn", ("from the test thread",)) in recorder.calls
    assert captured == []


def test_partial_prints_join_into_one_line_and_markup_is_plain_text() -> None:
    lines: list[str] = []

    def run() -> None:
        with log_capture.captured(SlotCapture("s", lines.append)):
            log.print("Connecting...", end="")
            log.print(".", end="")
            log.print("")
            log.print("Connecting...", end="")
            log.note("a note arrives mid-line")
            log.print("")  # esptool ends its dots line; nothing is left to end
            log.print("Serial port socket://x \\[escaped]:", "[dim]two[/dim]", sep=" | ")
            log.print("raw [/not markup]", markup=False)
            log.print("[/broken markup")  # esptool 5.6 --trace crash text stays raw
            log.print("unterminated", end="")  # flushed when the capture ends

    in_thread(run)
    assert lines == [
        "Connecting....",
        "Connecting...",
        "NOTE: a note arrives mid-line",
        "Serial port socket://x [escaped]: | two",
        "raw [/not markup]",
        "[/broken markup",
        "unterminated",
    ]


def test_direct_stdout_writes_from_a_captured_thread_go_to_its_sink(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines: list[str] = []

    def run() -> None:
        with log_capture.captured(SlotCapture("s", lines.append)):
            print("printed by a library")
            sys.stderr.write("to stderr\n")
            in_thread(lambda: print("another thread, not captured"))

    in_thread(run)
    out, err = capsys.readouterr()
    assert lines == ["printed by a library", "to stderr"]
    assert out == "another thread, not captured\n"
    assert err == ""
    assert not isinstance(sys.stdout, log_capture._ThreadStream)  # removed with the last


def test_progress_maps_esptool_bars_onto_image_bytes() -> None:
    events: list[FlashProgress] = []
    # Deflated blocks: 0x800 wire bytes carry 0x8000 image bytes, unevenly (the first
    # 4 KiB compress badly), so only the address esptool prints says how far it got.
    wire = [0x400, 0x100, 0x100, 0x80, 0x80, 0x80, 0x40, 0x40]

    def run() -> None:
        cap = SlotCapture("slot2", lambda _: None, events.append)
        with (
            log_capture.captured(cap),
            cap.stage("write", 0x10000, 0x8000),
            log.progress(total=sum(wire), unit="B") as task,
        ):
            for i, n in enumerate(wire, start=1):
                task.update(n, description=f"Writing at {0x10000 + i * 0x1000:#010x}")

    in_thread(run)
    assert [e.done_bytes for e in events] == [0] + [i * 0x1000 for i in range(1, 9)]
    assert events[-1] == FlashProgress("slot2", "write", 0x8000, 0x8000, 0x10000)


def test_progress_is_thinned_to_one_percent_steps() -> None:
    events: list[FlashProgress] = []

    def run() -> None:
        cap = SlotCapture("s", lambda _: None, events.append)
        with (
            log_capture.captured(cap),
            cap.stage("read", 0, 1 << 20),
            log.progress(total=1 << 20, unit="B") as task,
        ):
            for i in range(1, 1025):  # ROM-sized 1 KiB blocks
                task.update(1024, description=f"Reading from {i * 1024:#010x}")

    in_thread(run)
    done = [e.done_bytes for e in events]
    steps = [b - a for a, b in itertools.pairwise(done)]
    assert len(events) <= 102  # a thousand bars became at most one per percent
    assert all(step >= (1 << 20) // 100 for step in steps[:-1])
    assert done[0] == 0 and done[-1] == 1 << 20


def test_a_broken_sink_does_not_break_esptool() -> None:
    def bad(_: object) -> None:
        raise RuntimeError("sink is broken")

    def run() -> None:
        cap = SlotCapture("s", bad, bad)
        with log_capture.captured(cap), cap.stage("erase", 0, 4096):
            log.print("still fine")

    in_thread(run)  # would raise if the sink's error escaped


def test_router_goes_back_in_place_if_something_replaced_it(recorder: Recorder) -> None:
    router = log_capture.router()
    other = Recorder()
    EspLog.set_logger(other)  # e.g. another tool installing its own logger
    lines: list[str] = []

    def run() -> None:
        with log_capture.captured(SlotCapture("s", lines.append)):
            log.print("captured again")
        log.print("to the new console logger")

    in_thread(run)
    assert EspLog.instance is router
    assert lines == ["captured again"]
    assert other.calls == [("print", ("to the new console logger",))]
