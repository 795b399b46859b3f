"""The test sequence a test engineer writes in YAML: chip, test firmware, steps.

Each step type is one model here; its runtime behaviour lives in ate.sequence.steps.
Adding a step type: a model here (with a unique `type` literal), added to `Step`, and
an executor registered in ate.sequence.steps.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from ate.config import when as conditions
from ate.config.common import (
    MAX_SETTLE,
    MAX_TIMEOUT,
    Bool,
    FieldError,
    Int,
    LimitSpec,
    Settle,
    Strict,
    Timeout,
    not_bool,
)
from ate.config.when import MAX_LENGTH as MAX_CONDITION
from ate.model import radio
from ate.model.units import Quantity

Chip = Literal["esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6", "esp32h2"]
PowerMode = Literal["idle", "active", "light_sleep", "deep_sleep"]
Pin = Annotated[Int, Field(ge=0, le=48, description="GPIO number")]
HexBytes = Annotated[str, Field(pattern=r"^([0-9a-fA-F]{2})+$", description="bytes as hex")]


class StepBase(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64, description="unique id")
    description: str = ""
    timeout: Timeout | None = Field(
        None,
        gt=0,
        le=MAX_TIMEOUT,
        description=f"per attempt, at most {MAX_TIMEOUT:g} s; default from the sequence",
    )
    retries: Int | None = Field(None, ge=0, le=10, description="extra attempts on failure")
    uses: tuple[str, ...] = Field((), description="shared fixture resources this step holds")
    needs: tuple[str, ...] = Field(
        (),
        description="earlier steps that must have passed; otherwise this one is SKIPPED "
        "with the reason",
    )
    when: str | None = Field(
        None,
        max_length=MAX_CONDITION,
        description='run only if this condition holds, e.g. unit.flash_size == "8MB" and '
        'value("rail_3v3", "v") > 3.2 (functions value, verdict, passed; unit facts '
        "chip, flash_size, firmware, mac, variant); otherwise SKIPPED",
    )
    scope: Literal["slot", "panel"] = Field(
        "slot",
        description="panel: run once for the whole fixture (golden-board warm-up, instrument "
        "self-test) in the first slot that reaches it; the other slots wait and share its "
        "result",
    )
    on_abort: Bool = Field(
        True,
        description="cleanup steps: also run when the panel is aborted (clamp opened), "
        "within the sequence's abort_deadline",
    )

    @field_validator("when")
    @classmethod
    def _condition(cls, text: str | None) -> str | None:
        if text is not None:
            try:
                conditions.parse(text)
            except conditions.ConditionError as exc:
                raise ValueError(str(exc)) from None
        return text

    def measurement_names(self) -> tuple[str, ...] | None:
        """The names of what this step measures (what `value(STEP, NAME)` reads); None
        when only running it tells (a plugin)."""
        return None


class GpioLoopbackStep(StepBase):
    """Drive each pair's first pin, read its second, at both levels (Espressif's flow)."""

    type: Literal["gpio_loopback"]
    pairs: tuple[tuple[Pin, Pin], ...] = Field(min_length=1)
    both_directions: Bool = Field(False, description="also drive the second pin, read the first")
    settle: Settle = Field(
        0.0,
        ge=0,
        le=MAX_SETTLE,
        description=f"wait between drive and read, at most {MAX_SETTLE:g} s",
    )

    @staticmethod
    def pair_name(out_pin: int, in_pin: int, level: int) -> str:
        return f"gpio{out_pin}->gpio{in_pin}@{level}"

    def measurement_names(self) -> tuple[str, ...]:
        pairs = list(self.pairs) + ([(b, a) for a, b in self.pairs] if self.both_directions else [])
        return tuple(self.pair_name(o, i, level) for o, i in pairs for level in (0, 1))


class GpioReadStep(StepBase):
    type: Literal["gpio_read"]
    pin: Pin
    expect: Annotated[Literal[0, 1], BeforeValidator(not_bool)]
    pull: Literal["none", "up", "down"] = "none"

    @property
    def measured(self) -> str:
        """The name of its measurement (one owner: the executor measures under it)."""
        return f"gpio{self.pin}"

    def measurement_names(self) -> tuple[str, ...]:
        return (self.measured,)


class I2cProbeStep(StepBase):
    type: Literal["i2c_probe"]
    bus: Int = Field(0, ge=0, le=1)
    address: Int = Field(ge=0x08, le=0x77, description="7-bit address")

    @property
    def measured(self) -> str:
        """The name of its measurement (one owner: the executor measures under it)."""
        return f"i2c{self.bus}@0x{self.address:02x}.ack"

    def measurement_names(self) -> tuple[str, ...]:
        return (self.measured,)


class I2cReadStep(StepBase):
    """Read `length` bytes from a register; the value is big-endian."""

    type: Literal["i2c_read"]
    bus: Int = Field(0, ge=0, le=1)
    address: Int = Field(ge=0x08, le=0x77)
    reg: Int = Field(alias="register", ge=0, le=0xFF)
    length: Int = Field(1, ge=1, le=4)
    expect: Int | None = None
    limits: LimitSpec | None = None

    @model_validator(mode="after")
    def _one_expectation(self) -> I2cReadStep:
        if (self.expect is None) == (self.limits is None):
            raise ValueError("give exactly one of expect or limits")
        if self.limits is not None:
            try:
                self.limits.for_quantity(Quantity.COUNT)
            except FieldError as exc:
                raise exc.within("limits") from None
        return self

    @property
    def measured(self) -> str:
        """The name of its measurement (one owner: the executor measures under it)."""
        return f"i2c{self.bus}@0x{self.address:02x}[0x{self.reg:02x}]"

    def measurement_names(self) -> tuple[str, ...]:
        return (self.measured,)


class SpiJedecStep(StepBase):
    type: Literal["spi_jedec"]
    bus: Int = Field(1, ge=0, le=3)
    expect: Int = Field(ge=0, le=0xFFFFFF, description="manufacturer, type, capacity")

    @property
    def measured(self) -> str:
        """The name of its measurement (one owner: the executor measures under it)."""
        return f"spi{self.bus}.jedec"

    def measurement_names(self) -> tuple[str, ...]:
        return (self.measured,)


class SpiTransferStep(StepBase):
    type: Literal["spi_transfer"]
    bus: Int = Field(1, ge=0, le=3)
    tx: HexBytes
    expect: HexBytes
    mask: HexBytes | None = Field(None, description="only bits set here are compared")

    @model_validator(mode="after")
    def _lengths(self) -> SpiTransferStep:
        for name in ("expect", "mask"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.tx):
                raise FieldError(
                    f"{name} has {len(value) // 2} bytes but tx has {len(self.tx) // 2}; "
                    "tx, expect and mask must be the same length",
                    (name,),
                )
        return self

    @property
    def measured(self) -> str:
        """The name of its measurement (one owner: the executor measures under it)."""
        return f"spi{self.bus}.rx"

    def measurement_names(self) -> tuple[str, ...]:
        return (self.measured,)


class AdcStep(StepBase):
    """A voltage on one of the DUT's own ADC channels (calibrated by the firmware)."""

    type: Literal["adc"]
    channel: Int = Field(ge=0, le=19)
    samples: Int = Field(1, ge=1, le=1024)
    limits: LimitSpec

    @field_validator("limits")
    @classmethod
    def _voltage(cls, v: LimitSpec) -> LimitSpec:
        v.for_quantity(Quantity.VOLTAGE)
        return v

    @property
    def measured(self) -> str:
        """The name of its measurement (one owner: the executor measures under it)."""
        return f"adc{self.channel}"

    def measurement_names(self) -> tuple[str, ...]:
        return (self.measured,)


class RailVoltageStep(StepBase):
    """A supply rail measured by the fixture's DMM through its mux (name it in `uses`)."""

    type: Literal["rail_voltage"]
    rail: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    limits: LimitSpec

    @field_validator("limits")
    @classmethod
    def _voltage(cls, v: LimitSpec) -> LimitSpec:
        v.for_quantity(Quantity.VOLTAGE)
        return v

    @property
    def measured(self) -> str:
        """The name of its measurement (one owner: the executor measures under it)."""
        return f"rail.{self.rail}"

    def measurement_names(self) -> tuple[str, ...]:
        return (self.measured,)


class SupplyCurrentStep(StepBase):
    """Put the DUT in a power mode and average the slot's current-sense samples."""

    type: Literal["supply_current"]
    mode: PowerMode
    samples: Int = Field(8, ge=1, le=1000)
    settle: Settle = Field(
        0.05,
        ge=0,
        le=MAX_SETTLE,
        description=f"wait after the mode change, at most {MAX_SETTLE:g} s",
    )
    limits: LimitSpec

    @field_validator("limits")
    @classmethod
    def _current(cls, v: LimitSpec) -> LimitSpec:
        v.for_quantity(Quantity.CURRENT)
        return v

    @property
    def measured(self) -> str:
        """The name of its measurement (one owner: the executor measures under it)."""
        return f"current.{self.mode}"

    def measurement_names(self) -> tuple[str, ...]:
        return (self.measured,)


class RfGoldenStep(StepBase):
    """Packets exchanged with the golden board (signal-board scheme; uses: [golden])."""

    type: Literal["rf_golden"]
    channel: Int = Field(1, ge=1, le=14)
    packets: Int = Field(100, ge=1, le=10000)
    rssi: LimitSpec | None = None
    freq_offset: LimitSpec | None = None
    per: LimitSpec | None = None

    @model_validator(mode="after")
    def _units(self) -> RfGoldenStep:
        for name, q in (
            ("rssi", Quantity.POWER),
            ("freq_offset", Quantity.FREQUENCY_ERROR),
            ("per", Quantity.RATIO),
        ):
            spec: LimitSpec | None = getattr(self, name)
            if spec is not None:
                try:
                    spec.for_quantity(q)
                except FieldError as exc:
                    raise exc.within(name) from None
        if not (self.rssi or self.freq_offset or self.per):
            raise ValueError("give at least one of rssi, freq_offset, per limits")
        return self

    def rf_name(self, key: str) -> str:
        return f"rf.ch{self.channel}.{key}"

    def measurement_names(self) -> tuple[str, ...]:
        return tuple(self.rf_name(k) for k in ("rssi", "freq_offset", "per"))


RfLink = Literal["wifi_tx", "wifi_rx", "ble_tx", "ble_rx"]
_RF_QUANTITY = {
    "rssi": Quantity.POWER,
    "freq_offset": Quantity.FREQUENCY_ERROR,
    "per": Quantity.RATIO,
}


class RfStepBase(StepBase):
    """An exchange between the DUT and the golden board (ate/sequence/rf_steps.py): the
    host starts the receiver on one side, has the other transmit `packets` test frames,
    and reads the count back (PROTOCOL.md "RF golden board"). The step holds its golden
    board like `uses`; measured values are corrected by the slot's calibrated path loss."""

    type: str  # each step type narrows it to its literal
    channel: Int = Field(ge=1, le=39, description="Wi-Fi 1..14 (the chip's set) or BLE 37..39")
    packets: Int = Field(100, ge=1, le=10000)
    interval_us: Int | None = Field(
        None, ge=500, le=100_000, description="between frames (firmware default if not given)"
    )
    golden: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="the golden_board resource (default: the fixture's only one)",
    )
    rssi: LimitSpec | None = None
    per: LimitSpec | None = None

    # The limits this step type takes (its model's fields), checked for their units.
    _limit_names: ClassVar[tuple[str, ...]] = ("rssi", "per")

    @model_validator(mode="after")
    def _rf_limits(self) -> RfStepBase:
        given = False
        for name in self._limit_names:
            spec: LimitSpec | None = getattr(self, name)
            if spec is not None:
                given = True
                try:
                    spec.for_quantity(_RF_QUANTITY[name])
                except FieldError as exc:
                    raise exc.within(name) from None
        if not given:
            raise ValueError(f"give at least one of {', '.join(self._limit_names)} limits")
        return self

    @property
    def mode(self) -> Literal["wifi", "ble"]:
        return "ble" if self.type == "ble" else "wifi"

    def links(self) -> tuple[RfLink, ...]:
        """The directions this step tests, in order (DUT transmit first)."""
        raise NotImplementedError

    def limits_for(self, key: str) -> LimitSpec | None:
        return getattr(self, key) if key in self._limit_names else None

    def keys(self, link: RfLink) -> tuple[str, ...]:
        """What one direction measures: cfo only where the golden board receives."""
        if link.endswith("_tx") and "freq_offset" in self._limit_names:
            return ("rssi", "rssi_raw", "freq_offset", "per")
        return ("rssi", "rssi_raw", "per")

    def rf_name(self, link: RfLink, key: str) -> str:
        return f"rf.{link}.ch{self.channel}.{key}"

    def measurement_names(self) -> tuple[str, ...]:
        return tuple(self.rf_name(link, key) for link in self.links() for key in self.keys(link))


class WifiTxStep(RfStepBase):
    """DUT transmit: the golden board counts the DUT's frames (rssi, freq_offset, per)."""

    type: Literal["wifi_tx"]
    freq_offset: LimitSpec | None = None
    _limit_names: ClassVar[tuple[str, ...]] = ("rssi", "freq_offset", "per")

    def links(self) -> tuple[RfLink, ...]:
        return ("wifi_tx",)


class WifiRxStep(RfStepBase):
    """DUT receive: the DUT counts the golden board's frames (per, rssi as it heard them)."""

    type: Literal["wifi_rx"]

    def links(self) -> tuple[RfLink, ...]:
        return ("wifi_rx",)


class BleStep(RfStepBase):
    """BLE advertisements on an advertising channel, in one direction or both."""

    type: Literal["ble"]
    direction: Literal["tx", "rx", "both"] = "both"
    packets: Int = Field(20, ge=1, le=10000)

    def links(self) -> tuple[RfLink, ...]:
        return {"tx": ("ble_tx",), "rx": ("ble_rx",), "both": ("ble_tx", "ble_rx")}[self.direction]  # type: ignore[return-value]

    @field_validator("interval_us")
    @classmethod
    def _advertising_interval(cls, v: int | None) -> int | None:
        low, high = radio.TX_INTERVAL_US["ble"]
        if v is not None and not low <= v <= high:
            raise ValueError(
                f"a BLE advertisement interval is {low}..{high} us (non-connectable "
                f"advertising goes no faster), not {v}"
            )
        return v


RF_STEP_TYPES = (WifiTxStep, WifiRxStep, BleStep)


class PluginStep(StepBase):
    """Python for what YAML cannot say: an entry point in the `ate.steps` group."""

    type: Literal["plugin"]
    plugin: str = Field(description="entry point name in group ate.steps")
    params: dict[str, Any] = Field(default_factory=dict)
    limits: LimitSpec | None = None


PROMPT_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


class PromptStep(StepBase):
    """A question to the operator on the slot's tile ("Is the status LED green?"),
    answered on the page; no answer within `timeout` makes the step ERROR."""

    type: Literal["prompt"]
    text: str = Field(min_length=1, max_length=200, description="the question, as shown")
    kind: Literal["confirm", "choice", "number"] = "confirm"
    choices: tuple[str, ...] = Field((), description="kind choice: the buttons")
    expect: str | None = Field(
        None, description="confirm: yes (default) or no; choice: the answer that passes"
    )
    limits: LimitSpec | None = Field(None, description="kind number: the accepted range")
    image: str | None = Field(None, description="a picture to compare with, beside the question")
    # An operator is slower than a DUT: a minute unless the sequence says otherwise.
    timeout: Timeout | None = Field(60.0, gt=0, description="to answer, per attempt")
    # An answer is not a flaky reading: asking again after "no" would fish for a "yes".
    retries: int | None = Field(0, ge=0, le=10, description="extra attempts on failure")

    @model_validator(mode="after")
    def _fits_kind(self) -> PromptStep:
        if self.kind == "choice":
            if len(self.choices) < 2:
                raise ValueError("a choice prompt needs at least two choices")
            if self.expect is not None and self.expect not in self.choices:
                raise ValueError(f"expect {self.expect!r} is not one of the choices")
        elif self.choices:
            raise ValueError(f"choices are for kind choice, not {self.kind}")
        if self.kind == "confirm" and self.expect not in (None, "yes", "no"):
            raise ValueError("a confirm prompt expects yes or no")
        if self.kind == "number":
            if self.limits is None:
                raise ValueError("a number prompt needs limits")
            if self.expect is not None:
                raise ValueError("a number prompt is judged by limits, not expect")
        elif self.limits is not None:
            raise ValueError(f"limits are for kind number, not {self.kind}")
        return self

    @property
    def measured(self) -> str:
        """The name of its measurement (one owner: the executor measures under it)."""
        return "answer"

    def measurement_names(self) -> tuple[str, ...]:
        return (self.measured,)


Step = Annotated[
    GpioLoopbackStep
    | GpioReadStep
    | I2cProbeStep
    | I2cReadStep
    | SpiJedecStep
    | SpiTransferStep
    | AdcStep
    | RailVoltageStep
    | SupplyCurrentStep
    | RfGoldenStep
    | WifiTxStep
    | WifiRxStep
    | BleStep
    | PluginStep
    | PromptStep,
    Field(discriminator="type"),
]


Group = Literal["setup", "steps", "cleanup"]


class TestFirmware(Strict):
    path: str = Field(description="image file, relative to the sequence file")
    version: str | None = Field(None, description="version the DUT must report, if given")
    offset: Int = Field(0x10000, ge=0, multiple_of=0x1000, description="flash offset of the image")
    flash: Literal["if_changed", "always", "never"] = Field(
        "if_changed",
        description="if_changed: write unless the flash already holds this image (by MD5); "
        "always: write every time; never: the units come with it (no ROM loader step)",
    )


class Defaults(Strict):
    timeout: Timeout = Field(
        5.0, gt=0, le=MAX_TIMEOUT, description=f"per attempt, at most {MAX_TIMEOUT:g} s"
    )
    retries: Int = Field(0, ge=0, le=10)


class Sequence(Strict):
    """A whole test sequence. `ate schema` prints this as JSON Schema."""

    sequence: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="sequence name")
    version: str
    description: str = ""
    chip: Chip
    test_firmware: TestFirmware
    defaults: Defaults = Defaults()
    on_failure: Literal["stop", "continue"] = Field(
        "stop", description="stop at the first failed step, or run all steps"
    )
    schedule: Literal["in_order", "resource_aware"] = Field(
        "in_order",
        description="in_order: steps run as written. resource_aware: a step that uses a "
        "shared resource runs as soon as that resource is free, and waits behind steps "
        "that need none while another slot holds it; other steps keep their order",
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description='values a step writes as "${name}" (limits, pin lists, channels); '
        "replaced before validation",
    )
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per product variant, the parameters it changes (ate validate --variant "
        "X --show prints the result)",
    )
    setup: tuple[Step, ...] = Field(
        (), description="steps before the main ones; if one fails, the main steps are skipped"
    )
    steps: tuple[Step, ...] = Field(min_length=1)
    cleanup: tuple[Step, ...] = Field(
        (),
        description="steps that always run last (after a FAIL, ERROR, timeout or a stop); a "
        "failure here is recorded and never hides the main verdict",
    )
    abort_deadline: Timeout = Field(
        2.0,
        gt=0,
        le=30,
        description="when the panel is aborted (clamp opened), cleanup steps with on_abort "
        "run within this many seconds in all",
    )

    def all_steps(self) -> tuple[tuple[Group, int, Step], ...]:
        """(group, index in its group, step) in run order: setup, steps, cleanup."""
        return (
            *(("setup", i, s) for i, s in enumerate(self.setup)),
            *(("steps", i, s) for i, s in enumerate(self.steps)),
            *(("cleanup", i, s) for i, s in enumerate(self.cleanup)),
        )

    @model_validator(mode="after")
    def _references(self) -> Sequence:
        seen: dict[str, tuple[str, int]] = {}
        by_name = {step.name: step for _, _, step in self.all_steps()}
        for group, i, step in self.all_steps():
            if step.name in seen:
                other_group, other = seen[step.name]
                raise FieldError(
                    f"step name {step.name!r} is used twice (also {other_group} step "
                    f"{other + 1}); each step needs its own name",
                    (group, i, "name"),
                )
            if step.scope == "panel" and (step.needs or step.when or group == "cleanup"):
                raise FieldError(
                    "a panel step runs once for every slot: it cannot have needs or when "
                    "(those are per unit), nor be a cleanup step",
                    (group, i, "scope"),
                )
            for j, needed in enumerate(step.needs):
                if needed not in seen:
                    later = any(s.name == needed for _, _, s in self.all_steps())
                    raise FieldError(
                        f"needs {needed!r}: "
                        + (
                            "that step comes later (or is this one); a step needs earlier steps"
                            if later
                            else "no step has that name"
                        ),
                        (group, i, "needs", j),
                    )
            if step.when is not None:
                condition = conditions.parse(step.when)
                for read_step, measurement in condition.values:
                    known = by_name[read_step].measurement_names() if read_step in by_name else None
                    if known is not None and measurement not in known:
                        raise FieldError(
                            f"when reads value({read_step!r}, {measurement!r}), but step "
                            f"{read_step!r} measures {', '.join(map(repr, known))}",
                            (group, i, "when"),
                        )
                for name in condition.steps:
                    if name not in seen:
                        raise FieldError(
                            f"when reads step {name!r}, which "
                            + (
                                "comes later (or is this one)"
                                if any(s.name == name for _, _, s in self.all_steps())
                                else "does not exist"
                            ),
                            (group, i, "when"),
                        )
            if isinstance(step, RfStepBase):
                mode = step.mode
                have = radio.channels(self.chip, mode)
                if step.channel not in have:
                    allowed = (
                        f"{have[0]}..{have[-1]}"
                        if have
                        else f"none (the {self.chip} has no {mode})"
                    )
                    raise FieldError(
                        f"{mode} channel {step.channel}: the {self.chip} has {allowed}",
                        (group, i, "channel"),
                    )
            seen[step.name] = (group, i)
        return self
