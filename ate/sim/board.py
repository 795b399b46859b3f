"""The simulated test board: its YAML model (BoardSpec, Faults) and the firmware's logic.

Pure logic, no I/O: the clock is injected, time passes in the server, the dev_key
partition is a `KeyStore` the server may replace with the unit's flash; under the
line-time model (`timing`) crypto and RF requests take their modelled time too; rf.tx
always takes its frames' air time, and its frames go into the fixture's RF space
(ate.sim.rf_space) from `begin`. May import ate.protocol, ate.config, ate.model,
ate.sim.devkey, ate.sim.hostile, ate.sim.rf_space and ate.sim.timing only.
"""

from __future__ import annotations

import contextlib
import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal, Protocol

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field, field_validator, model_validator

from ate import chips
from ate.config.common import Strict
from ate.config.sequence import Chip, PowerMode
from ate.model.radio import TX_INTERVAL_US
from ate.protocol.lines import (
    PROTOCOL_VERSION,
    Corrupt,
    Request,
    encode_error,
    encode_notice,
    encode_reply,
)
from ate.sim import devkey
from ate.sim.hostile import Hostile, reboots_now, rf_fields, rx_fields, wire_bytes
from ate.sim.rf_space import Radio, RfSpace, frame_interval_s
from ate.sim.timing import LineTimes

Level = Literal[0, 1]
Gpio = Annotated[int, Field(ge=0, le=63, description="GPIO number")]
Byte = Annotated[int, Field(ge=0, le=0xFF)]
I2cAddress = Annotated[int, Field(ge=0, le=0x7F, description="7-bit I2C address")]

POWER_MODES: tuple[PowerMode, ...] = ("idle", "active", "light_sleep", "deep_sleep")
LATENCY_FAMILIES = (
    "default",
    "ping",
    "info",
    "gpio",
    "i2c",
    "spi",
    "adc",
    "power",
    "rf",
    "sys",
    "prov",
)
I2C_BUSES = 2
SPI_BUSES = 4
ADC_CHANNELS = 20
MAX_XFER = 64  # bytes per i2c/spi transfer the test firmware buffers
TX_POWER_MAX_DBM = 20  # rf.tx power= ceiling, and its default (PROTOCOL.md)
RF_INTERVAL_US = {"wifi": 1000, "ble": 20000}  # rf.tx's default frame interval
_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


@dataclass(frozen=True, slots=True)
class _TxPlan:
    """An rf.tx request's frames, as parsed."""

    mode: Literal["wifi", "ble"]
    channel: int
    count: int
    interval_us: int
    power_dbm: int

    @property
    def duration_s(self) -> float:
        return self.count * frame_interval_s(self.mode, self.interval_us)


@dataclass(frozen=True, slots=True)
class _Listen:
    """An rf.rx.start in force: what it counts, since when."""

    mode: Literal["wifi", "ble"]
    channel: int
    sender: str | None
    t0: float


def _rf_mode(text: str) -> Literal["wifi", "ble"]:
    if text == "wifi":
        return "wifi"
    if text == "ble":
        return "ble"
    raise CommandError("EARG", f"mode {show(text)}: allowed are wifi, ble")


# ---- the YAML model -------------------------------------------------------------------


class Spread(Strict):
    """A per-unit value: each simulated unit draws it once, uniformly in nominal ± spread."""

    nominal: float
    spread: float = Field(0.0, ge=0, description="half-width of the per-unit draw, same unit")
    description: str = ""


class GpioSpec(Strict):
    """How the fixture's test harness wires the board's pins."""

    count: int = Field(49, ge=1, le=64, description="pins 0..count-1 exist (EARG beyond)")
    reserved: tuple[Gpio, ...] = Field(
        (), description="pins the module uses internally (flash, PSRAM): EHW when touched"
    )
    loopbacks: tuple[tuple[Gpio, Gpio], ...] = Field(
        (), description="pairs of pins wired to each other by the harness"
    )
    levels: dict[Gpio, Level] = Field(
        default_factory=dict,
        description="external pull on a pin (e.g. boot button pulled up): what it reads "
        "when nothing drives it and it has no internal pull",
    )


class I2cDeviceSpec(Strict):
    """A device on an I2C bus with byte registers (reads auto-increment the register)."""

    bus: int = Field(0, ge=0, lt=I2C_BUSES)
    address: I2cAddress
    name: str = ""
    registers: dict[Byte, Byte] = Field(
        default_factory=dict, description="power-on register values; others read 0x00"
    )


class SpiDeviceSpec(Strict):
    """A SPI NOR flash (or anything answering RDID 0x9F) on a bus."""

    bus: int = Field(1, ge=0, lt=SPI_BUSES)
    jedec: int = Field(ge=0, le=0xFFFFFF, description="manufacturer, type, capacity")
    name: str = ""
    status: Byte = Field(0, description="what RDSR (0x05) returns")


class AdcChannelSpec(Strict):
    mv: float = Field(ge=0, le=3300, description="nominal voltage on the channel, mV")
    spread_mv: float = Field(0.0, ge=0, description="per-unit ± spread, mV")
    noise_mv: float = Field(2.0, ge=0, description="per-sample noise (sigma), mV")


class RailSpec(Strict):
    v: float = Field(ge=0, description="nominal rail voltage, V")
    spread: float = Field(0.0, ge=0, description="per-unit ± spread, V")


class CurrentSpec(Strict):
    """Supply current per power mode, in mA (deep sleep too: 0.010 = 10 uA)."""

    idle: Spread
    active: Spread
    light_sleep: Spread
    deep_sleep: Spread

    @model_validator(mode="after")
    def _positive(self) -> CurrentSpec:
        for mode in POWER_MODES:
            s: Spread = getattr(self, mode)
            if s.nominal - s.spread < 0:
                raise ValueError(f"{mode}: nominal - spread must not be negative")
        return self


class RfSpec(Strict):
    """The unit's radio: what rf.golden reports (the DUT-side plug-in), and what it puts
    on and takes from the simulated shield box's air (rf.tx, rf.rx.*; ate/sim/rf_space.py)."""

    rssi_dbm: Spread = Spread(nominal=-45.0, spread=3.0)
    freq_offset_ppm: Spread = Spread(
        nominal=0.0, spread=5.0, description="the 40 MHz crystal's offset: carrier and timer"
    )
    per_pct: Spread = Spread(nominal=0.5, spread=0.5)
    packet_ms: float = Field(0.0, ge=0, description="extra firmware time per packet sent")
    tx_power_dbm: Spread = Spread(
        nominal=20.0, spread=1.0, description="radiated at rf.tx power=20 (the maximum)"
    )
    sensitivity_dbm: Spread = Spread(nominal=-95.0, spread=1.5)


class StuckPin(Strict):
    pin: Gpio
    level: Level


class OverCurrent(Strict):
    mode: PowerMode
    factor: float = Field(gt=0, description="current in `mode` is multiplied by this")


class Garbage(Strict):
    probability: float = Field(ge=0, le=1, description="chance per reply line sent")
    max_bytes: int = Field(16, ge=1, le=512, description="burst length is 1..max_bytes")
    mid_line: bool = Field(
        False,
        description="false: the burst is its own line before the reply (a log line to the "
        "host). true: no newline after it; it is glued in front of the reply (rule 2: the "
        "reply still parses) or inserted inside it (the reply is corrupt: the host resends)",
    )


class DropReply(Strict):
    probability: float = Field(ge=0, le=1, description="chance per reply line to lose it")


class Faults(Strict):
    """Manufacturing defects and wire trouble; all off by default."""

    stuck_gpio: tuple[StuckPin, ...] = Field(
        (), description="pin reads a fixed level whatever is driven (only that pin's reading)"
    )
    shorted_gpio: tuple[tuple[Gpio, Gpio], ...] = Field(
        (), description="two pins shorted together: both read the wired-AND of what is driven"
    )
    missing_i2c: tuple[I2cAddress, ...] = Field(
        (), description="devices at these addresses (any bus) NACK everything"
    )
    jedec_id: int | None = Field(
        None, ge=0, le=0xFFFFFF, description="every SPI device reports this id instead"
    )
    over_current: OverCurrent | None = Field(
        None, description="supply current in one power mode multiplied by `factor`"
    )
    hang_after: int | None = Field(
        None,
        ge=0,
        description="after this many requests since boot the firmware never answers again "
        "until reset or power cycle",
    )
    port_vanishes_after: int | None = Field(
        None,
        ge=0,
        description="after this many requests the slot's USB-serial adapter is unplugged: "
        "the port goes away for good, mid-exchange (the next request gets no reply)",
    )
    garbage: Garbage | None = Field(None, description="random bytes injected before replies")
    drop_reply: DropReply | None = Field(None, description="reply lines silently lost")
    rail_v: dict[str, float] = Field(
        default_factory=dict, description="rail pinned to a wrong voltage while powered, V"
    )
    no_flash: bool = Field(
        False,
        description="the module's SPI flash is not attached: the ROM loader reads FFFFFF "
        "as its id and ones everywhere, and refuses every write and erase",
    )
    no_ready: bool = Field(False, description="boots (prints its noise) but never READY, mute")
    prov_key_type: Literal["p256", "p384"] = Field(
        "p256",
        description="p384: prov.csr carries (and is signed by) a P-384 key, not the device key",
    )
    prov_subject_tamper: bool = Field(
        False, description="prov.csr puts an extra X at the end of the CN it was asked for"
    )
    prov_bad_signature: bool = Field(
        False, description="prov.sign signs with another key than the one prov.key reports"
    )
    hostile: Hostile | None = Field(
        None, description="a lying, flooding or rebooting firmware (see ate/sim/hostile.py)"
    )
    weak_pa: bool = Field(False, description="the power amplifier gives 15 dB less")
    antenna_open: bool = Field(
        False, description="the antenna is not connected: 30 dB lost transmitting and receiving"
    )
    crystal_off: float | None = Field(
        None, ge=-500, le=500, description="the 40 MHz crystal is this many ppm further off"
    )
    deaf_receiver: bool = Field(False, description="the receiver decodes nothing")


class BoardSpec(Strict):
    """A simulated board file (fixtures/sim/board-*.yaml)."""

    board: str = Field(description="board name")
    chip: Chip
    firmware: str = Field("ate-testfw/1.0.0", pattern=r"^[^\s*=]+$", description="fw= in READY")
    idf: str = Field("v5.3", pattern=r"^[^\s*=]+$", description="ESP-IDF version in info")
    mac_prefix: str = Field(
        "24:0a:c4",
        pattern=r"^[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$",
        description="OUI; the last 3 bytes are drawn per unit",
    )
    gpio: GpioSpec = GpioSpec()
    i2c: tuple[I2cDeviceSpec, ...] = ()
    spi: tuple[SpiDeviceSpec, ...] = ()
    adc: dict[Annotated[int, Field(ge=0, lt=ADC_CHANNELS)], AdcChannelSpec] = Field(
        default_factory=dict, description="channels with something on them; others float"
    )
    rails: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")], RailSpec] = Field(
        default_factory=dict, description="supply rails the fixture's DMM can measure"
    )
    current_ma: CurrentSpec
    rf: RfSpec = RfSpec()
    latency_ms: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"default": 0.0},
        description="simulated firmware time per command family (gpio, i2c, spi, adc, "
        "power, rf, sys, prov, ping, info), `default` for the rest; 0 adds no sleep at all",
    )
    boot_ms: float = Field(250.0, ge=0, description="reset to READY")
    boot_noise: bool = Field(True, description="ROM banner and ESP-IDF logs before READY")
    faults: Faults = Faults()

    @field_validator("latency_ms")
    @classmethod
    def _families(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(LATENCY_FAMILIES))
        if unknown:
            raise ValueError(
                f"unknown command families {unknown}; allowed: {', '.join(LATENCY_FAMILIES)}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BoardSpec:
        def check_pin(pin: int, where: str) -> None:
            if pin >= self.gpio.count:
                raise ValueError(f"{where}: pin {pin} beyond gpio.count {self.gpio.count}")

        seen: set[int] = set()
        for a, b in self.gpio.loopbacks:
            if a == b:
                raise ValueError(f"gpio.loopbacks: pin {a} looped to itself")
            for p in (a, b):
                check_pin(p, "gpio.loopbacks")
                if p in self.gpio.reserved:
                    raise ValueError(f"gpio.loopbacks: pin {p} is reserved")
                if p in seen:
                    raise ValueError(f"gpio.loopbacks: pin {p} is in two pairs")
                seen.add(p)
        for p in self.gpio.levels:
            check_pin(p, "gpio.levels")
        for stuck in self.faults.stuck_gpio:
            check_pin(stuck.pin, "faults.stuck_gpio")
        for a, b in self.faults.shorted_gpio:
            if a == b:
                raise ValueError(f"faults.shorted_gpio: pin {a} shorted to itself")
            check_pin(a, "faults.shorted_gpio")
            check_pin(b, "faults.shorted_gpio")
        i2c = [(d.bus, d.address) for d in self.i2c]
        if len(set(i2c)) != len(i2c):
            raise ValueError("i2c: two devices share a bus and address")
        spi = [d.bus for d in self.spi]
        if len(set(spi)) != len(spi):
            raise ValueError("spi: one device per bus")
        unknown_rails = sorted(set(self.faults.rail_v) - set(self.rails))
        if unknown_rails:
            raise ValueError(f"faults.rail_v: no such rails {unknown_rails}")
        return self

    def with_faults(self, overrides: Mapping[str, Any]) -> BoardSpec:
        """This board with `overrides` (a fixture slot's faults) replacing whole fault keys."""
        faults = {**self.faults.model_dump(), **overrides}
        return BoardSpec.model_validate({**self.model_dump(), "faults": faults})


# ---- the firmware ---------------------------------------------------------------------


class Phase(Enum):
    OFF = "off"
    BOOTING = "booting"
    RUNNING = "running"
    LIGHT_SLEEP = "light_sleep"
    DEEP_SLEEP = "deep_sleep"
    DOWNLOAD = "download"  # ROM serial download mode (IO0 low at reset)


ResetReason = Literal["poweron", "sw", "deepsleep"]


@dataclass(frozen=True, slots=True)
class Action:
    """Something the firmware does after its reply is on the wire; the server times it."""

    kind: Literal["reboot", "light_sleep", "deep_sleep"]
    hold_s: float = 0.0


class CommandError(Exception):
    """Becomes `@<id> ERR <code> <message>`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


_NUMBER_RE = re.compile(r"0[xX][0-9a-fA-F]{1,8}|[0-9]{1,10}")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})+")
_CORRUPT_ID_RE = re.compile(r"!([0-9]{1,5})")


def show(text: str, limit: int = 24) -> str:
    """Echo host text in an error message: ASCII only (the line is), bounded."""
    safe = text.encode("ascii", "replace").decode("ascii")
    return safe if len(safe) <= limit else safe[:limit] + "..."


def parse_int(text: str, what: str, low: int, high: int) -> int:
    """A protocol number (decimal, or hex with 0x) within low..high, else EARG."""
    if not _NUMBER_RE.fullmatch(text):
        raise CommandError("EARG", f"{what} {show(text)} is not a number")
    value = int(text, 16) if text[:2].lower() == "0x" else int(text)
    if not low <= value <= high:
        raise CommandError("EARG", f"{what} {value} outside {low}..{high}")
    return value


def parse_hex(text: str, what: str, max_bytes: int = MAX_XFER) -> bytes:
    if not _HEX_RE.fullmatch(text):
        raise CommandError("EARG", f"{what} must be hex bytes")
    data = bytes.fromhex(text)
    if len(data) > max_bytes:
        raise CommandError("EARG", f"{what}: at most {max_bytes} bytes")
    return data


def check_args(request: Request, positional: int, optional: tuple[str, ...] = ()) -> dict[str, str]:
    """Exactly `positional` arguments and only the `optional` keys, else EARG."""
    if len(request.args) != positional:
        raise CommandError(
            "EARG", f"{request.command} takes {positional} arguments, got {len(request.args)}"
        )
    extra = sorted(set(request.kwargs) - set(optional))
    if extra:
        raise CommandError("EARG", f"{request.command}: unknown key {show(extra[0])}")
    return request.kwargs


def protocol_error(corrupt: Corrupt) -> bytes:
    """`ERR EPROTO` for a corrupt request, under its id when one can be read (else 0)."""
    m = _CORRUPT_ID_RE.match(corrupt.text)
    req_id = int(m.group(1)) if m and 1 <= int(m.group(1)) <= 0xFFFF else 0
    return encode_error(req_id, "EPROTO", show(corrupt.reason, 60))


def _draw(rng: random.Random, s: Spread) -> float:
    return s.nominal + rng.uniform(-s.spread, s.spread) if s.spread else s.nominal


# Bytes a noisy line may carry: anything but the newline that would end it.
_JUNK = bytes(b for b in range(256) if b != 0x0A)

_RESET_LINE = {
    "poweron": "rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)",
    "sw": "rst:0xc (RTC_SW_CPU_RST),boot:0x8 (SPI_FAST_FLASH_BOOT)",
    "deepsleep": "rst:0x5 (DSLEEP),boot:0x8 (SPI_FAST_FLASH_BOOT)",
}
_GREEN, _RESET_COLOUR = "\x1b[0;32m", "\x1b[0m"


class KeyStore(Protocol):
    """The dev_key partition as the firmware reaches it (esp_partition_read/erase/write)."""

    def read(self) -> bytes:
        """The partition's bytes (devkey.DEV_KEY_SIZE)."""
        ...

    def write(self, record: bytes) -> None:
        """Erase the partition, then program `record` at its start."""
        ...


class RamKeyStore:
    """The dev_key partition of a board without a flash model: kept for the board's
    lifetime (power cycles included), erased at first."""

    def __init__(self) -> None:
        self.data = bytearray(b"\xff" * devkey.DEV_KEY_SIZE)

    def read(self) -> bytes:
        return bytes(self.data)

    def write(self, record: bytes) -> None:
        if len(record) > devkey.DEV_KEY_SIZE:
            raise ValueError(f"{len(record)} bytes do not fit in the dev_key partition")
        self.data[:] = b"\xff" * devkey.DEV_KEY_SIZE
        self.data[: len(record)] = record


class SimBoard:
    """One simulated unit running the test firmware.

    Deterministic for a given (spec, seed, slot) and sequence of calls. The server owns
    time and the wire: it calls power_on/reset/finish_boot/wake around handle().
    """

    def __init__(
        self,
        spec: BoardSpec,
        seed: int | str = 0,
        slot: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        role: Literal["dut", "golden"] = "dut",
    ) -> None:
        self.spec = spec
        self.slot = slot
        self._clock = clock
        unit = random.Random(f"{seed}:{slot}")
        # Draw order is part of determinism: never reorder without expecting new units.
        self.mac = spec.mac_prefix + "".join(f":{unit.randrange(256):02x}" for _ in range(3))
        self._rail_v = {
            name: r.v + unit.uniform(-r.spread, r.spread) for name, r in sorted(spec.rails.items())
        }
        self._adc_mv = {
            ch: a.mv + unit.uniform(-a.spread_mv, a.spread_mv) for ch, a in sorted(spec.adc.items())
        }
        self._current = {m: max(0.0, _draw(unit, getattr(spec.current_ma, m))) for m in POWER_MODES}
        self._rssi = _draw(unit, spec.rf.rssi_dbm)
        self._freq = _draw(unit, spec.rf.freq_offset_ppm)
        self._per = min(100.0, max(0.0, _draw(unit, spec.rf.per_pct)))
        self._noise = random.Random(f"{seed}:{slot}:noise")
        self._wire = random.Random(f"{seed}:{slot}:wire")
        # The radio as the shield box's air sees it (its own stream: the draws above stay).
        air = random.Random(f"{seed}:{slot}:radio")
        faults_ = spec.faults
        antenna = -30.0 if faults_.antenna_open else 0.0
        self.radio = Radio(
            mac=self.mac,
            slot=slot if role == "dut" else None,
            tx_offset_db=_draw(air, spec.rf.tx_power_dbm)
            - TX_POWER_MAX_DBM
            + antenna
            - (15.0 if faults_.weak_pa else 0.0),
            rx_offset_db=antenna,
            sensitivity_dbm=_draw(air, spec.rf.sensitivity_dbm)
            + (200.0 if faults_.deaf_receiver else 0.0),
            ppm=self._freq + (faults_.crystal_off or 0.0),
            frame_loss=self._per / 100.0,
        )
        self.role: Literal["dut", "golden"] = role  # in NVS: it outlives reboots
        self.rf_space: RfSpace | None = None  # set by the fixture twin
        self._listen: _Listen | None = None

        faults = spec.faults
        self._stuck = {s.pin: s.level for s in faults.stuck_gpio}
        self._nets = _nets(list(spec.gpio.loopbacks) + list(faults.shorted_gpio))
        self._reserved = frozenset(spec.gpio.reserved)

        self.phase = Phase.OFF
        self.mode: PowerMode = "idle"
        self.reset_reason: ResetReason = "poweron"
        self.requests_since_boot = 0
        self.hung = False
        self.last: tuple[Request, bytes] | None = None
        self.pin_mode: dict[int, str] = {}
        self.driven: dict[int, int] = {}
        self.i2c_regs: dict[tuple[int, int], dict[int, int]] = {}
        self._boot_t0 = 0.0
        self._action: Action | None = None
        # The dev_key partition: flash, so it outlives power cycles. The server puts the
        # unit's simulated flash here when the board has a ROM face.
        self.key_store: KeyStore = RamKeyStore()
        # Keys a faulty firmware uses instead of the device key (made on first use).
        self._wrong_keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        # The line-time model (ate.sim.timing), set by the fixture twin; None adds nothing.
        self.timing: LineTimes | None = None
        self._clear_ram()

    # ---- life cycle (the server calls these) -----------------------------------------

    @property
    def powered(self) -> bool:
        return self.phase is not Phase.OFF

    @property
    def booted(self) -> bool:
        """Past boot and running the test firmware (possibly hung or mute by a fault)."""
        return self.phase is Phase.RUNNING

    @property
    def listening(self) -> bool:
        """Whether the firmware reads and answers requests right now."""
        return self.phase is Phase.RUNNING and not self.hung and not self.spec.faults.no_ready

    def power_on(self) -> None:
        if self.phase is Phase.OFF:
            self._restart("poweron")

    def power_off(self) -> None:
        self.phase = Phase.OFF
        self._off_air()
        self._clear_ram()

    def reset(self, boot_mode: bool = False) -> bool:
        """EN pulse; IO0 low (`boot_mode`) enters ROM download mode. False if unpowered."""
        if self.phase is Phase.OFF:
            return False
        self._restart("poweron")
        if boot_mode:
            self.phase = Phase.DOWNLOAD
        return True

    def restart(self, reason: ResetReason) -> None:
        """Software reset or deep-sleep wake: back to BOOTING, RAM lost."""
        if self.phase is not Phase.OFF:
            self._restart(reason)

    def finish_boot(self) -> bool:
        """Boot time is over; True when READY is to be printed."""
        if self.phase is not Phase.BOOTING:
            return False
        self.phase = Phase.RUNNING
        self.mode = "idle"
        return not self.spec.faults.no_ready

    def sleep(self, kind: Literal["light_sleep", "deep_sleep"]) -> None:
        if self.phase is Phase.RUNNING:
            self.phase = Phase.LIGHT_SLEEP if kind == "light_sleep" else Phase.DEEP_SLEEP
            self.mode = kind

    def wake(self) -> bool:
        """End of a sleep. True from light sleep (print AWAKE); deep sleep reboots instead."""
        if self.phase is Phase.LIGHT_SLEEP:
            self.phase = Phase.RUNNING
            self.mode = "idle"
            return True
        if self.phase is Phase.DEEP_SLEEP:
            self._restart("deepsleep")
        return False

    def take_action(self) -> Action | None:
        action, self._action = self._action, None
        return action

    def _off_air(self) -> None:
        """Power gone or the chip reset: whatever it was still sending stops now."""
        if self.rf_space is not None:
            self.rf_space.cut(self.radio, self._clock())
        self._listen = None

    def _restart(self, reason: ResetReason) -> None:
        if hasattr(self, "radio"):  # not while __init__ is still making the unit
            self._off_air()
        self._clear_ram()
        self.phase = Phase.BOOTING
        self.reset_reason = reason
        self._boot_t0 = self._clock()

    def _clear_ram(self) -> None:
        self.mode = "idle"
        self.requests_since_boot = 0
        self.hung = False
        self.last = None
        self._action = None
        self.pin_mode = {}
        self.driven = {}
        self.i2c_regs = {(d.bus, d.address): dict(d.registers) for d in self.spec.i2c}

    # ---- what the fixture measures ---------------------------------------------------

    def current_ma(self) -> float:
        """Instantaneous supply current for the present state, 0 when unpowered."""
        if self.phase is Phase.OFF:
            return 0.0
        mode: PowerMode
        if self.phase is Phase.BOOTING:
            mode = "active"  # the CPU runs flat out while booting
        elif self.phase is Phase.DOWNLOAD:
            mode = "idle"
        else:
            mode = self.mode
        value = self._current[mode]
        oc = self.spec.faults.over_current
        if oc is not None and oc.mode == mode:
            value *= oc.factor
        return value

    @property
    def rails(self) -> tuple[str, ...]:
        return tuple(sorted(self.spec.rails))

    def rail_v(self, name: str) -> float:
        """The rail's voltage now (0 unpowered); KeyError for a rail the board lacks."""
        if name not in self._rail_v:
            raise KeyError(name)
        if self.phase is Phase.OFF:
            return 0.0
        pinned = self.spec.faults.rail_v.get(name)
        return pinned if pinned is not None else self._rail_v[name]

    # ---- what the board prints -------------------------------------------------------

    def ready_notice(self) -> bytes:
        return encode_notice(
            "READY",
            {
                "proto": PROTOCOL_VERSION,
                "fw": self.spec.firmware,
                "chip": self.spec.chip,
                "mac": self.mac,
            },
        )

    def boot_text(self) -> list[tuple[float, bytes]]:
        """(seconds after reset, bytes) of what the board prints before READY."""
        if not self.spec.boot_noise:
            return []
        boot = self.spec.boot_ms / 1000.0
        rom, build = chips.get(self.spec.chip).rom_banner
        rom_lines = (
            [rom]
            + ([build] if build else [])
            + [
                _RESET_LINE[self.reset_reason],
                "SPIWP:0xee",
                "mode:DIO, clock div:1",
                "load:0x3fce3818,len:0x508",
                "load:0x403c9700,len:0x4",
                "entry 0x403c9880",
            ]
        )
        # A power-up glitch byte is what a real UART shows first; the host must keep it
        # as log text.
        glitch = b"\xff" if self.reset_reason == "poweron" else b""
        text = [(0.0, glitch + "".join(f"{line}\r\n" for line in rom_lines).encode())]
        fw_version = self.spec.firmware.rpartition("/")[2]
        logs = [
            (0.12, "boot", f"ESP-IDF {self.spec.idf} 2nd stage bootloader"),
            (0.13, "boot", f"chip revision: v0.2, {self.spec.chip}"),
            (0.20, "boot", "Loaded app from partition at offset 0x10000"),
            (0.60, "cpu_start", "Pro cpu start user code"),
            (0.70, "main_task", "Started on CPU0"),
            (0.95, "ate_testfw", f"test firmware {fw_version} ready"),
        ]
        for frac, tag, msg in logs:
            ms = int(self.spec.boot_ms * frac)
            line = f"{_GREEN}I ({ms}) {tag}: {msg}{_RESET_COLOUR}\r\n"
            text.append((boot * frac, line.encode()))
        return text

    def download_text(self) -> bytes:
        rom, build = chips.get(self.spec.chip).rom_banner
        lines = (
            [rom]
            + ([build] if build else [])
            + [
                "rst:0x1 (POWERON),boot:0x0 (DOWNLOAD(USB/UART0))",
                "waiting for download",
            ]
        )
        return "".join(f"{line}\r\n" for line in lines).encode()

    # ---- requests --------------------------------------------------------------------

    def latency_s(self, request: Request | None) -> float:
        """Simulated firmware time to answer `request` (None: a corrupt line), seconds."""
        table = self.spec.latency_ms
        family = request.command.partition(".")[0] if request is not None else "default"
        ms = table.get(family, table.get("default", 0.0))
        if request is None:
            return ms / 1000.0
        if request.command == "rf.golden" and self.spec.rf.packet_ms and len(request.args) == 2:
            with contextlib.suppress(CommandError):  # the command itself answers EARG
                ms += parse_int(request.args[1], "packets", 1, 10_000) * self.spec.rf.packet_ms
        if request.command == "rf.tx" and self.listening:
            # The air's time, with or without the line-time model: the firmware answers
            # after the last frame is out (the frames' schedule is the request itself).
            with contextlib.suppress(CommandError):  # the command itself answers EARG
                ms += self._tx_plan(request).duration_s * 1000.0
        if self.timing is not None:
            ms += self.line_s(request) * 1000.0
        return ms / 1000.0

    def line_s(self, request: Request) -> float:
        """The line-time model's share of answering `request` (0 without the model, and
        for commands it does not time): key generation (and the dev_key partition's
        erase and write for a new key), a signature, the packets' airtime."""
        t = self.timing
        if t is None or not self.listening:
            return 0.0
        if request.command == "prov.key":
            cost = t.keygen_s
            if self.device_key() is None:  # a new key is written to flash
                cost += t.erase_s(devkey.DEV_KEY_OFFSET, devkey.DEV_KEY_SIZE)
                cost += t.program_s(devkey.DEV_KEY_OFFSET, devkey.RECORD_SIZE)
            return cost
        if request.command in ("prov.sign", "prov.csr"):
            return t.sign_s
        if request.command == "rf.golden" and len(request.args) == 2:
            with contextlib.suppress(CommandError):
                return parse_int(request.args[1], "packets", 1, 10_000) * t.rf_packet_s
        return 0.0

    def reject(self, corrupt: Corrupt) -> bytes:
        """The answer to a corrupt request: ERR EPROTO (never remembered for resends)."""
        if not self.listening:
            return b""
        return protocol_error(corrupt)

    def handle(self, request: Request) -> bytes:
        """Execute one request; the reply line, or b"" when the firmware does not answer."""
        if not self.listening:
            return b""
        self.requests_since_boot += 1
        hang = self.spec.faults.hang_after
        if hang is not None and self.requests_since_boot > hang:
            self.hung = True
            return b""
        if self.last is not None and self.last[0] == request:
            # Rule 4: a resend (same id, same request) is answered, never executed again.
            # Keyed on the whole request, as the firmware does: a new host session that
            # starts again at id 1 with another command must not get a stale answer.
            return self.last[1]
        hostile = self.spec.faults.hostile
        if hostile is not None and reboots_now(hostile, self.requests_since_boot):
            self._action = Action("reboot")  # no reply: it just starts again
            return b""
        handler = _COMMANDS.get(request.command)
        try:
            if handler is None:
                raise CommandError("EUNKNOWN", f"no command {show(request.command)}")
            if self.role == "golden" and request.command.startswith("prov."):
                raise CommandError("EPERM", "golden board: never provisioned")
            reply = encode_reply(request.id, handler(self, request))
        except CommandError as exc:
            reply = encode_error(request.id, exc.code, exc.message)
        if hostile is not None:
            reply = wire_bytes(hostile, self.requests_since_boot, request.id, reply)
        self.last = (request, reply)
        return reply

    def on_wire(self, line: bytes) -> bytes:
        """The bytes that actually leave the UART for `line`, after drop/garbage faults."""
        if not line:
            return line
        faults = self.spec.faults
        if faults.drop_reply and self._wire.random() < faults.drop_reply.probability:
            return b""
        g = faults.garbage
        if g is None or self._wire.random() >= g.probability:
            return line
        junk = bytes(self._wire.choice(_JUNK) for _ in range(self._wire.randint(1, g.max_bytes)))
        if not g.mid_line:
            return junk + b"\n" + line
        if self._wire.random() < 0.5:
            return junk + line
        at = self._wire.randrange(1, len(line) - 1)  # keep the newline last
        return line[:at] + junk + line[at:]

    # ---- commands --------------------------------------------------------------------

    def _ping(self, req: Request) -> dict[str, object]:
        check_args(req, 0)
        return {}

    def _info(self, req: Request) -> dict[str, object]:
        check_args(req, 0)
        return {
            "proto": PROTOCOL_VERSION,
            "fw": self.spec.firmware,
            "chip": self.spec.chip,
            "mac": self._claimed_mac(),
            "idf": self.spec.idf,
            "role": self.role,
        }

    def _claimed_mac(self) -> str:
        hostile = self.spec.faults.hostile
        if hostile is not None and hostile.mode == "clone_mac" and hostile.mac:
            return hostile.mac
        return self.mac

    def _pin(self, text: str) -> int:
        pin = parse_int(text, "pin", 0, self.spec.gpio.count - 1)
        if pin in self._reserved:
            raise CommandError("EHW", f"pin {pin} is not configurable (used by the module)")
        return pin

    def _gpio_mode(self, req: Request) -> dict[str, object]:
        check_args(req, 2)
        pin = self._pin(req.args[0])
        mode = req.args[1]
        if mode not in ("in", "out", "in_pullup", "in_pulldown"):
            raise CommandError("EARG", f"mode {show(mode)}: in, out, in_pullup or in_pulldown")
        self.pin_mode[pin] = mode
        if mode == "out":
            self.driven.setdefault(pin, 0)
        return {}

    def _gpio_set(self, req: Request) -> dict[str, object]:
        check_args(req, 2)
        pin = self._pin(req.args[0])
        level = parse_int(req.args[1], "level", 0, 1)
        if self.pin_mode.get(pin) != "out":
            raise CommandError("EARG", f"pin {pin} is not an output")
        self.driven[pin] = level
        return {}

    def _gpio_get(self, req: Request) -> dict[str, object]:
        check_args(req, 1)
        return {"level": self.level(self._pin(req.args[0]))}

    def level(self, pin: int) -> int:
        """What the pin reads: stuck > driven (wired-AND) > pulls > external level > 0."""
        if pin in self._stuck:
            return self._stuck[pin]
        net = self._nets.get(pin, (pin,))
        drivers = [self.driven.get(p, 0) for p in net if self.pin_mode.get(p) == "out"]
        if drivers:
            return min(drivers)
        own = self.pin_mode.get(pin, "in")
        if own == "in_pullup":
            return 1
        if own == "in_pulldown":
            return 0
        pulls = {self.pin_mode.get(p) for p in net}
        if "in_pulldown" in pulls:
            return 0
        if "in_pullup" in pulls:
            return 1
        levels = self.spec.gpio.levels
        for p in (pin, *net):
            if p in levels:
                return levels[p]
        return 0

    def _i2c_target(self, req: Request) -> tuple[int, int, dict[int, int] | None]:
        bus = parse_int(req.args[0], "bus", 0, I2C_BUSES - 1)
        addr = parse_int(req.args[1], "address", 0, 0x7F)
        regs = self.i2c_regs.get((bus, addr))
        if addr in self.spec.faults.missing_i2c:
            regs = None
        return bus, addr, regs

    def _i2c_probe(self, req: Request) -> dict[str, object]:
        check_args(req, 2)
        _, _, regs = self._i2c_target(req)
        return {"ack": int(regs is not None)}

    def _i2c_read(self, req: Request) -> dict[str, object]:
        check_args(req, 4)
        bus, addr, regs = self._i2c_target(req)
        reg = parse_int(req.args[2], "register", 0, 0xFF)
        length = parse_int(req.args[3], "length", 1, MAX_XFER)
        if regs is None:
            raise CommandError("EHW", f"i2c nack at 0x{addr:02x} on bus {bus}")
        data = bytes(regs.get((reg + i) & 0xFF, 0) for i in range(length))
        return {"data": data.hex()}

    def _i2c_write(self, req: Request) -> dict[str, object]:
        check_args(req, 4)
        bus, addr, regs = self._i2c_target(req)
        reg = parse_int(req.args[2], "register", 0, 0xFF)
        data = parse_hex(req.args[3], "data")
        if regs is None:
            raise CommandError("EHW", f"i2c nack at 0x{addr:02x} on bus {bus}")
        for i, b in enumerate(data):
            regs[(reg + i) & 0xFF] = b
        return {}

    def _spi_device(self, text: str) -> tuple[int, SpiDeviceSpec]:
        bus = parse_int(text, "bus", 0, SPI_BUSES - 1)
        for dev in self.spec.spi:
            if dev.bus == bus:
                return bus, dev
        raise CommandError("EHW", f"no device answers on spi bus {bus}")

    def _jedec(self, dev: SpiDeviceSpec) -> int:
        wrong = self.spec.faults.jedec_id
        return wrong if wrong is not None else dev.jedec

    def _spi_jedec(self, req: Request) -> dict[str, object]:
        check_args(req, 1)
        _, dev = self._spi_device(req.args[0])
        return {"id": f"0x{self._jedec(dev):06X}"}

    def _spi_xfer(self, req: Request) -> dict[str, object]:
        check_args(req, 2)
        _, dev = self._spi_device(req.args[0])
        tx = parse_hex(req.args[1], "data")
        if not tx:
            raise CommandError("EARG", "nothing to transfer")
        # Full duplex: MISO is high-impedance (0xFF) while the opcode goes out.
        if tx[0] == 0x9F:
            answer = self._jedec(dev).to_bytes(3, "big")
        elif tx[0] == 0x05:
            answer = bytes([dev.status]) * (len(tx) - 1)
        else:
            answer = b""
        rx = (b"\xff" + answer + b"\xff" * len(tx))[: len(tx)]
        return {"data": rx.hex()}

    def _adc_read(self, req: Request) -> dict[str, object]:
        kwargs = check_args(req, 1, ("samples",))
        ch = parse_int(req.args[0], "channel", 0, ADC_CHANNELS - 1)
        n = parse_int(kwargs.get("samples", "1"), "samples", 1, 1024)
        spec = self.spec.adc.get(ch)
        if spec is None:  # a floating input picks up a little of everything
            mv = self._noise.uniform(0.0, 60.0)
        else:
            mv = self._adc_mv[ch] + self._noise.gauss(0.0, spec.noise_mv / math.sqrt(n))
        return {"mv": round(min(3300.0, max(0.0, mv)))}

    def _power_mode(self, req: Request) -> dict[str, object]:
        kwargs = check_args(req, 1, ("hold_ms",))
        mode = req.args[0]
        if mode not in POWER_MODES:
            raise CommandError("EARG", f"mode {show(mode)}: {', '.join(POWER_MODES)}")
        hold_s = parse_int(kwargs.get("hold_ms", "1000"), "hold_ms", 1, 86_400_000) / 1000.0
        if mode == "idle":
            self.mode = "idle"
        elif mode == "active":
            self.mode = "active"
        else:  # answered first, entered after the reply is on the wire
            self._action = Action("light_sleep" if mode == "light_sleep" else "deep_sleep", hold_s)
        return {}

    def _rf_golden(self, req: Request) -> dict[str, object]:
        check_args(req, 2)
        parse_int(req.args[0], "channel", 1, 14)
        packets = parse_int(req.args[1], "packets", 1, 10_000)
        lost = sum(self._noise.random() * 100.0 < self._per for _ in range(packets))
        honest: dict[str, object] = {
            "rssi": f"{self._rssi + self._noise.gauss(0.0, 0.5):.1f}",
            "freq_offset": f"{self._freq + self._noise.gauss(0.0, 0.2):.2f}",
            "per": f"{100.0 * lost / packets:.2f}",
        }
        hostile = self.spec.faults.hostile
        return honest if hostile is None else rf_fields(hostile, self.requests_since_boot, honest)

    def _rf_role(self, req: Request) -> dict[str, object]:
        if req.args:
            check_args(req, 1)
            if req.args[0] not in ("dut", "golden"):
                raise CommandError("EARG", f"role {show(req.args[0])}: allowed are dut, golden")
            self.role = "golden" if req.args[0] == "golden" else "dut"
        else:
            check_args(req, 0)
        return {"role": self.role}

    def _tx_plan(self, req: Request) -> _TxPlan:
        kwargs = check_args(req, 3, ("interval_us", "power"))
        mode = _rf_mode(req.args[0])
        channel = self._rf_channel(mode, req.args[1])
        count = parse_int(req.args[2], "count", 1, 10_000)
        interval = (
            parse_int(kwargs["interval_us"], "interval_us", *TX_INTERVAL_US[mode])
            if "interval_us" in kwargs
            else RF_INTERVAL_US[mode]
        )
        power = parse_int(kwargs["power"], "power", 2, 20) if "power" in kwargs else 20
        return _TxPlan(mode, channel, count, interval, power)

    def _rf_channel(self, mode: Literal["wifi", "ble"], text: str) -> int:
        if mode == "ble":
            channel = parse_int(text, "channel", 37, 39)
        else:
            channel = parse_int(text, "channel", 1, 14)
        return channel

    def begin(self, request: Request) -> None:
        """The firmware starts acting on `request` (the server calls it before the
        request's time passes): rf.tx puts its frames on the air from now."""
        if request.command != "rf.tx" or not self.listening or self.rf_space is None:
            return
        if self.last is not None and self.last[0] == request:
            return  # a resend is answered, never sent again
        try:
            plan = self._tx_plan(request)
        except CommandError:
            return  # the command answers EARG
        self.rf_space.transmit(
            self.radio,
            plan.mode,
            plan.channel,
            plan.count,
            plan.interval_us,
            plan.power_dbm,
            self._clock(),
        )

    def _rf_tx(self, req: Request) -> dict[str, object]:
        plan = self._tx_plan(req)
        return {"sent": plan.count}

    def _rf_rx_start(self, req: Request) -> dict[str, object]:
        kwargs = check_args(req, 2, ("from",))
        mode = _rf_mode(req.args[0])
        channel = self._rf_channel(mode, req.args[1])
        sender = kwargs.get("from")
        if sender is not None and not _MAC_RE.fullmatch(sender):
            raise CommandError("EARG", f"from={show(sender)}: a MAC aa:bb:cc:dd:ee:ff")
        self._listen = _Listen(mode, channel, sender, self._clock())
        return {}

    def _rf_rx_stop(self, req: Request) -> dict[str, object]:
        check_args(req, 0)
        listen, self._listen = self._listen, None
        if listen is None:
            raise CommandError("EARG", "no rf.rx.start")
        if self.rf_space is None:
            return {"frames": 0}
        heard = self.rf_space.hear(
            self.radio, listen.mode, listen.channel, listen.sender, listen.t0, self._clock()
        )
        honest: dict[str, object] = {"frames": heard.frames}
        if heard.rssi is not None:
            honest["rssi"] = f"{heard.rssi:.1f}"
        if heard.cfo is not None:
            honest["cfo"] = f"{heard.cfo:.2f}"
        hostile = self.spec.faults.hostile
        return honest if hostile is None else rx_fields(hostile, honest)

    def _sys_uptime(self, req: Request) -> dict[str, object]:
        check_args(req, 0)
        return {"ms": max(0, int((self._clock() - self._boot_t0) * 1000))}

    def _sys_reboot(self, req: Request) -> dict[str, object]:
        check_args(req, 0)
        self._action = Action("reboot")
        return {}

    # ---- provisioning (PROVISIONING.md) ------------------------------------------------

    def device_key(self) -> ec.EllipticCurvePrivateKey | None:
        """The key the dev_key partition holds now, or None (erased, torn, corrupt)."""
        d = devkey.decode_record(self.key_store.read())
        return None if d is None else devkey.private_key(d)

    def _stored_key(self) -> ec.EllipticCurvePrivateKey:
        key = self.device_key()
        if key is None:
            raise CommandError("EARG", "no device key: send prov.key first")
        return key

    def _wrong_key(self, kind: Literal["p384", "other"]) -> ec.EllipticCurvePrivateKey:
        if kind not in self._wrong_keys:
            curve: ec.EllipticCurve = ec.SECP384R1() if kind == "p384" else ec.SECP256R1()
            self._wrong_keys[kind] = ec.generate_private_key(curve)
        return self._wrong_keys[kind]

    def _prov_key(self, req: Request) -> dict[str, object]:
        check_args(req, 0)
        key = self.device_key()
        new = key is None
        if key is None:
            d = devkey.generate_scalar()
            self.key_store.write(devkey.encode_record(d))
            if devkey.decode_record(self.key_store.read()) != d:
                raise CommandError("EHW", "dev_key partition: the stored key does not read back")
            key = devkey.private_key(d)
        return {"pub": devkey.public_point(key).hex(), "new": int(new)}

    def _prov_csr(self, req: Request) -> dict[str, object]:
        kwargs = check_args(req, 0, ("subject",))
        if "subject" not in kwargs:
            raise CommandError("EARG", "prov.csr needs subject=<hex of the subject text>")
        raw = parse_hex(kwargs["subject"], "subject", devkey.SUBJECT_MAX_BYTES)
        try:
            pairs = devkey.parse_subject(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise CommandError("EARG", "subject is not UTF-8 text") from None
        except devkey.SubjectError as exc:
            raise CommandError("EARG", f"subject: {exc}") from None
        key = self._stored_key()
        faults = self.spec.faults
        if faults.prov_subject_tamper:
            pairs = [(n, v + "X" if n == "CN" else v) for n, v in pairs]
        signer = self._wrong_key("p384") if faults.prov_key_type == "p384" else key
        return {"csr": devkey.make_csr(signer, pairs).hex()}

    def _prov_sign(self, req: Request) -> dict[str, object]:
        check_args(req, 1)
        challenge = parse_hex(req.args[0], "challenge", devkey.CHALLENGE_MAX)
        if len(challenge) < devkey.CHALLENGE_MIN:
            raise CommandError(
                "EARG",
                f"challenge: {devkey.CHALLENGE_MIN}..{devkey.CHALLENGE_MAX} bytes, "
                f"got {len(challenge)}",
            )
        key = self._stored_key()
        if self.spec.faults.prov_bad_signature:
            key = self._wrong_key("other")
        return {"sig": devkey.sign_proof(key, challenge).hex()}


_Handler = Callable[[SimBoard, Request], dict[str, object]]

_COMMANDS: dict[str, _Handler] = {
    "ping": SimBoard._ping,
    "info": SimBoard._info,
    "gpio.mode": SimBoard._gpio_mode,
    "gpio.set": SimBoard._gpio_set,
    "gpio.get": SimBoard._gpio_get,
    "i2c.probe": SimBoard._i2c_probe,
    "i2c.read": SimBoard._i2c_read,
    "i2c.write": SimBoard._i2c_write,
    "spi.jedec": SimBoard._spi_jedec,
    "spi.xfer": SimBoard._spi_xfer,
    "adc.read": SimBoard._adc_read,
    "power.mode": SimBoard._power_mode,
    "rf.golden": SimBoard._rf_golden,
    "rf.role": SimBoard._rf_role,
    "rf.tx": SimBoard._rf_tx,
    "rf.rx.start": SimBoard._rf_rx_start,
    "rf.rx.stop": SimBoard._rf_rx_stop,
    "sys.uptime": SimBoard._sys_uptime,
    "sys.reboot": SimBoard._sys_reboot,
    "prov.key": SimBoard._prov_key,
    "prov.csr": SimBoard._prov_csr,
    "prov.sign": SimBoard._prov_sign,
}

COMMANDS: tuple[str, ...] = tuple(_COMMANDS)


def _nets(pairs: list[tuple[int, int]]) -> dict[int, tuple[int, ...]]:
    """Pins joined by wires or shorts, each pin mapped to its whole (sorted) net."""
    parent: dict[int, int] = {}

    def root(p: int) -> int:
        while parent.setdefault(p, p) != p:
            p = parent[p]
        return p

    for a, b in pairs:
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for p in parent:
        groups.setdefault(root(p), []).append(p)
    return {p: tuple(sorted(g)) for g in groups.values() for p in g}
