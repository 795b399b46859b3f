"""A simulated DUT whose test firmware answers from a slot log: a unit seen on a line (its
field failure, say) replayed as a regression case.

A slot log (`logs/<panel>-slot<N>.jsonl`, ate.records.slot_log) keeps what the DUT printed,
each test-protocol request the host sent (`dut_tx`), each reply and notice the DUT sent
back (`dut_rx`), the unit's identity and every measurement. `load_slot_log` turns it into
a SlotScript; a ReplayBoard is a SimBoard that prints the recorded boot text and READY and
answers each request with the recorded reply to the same request (same command and
arguments, the n-th such request getting the n-th recorded answer, and any later one the
last again, as a retry of an edited reading would; request ids rewritten to the new
host's), with the log lines and notices that came with it. A request the log never saw
is answered `ERR EUNKNOWN`, so a step that asks something new is ERROR, never a pass.
The fixture controller twin answers the slot's current-sense and DMM reads with the
recorded `current.<mode>` and `rail.<rail>` measurements (the same way), exactly.

What is not replayed: corrupt lines (noise on the wire, not the unit), and exchanges the
log keeps only in part (provisioning payloads are left out, over-long lines are cut):
those are answered `ERR EREPLAY`, saying why.
May import ate.protocol, ate.config, ate.model and ate.sim only.
"""

from __future__ import annotations

import collections
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_args

from ate.config.errors import InputError
from ate.config.files import SLOT_LOG_MAX, FileRefused, read_file
from ate.config.sequence import Chip
from ate.model.units import UNITS, Quantity, convert
from ate.protocol.lines import (
    ErrorReply,
    Notice,
    Reply,
    Request,
    encode_error,
    line_text,
    parse_device_text,
    parse_host_line,
    seal_text,
)
from ate.sim.board import BoardSpec, CommandError, Faults, Phase, SimBoard, show

_ANY = ("*",)  # the arguments of a request whose payload the log left out

DeviceLine = Reply | ErrorReply | Notice
Key = tuple[str, tuple[str, ...]]


@dataclass
class Exchange:
    """One request as the log has it and what the DUT printed until the next request:
    log text (str) and protocol lines, in order."""

    request: Request
    output: list[str | DeviceLine] = field(default_factory=list)
    problem: str = ""  # why it cannot be replayed (answered ERR EREPLAY)


@dataclass(frozen=True)
class SlotScript:
    """A slot log as a replayed unit needs it."""

    path: Path
    mac: str
    chip: str
    firmware: str
    boot: tuple[str | DeviceLine, ...]  # what the DUT printed before the first request
    exchanges: tuple[Exchange, ...]
    # Fixture readings, in order: (name, value, unit) of current.<mode> and rail.<rail>.
    readings: tuple[tuple[str, float, str], ...]


def _key(request: Request) -> Key:
    kwargs = tuple(f"{k}={v}" for k, v in request.kwargs.items())
    return request.command, request.args + kwargs


def load_slot_log(path: Path, what: str = "") -> SlotScript:
    """Read `path` as a slot log; InputError naming the file (and line) otherwise.

    Only the log's first slot run is used (a slot log holds one; an appended second is
    ignored). `what` prefixes each message (the fixture key that named the file)."""

    def bad(message: str, line: int | None = None) -> InputError:
        return InputError(path, f"{what}{message}", line)

    try:
        raw = read_file(path, SLOT_LOG_MAX)
    except FileRefused as exc:
        raise bad(f"slot log {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad("not UTF-8 text, so not a slot log", raw[: exc.start].count(b"\n") + 1) from None
    mac = chip = firmware = ""
    boot: list[str | DeviceLine] = []
    exchanges: list[Exchange] = []
    readings: list[tuple[str, float, str]] = []
    protocol_seen = False
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise bad("not a JSON line, so not a slot log", n) from None
        if not isinstance(record, dict) or not isinstance(record.get("event"), str):
            raise bad("a JSON line without an 'event', so not an ate slot log", n)
        slot = record.get("slot")
        if not isinstance(slot, int) or isinstance(slot, bool) or slot < 1:
            raise bad(
                "a record without its slot: this is a panel log or another file; "
                "replay a logs/<panel>-slot<N>.jsonl",
                n,
            )
        event = record["event"]
        out = exchanges[-1].output if exchanges else boot
        if event == "slot_end":
            break
        if event == "unit":
            mac = _text(record, "mac") or mac
            chip = _text(record, "chip") or chip
            firmware = _text(record, "firmware") or firmware
        elif event == "dut":
            logged = _text(record, "line")
            # The host's own renderings of notices and corrupt lines: the dut_rx
            # records are the lines themselves.
            if not logged.startswith(("@* ", "[ate: corrupt line (")):
                out.append(logged)
        elif event == "dut_rx":
            protocol_seen = True
            if record.get("corrupt"):
                continue  # noise on the wire, not the unit's answer
            if problem := _partial(record):  # the log does not have the whole line
                if exchanges:
                    exchanges[-1].problem = exchanges[-1].problem or problem
                continue
            got = parse_device_text(_text(record, "line"))
            if not isinstance(got, Reply | ErrorReply | Notice):
                raise bad(f"dut_rx line is not a reply or notice ({_why(got)})", n)
            out.append(got)
        elif event == "dut_tx":
            protocol_seen = True
            request = parse_host_line(_text(record, "line"), require_checksum=False)
            if not isinstance(request, Request):
                raise bad(f"dut_tx line is not a request ({_why(request)})", n)
            if _partial(record):  # its arguments are not all in the log
                request = Request(request.id, request.command, _ANY)
            last = exchanges[-1].request if exchanges else None
            if record.get("resend") or last == request:
                continue  # the same request again: one exchange
            exchanges.append(Exchange(request, problem=_partial(record)))
        elif event == "measurement":
            name, value, unit = record.get("name"), record.get("value"), record.get("unit")
            if (
                isinstance(name, str)
                and name.startswith(("current.", "rail."))
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and unit in UNITS
            ):
                readings.append((name, float(value), str(unit)))
    if not protocol_seen:
        raise bad(
            "has no test-protocol exchange (dut_tx/dut_rx records): the unit never answered, "
            "or the log was written by an ate that did not keep it; it cannot be replayed"
        )
    for item in boot:
        if isinstance(item, Notice) and item.name == "READY":
            mac = mac or item.fields.get("mac", "")
            chip = chip or item.fields.get("chip", "")
            firmware = firmware or item.fields.get("fw", "")
    if not mac:
        raise bad("names no unit (no 'unit' record with a MAC, no READY before a request)")
    if chip not in get_args(Chip):
        raise bad(f"names chip {chip!r}; a replayed unit is one of {', '.join(get_args(Chip))}")
    return SlotScript(path, mac, chip, firmware, tuple(boot), tuple(exchanges), tuple(readings))


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    return value if isinstance(value, str) else ""


def _why(event: object) -> str:
    reason = getattr(event, "reason", "")
    return str(reason) if reason else type(event).__name__


def _partial(record: dict[str, Any]) -> str:
    """Why a logged line does not say everything the DUT said, or ''."""
    if record.get("left_out"):
        return f"the log left out the payload of this {_text(record, 'command')} exchange"
    cut = record.get("cut")
    if cut:
        return f"the log cut this line at {len(_text(record, 'line'))} of {cut} characters"
    return ""


T = TypeVar("T")


def _next(queue: collections.deque[T]) -> T:
    """The next recorded answer; past the last, the last again."""
    return queue.popleft() if len(queue) > 1 else queue[0]


def _render(item: str | DeviceLine, ids: dict[int, int]) -> bytes:
    if isinstance(item, str):
        return item.encode("utf-8") + b"\r\n"
    if isinstance(item, Reply):
        item = Reply(ids.get(item.id, item.id), item.fields)
    elif isinstance(item, ErrorReply):
        item = ErrorReply(ids.get(item.id, item.id), item.code, item.message)
    return seal_text(line_text(item))


def _exact_inverse(value: float, unit: str, base: str) -> float:
    """The reading in `base` that the host converts back to exactly `value` in `unit`."""
    guess = convert(value, unit, base)
    candidate = guess
    for _ in range(8):  # float rounding: a few ulps either way at most
        back = convert(candidate, base, unit)
        if back == value:
            return candidate
        candidate = math.nextafter(candidate, math.inf if back < value else -math.inf)
    return guess


class ReplayBoard(SimBoard):
    """A unit that answers from a slot log (module docstring). Its MAC, chip and test
    firmware are the logged unit's; the rest of `spec` (the fixture's board file) only
    fills what a log does not say. The script starts over at every power-on."""

    def __init__(self, spec: BoardSpec, script: SlotScript, slot: int = 1) -> None:
        spec = spec.model_copy(
            update={
                "chip": script.chip,
                "firmware": script.firmware or spec.firmware,
                "boot_ms": 0.0,
                "boot_noise": True,
                "latency_ms": {"default": 0.0},
                "faults": Faults(),
            }
        )
        super().__init__(spec, 0, slot)
        self.script = script
        self.mac = script.mac
        self.replayed = 0  # requests answered from the log (tests)
        self._start_script()

    def _start_script(self) -> None:
        self._queues: dict[Key, collections.deque[Exchange]] = {}
        for exchange in self.script.exchanges:
            self._queues.setdefault(_key(exchange.request), collections.deque()).append(exchange)
        self._readings: dict[str, collections.deque[tuple[float, str]]] = {}
        for name, value, unit in self.script.readings:
            self._readings.setdefault(name, collections.deque()).append((value, unit))
        self._ids: dict[int, int] = {}  # the log's request ids -> the new host's
        self._asked_mode = "idle"

    # ---- life cycle ------------------------------------------------------------------

    def power_on(self) -> None:
        if self.phase is Phase.OFF:
            self._start_script()
        super().power_on()

    def boot_text(self) -> list[tuple[float, bytes]]:
        last_ready = self._last_ready()
        text = b"".join(
            _render(item, {}) for i, item in enumerate(self.script.boot) if i != last_ready
        )
        return [(0.0, text)] if text else []

    def ready_notice(self) -> bytes:
        last_ready = self._last_ready()
        return b"" if last_ready < 0 else _render(self.script.boot[last_ready], {})

    def _last_ready(self) -> int:
        for i in range(len(self.script.boot) - 1, -1, -1):
            item = self.script.boot[i]
            if isinstance(item, Notice) and item.name == "READY":
                return i
        return -1

    # ---- requests --------------------------------------------------------------------

    def handle(self, request: Request) -> bytes:
        if not self.listening:
            return b""
        if self.last is not None and self.last[0] == request:
            return self.last[1]  # a resend: answered again, as the firmware does
        if request.command == "power.mode" and request.args:
            self._asked_mode = request.args[0]
        exchange = self._take(request)
        if exchange is None:
            asked = " ".join((request.command, *_key(request)[1]))
            out = encode_error(
                request.id,
                "EUNKNOWN",
                f"replay: {self.script.path.name} never saw {show(asked, 60)}",
            )
        elif exchange.problem:
            out = encode_error(request.id, "EREPLAY", exchange.problem)
        else:
            self._ids[exchange.request.id] = request.id
            out = b"".join(_render(item, self._ids) for item in exchange.output)
            self.replayed += 1
        self.last = (request, out)
        return out

    def _take(self, request: Request) -> Exchange | None:
        for key in (_key(request), (request.command, _ANY)):
            queue = self._queues.get(key)
            if queue:
                return _next(queue)
        return None

    # ---- what the fixture measures -----------------------------------------------------

    @property
    def rails(self) -> tuple[str, ...]:
        return tuple(sorted({n[5:] for n, _, _ in self.script.readings if n.startswith("rail.")}))

    def recorded(self, name: str, quantity: Quantity) -> float:
        """The next recorded reading `name` (current.<mode>, rail.<rail>) in the
        quantity's wire unit (mA, V), such that the host gets the logged value exactly;
        CommandError when the log has none."""
        queue = self._readings.get(name)
        if not queue:
            raise CommandError(
                "EUNKNOWN", f"replay: {self.script.path.name} never saw {show(name, 40)}"
            )
        value, unit = _next(queue)
        base = "mA" if quantity is Quantity.CURRENT else "V"
        if UNITS[unit][0] is not quantity:
            raise CommandError("EREPLAY", f"the log's {show(name, 40)} is in {unit}")
        return _exact_inverse(value, unit, base)

    def recorded_current(self) -> float:
        """Supply current (mA) for the power mode the host last asked for."""
        return self.recorded(f"current.{self._asked_mode}", Quantity.CURRENT)
