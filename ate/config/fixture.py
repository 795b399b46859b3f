"""The fixture description: slots and their ports, the controller, clamp, resources.

Ports are named by something stable across reboots and re-plugging (a by-path or by-id
link, or the USB adapter's serial number), never /dev/ttyUSBn.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ate.config.common import Bool, FieldError, Int, Strict

_UNSTABLE = re.compile(r"^/dev/tty(USB|ACM|S|AMA)\d+$")


class PortSpec(Strict):
    """Exactly one of: by_path, by_id, usb_serial, url, sim."""

    by_path: str | None = Field(None, pattern=r"^/dev/serial/by-path/.+")
    by_id: str | None = Field(None, pattern=r"^/dev/serial/by-id/.+")
    usb_serial: str | None = Field(None, description="the USB-serial adapter's iSerial")
    url: str | None = Field(
        None, pattern=r"^(socket|rfc2217)://.+", description="a network serial port"
    )
    sim: Bool = Field(False, description="the simulated twin makes the port")
    baud: Int = Field(115200, ge=1200, le=5_000_000)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            if _UNSTABLE.match(value):
                raise ValueError(
                    f"{value} changes across reboots; name the port by /dev/serial/by-path/..., "
                    "/dev/serial/by-id/..., {usb_serial: ...} or a socket:// url"
                )
            if value == "sim":
                return {"sim": True}
            if value.startswith("/dev/serial/by-path/"):
                return {"by_path": value}
            if value.startswith("/dev/serial/by-id/"):
                return {"by_id": value}
            if "://" in value:
                return {"url": value}
            raise ValueError(
                f"port {value!r}: allowed are /dev/serial/by-path/..., /dev/serial/by-id/..., "
                "socket://host:port, rfc2217://host:port, sim, or {usb_serial: SERIAL}"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> PortSpec:
        given = [k for k in ("by_path", "by_id", "usb_serial", "url") if getattr(self, k)]
        if self.sim:
            given.append("sim")
        if len(given) != 1:
            raise ValueError("a port needs exactly one of by_path, by_id, usb_serial, url, sim")
        return self

    @property
    def identity(self) -> str:
        """What makes two ports the same port, whatever way each is written: a device
        path with its links resolved and `//`, `..` collapsed (a by-path and a by-id link
        to one adapter are one port), a network port as host:port with localhost
        spelled 127.0.0.1 (socket:// and rfc2217:// on one endpoint are one port)."""
        if self.by_path or self.by_id:
            return os.path.realpath(os.path.normpath(self.by_path or self.by_id or ""))
        if self.url:
            return _endpoint(self.url)
        if self.usb_serial:
            return f"USB serial {self.usb_serial}"
        return "sim"


_LOOPBACK = {"localhost": "127.0.0.1", "localhost.localdomain": "127.0.0.1", "::1": "127.0.0.1"}


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").lower().rstrip(".")
    host = _LOOPBACK.get(host, host)
    if host.startswith("127."):
        host = "127.0.0.1"  # the whole 127/8 block is this machine
    return f"{host}:{port}" if port is not None else f"{host} ({url})"


class SlotSpec(Strict):
    slot: Int = Field(ge=1, le=4)
    port: PortSpec
    power: Int = Field(ge=0, description="power switch channel on the controller")
    current_sense: Int = Field(ge=0, description="current-sense channel on the controller")
    enabled: Bool = True


class ResourceSpec(Strict):
    kind: Literal["dmm", "golden_board", "shield_box", "other"] = "other"
    capacity: Int = Field(1, ge=1, le=16)
    description: str = ""
    port: PortSpec | None = Field(
        None,
        description="golden_board: its own serial port (the same test firmware in role "
        "golden); sim: the fixture's simulated twin serves it",
    )
    calibration: str | None = Field(
        None,
        description="golden_board: the path-loss calibration `ate rf golden-check` writes "
        "(relative to the fixture file); RF steps are refused without a valid one",
    )

    @model_validator(mode="after")
    def _golden_fields(self) -> ResourceSpec:
        if self.kind != "golden_board":
            for name in ("port", "calibration"):
                if getattr(self, name) is not None:
                    raise FieldError(f"{name} is for a golden_board resource", (name,))
        elif self.capacity != 1:
            # One RF space (shield box) holds one golden board, and it runs one exchange
            # at a time: two slots on the air at once would collide and corrupt both.
            raise FieldError(
                "a golden_board has capacity 1: one RF test at a time per shield box",
                ("capacity",),
            )
        return self


class ControllerSpec(Strict):
    """The fixture controller: slot power, EN/IO0 strapping, clamp, LEDs, current sense,
    by a driver chosen by name (ate.drivers.registry; `ate validate` lists them)."""

    driver: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="sim: the simulated twin; line: a controller MCU speaking the ate line "
        "protocol on `port`; dtr_rts: no controller, each slot's USB-UART DTR/RTS straps "
        "its ESP32; gpiod: Linux GPIO (libgpiod v2); or a driver a package registers",
    )
    port: PortSpec | None = None
    options: dict[str, Any] = Field(
        default_factory=dict, description="the driver's own settings (see its documentation)"
    )


class InstrumentSpec(BaseModel):
    """One role's instrument: `driver` (ate.instruments.registry) and, beside it, the
    driver's own settings, validated by the driver's model when the file loads."""

    model_config = ConfigDict(extra="allow", frozen=True)

    driver: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="scpi_psu, scpi_dmm, scpi_mux, scpi_shield_box, fixture_mcu, or a "
        "driver a package registers (entry point group ate.instruments)",
    )


Role = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,32}$")]


class SimSlotSpec(Strict):
    empty: Bool = Field(False, description="no board in this slot")
    faults: dict[str, Any] = Field(default_factory=dict, description="see the board model")
    board: str | None = Field(None, description="another board file for this slot")
    efuses: dict[str, Int] = Field(
        default_factory=dict,
        description="eFuse fields this unit arrives with (name -> value), e.g. "
        "ENABLE_SECURITY_DOWNLOAD: 1 for a unit locked by a previous station",
    )
    replay: str | None = Field(
        None,
        description="a slot log (logs/<panel>-slot<N>.jsonl, relative to the fixture file): "
        "the unit in this slot answers as the logged unit did (ate.sim.replay)",
    )

    @model_validator(mode="after")
    def _replay_alone(self) -> SimSlotSpec:
        if self.replay is not None and (self.empty or self.faults):
            raise ValueError(
                "a replayed unit answers from its log: it is not empty and takes no faults"
            )
        return self


class SimRfSpec(Strict):
    """The simulated shield box (ate/sim/rf_space.py): one medium for the golden board
    and every slot's unit."""

    path_loss_db: float = Field(40.0, ge=0, le=120, description="slot to golden board")
    slots: dict[Int, float] = Field(
        default_factory=dict, description="path loss of a slot that differs, dB"
    )
    per_channel_db: float = Field(
        0.05, ge=-2, le=2, description="path loss added per channel number (frequency slope)"
    )
    golden_board: str | None = Field(
        None, description="board file of the golden twin (default: simulation.board)"
    )

    def loss_db(self, slot: int, channel: int) -> float:
        return self.slots.get(slot, self.path_loss_db) + self.per_channel_db * channel


class SimulationSpec(Strict):
    board: str = Field(description="simulated board YAML, relative to the fixture file")
    seed: Int = 0
    wire_time: Bool = Field(
        False, description="throttle ROM-loader traffic to the UART's baud (realistic timing)"
    )
    timing: Literal["none", "line"] = Field(
        "none",
        description="none: the twins answer at once (plus the board's latency_ms); line: "
        "the line-time model (ate/sim/timing.py): flash erase/program, eFuse program, key "
        "generation and signing, boot (and the secure-boot check), RF packets take their "
        "datasheet time, and wire time is on",
    )
    preflash: str | None = Field(
        None, description="an image every unit comes with at the app offset (relative path)"
    )
    state_dir: str | None = Field(
        None,
        description="keep each slot's unit (flash and eFuses) in <state_dir>/slot<N> across "
        "runs, relative to the fixture file; without it every run starts with new units",
    )
    slots: dict[Int, SimSlotSpec] = Field(default_factory=dict)
    rf: SimRfSpec = SimRfSpec()


class FlashingSpec(Strict):
    """How this fixture's USB-serial adapters and cables take esptool traffic."""

    baud: Int = Field(921600, ge=9600, le=5_000_000, description="after the stub is running")
    stub: Bool = Field(True, description="upload esptool's flasher stub (faster, compresses)")
    compress: Bool = True


class Fixture(Strict):
    fixture: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="fixture name")
    description: str = ""
    controller: ControllerSpec
    clamp: Annotated[Int, Field(ge=0)] = Field(0, description="clamp switch input number")
    slots: tuple[SlotSpec, ...] = Field(min_length=1, max_length=4)
    resources: dict[str, ResourceSpec] = Field(default_factory=dict)
    flashing: FlashingSpec = FlashingSpec()
    simulation: SimulationSpec | None = None
    instruments: dict[Role, InstrumentSpec] = Field(
        default_factory=dict,
        description="role -> {driver: NAME, ...its settings}; steps reach instruments by "
        "role (supply, dmm, mux, shield); a role not named is the fixture controller MCU's",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Fixture:
        # FieldError.at points the message at the second of the clashing entries.
        numbers: set[int] = set()
        for i, s in enumerate(self.slots):
            if s.slot in numbers:
                raise FieldError(f"two slots have the number {s.slot}", ("slots", i, "slot"))
            numbers.add(s.slot)
        ports: dict[str, int] = {}
        controller = self.controller.port
        for i, s in enumerate(self.slots):
            if s.port.sim:
                continue
            if controller is not None and s.port.identity == controller.identity:
                raise FieldError(
                    f"slot {s.slot} is on the controller's port ({s.port.identity}); "
                    "each slot needs a port of its own",
                    ("slots", i, "port"),
                )
            if s.port.identity in ports:
                raise FieldError(
                    f"slots {ports[s.port.identity]} and {s.slot} are on one port "
                    f"({s.port.identity}); each slot needs its own",
                    ("slots", i, "port"),
                )
            ports[s.port.identity] = s.slot
        for channel, noun in (
            ("power", "power channel"),
            ("current_sense", "current-sense channel"),
        ):
            taken: dict[int, int] = {}
            for i, s in enumerate(self.slots):
                number = getattr(s, channel)
                if number in taken:
                    raise FieldError(
                        f"slots {taken[number]} and {s.slot} share {noun} {number}; "
                        f"each slot needs its own",
                        ("slots", i, channel),
                    )
                taken[number] = s.slot
        for name, res in self.resources.items():
            if res.port is None or res.port.sim:
                continue
            clash = [s.slot for s in self.slots if s.port.identity == res.port.identity]
            if clash or (controller is not None and controller.identity == res.port.identity):
                raise FieldError(
                    f"golden board {name!r} is on the port of "
                    + (f"slot {clash[0]}" if clash else "the controller")
                    + f" ({res.port.identity}); it needs a port of its own",
                    ("resources", name, "port"),
                )
        if self.controller.driver == "sim" and self.simulation is None:
            raise FieldError(
                "controller driver 'sim' needs a simulation section", ("controller", "driver")
            )
        return self

    def golden_boards(self) -> tuple[str, ...]:
        """The names of the golden_board resources, sorted."""
        return tuple(sorted(n for n, r in self.resources.items() if r.kind == "golden_board"))

    def default_golden(self) -> str | None:
        """The golden board an RF step without `golden:` uses: the fixture's only one."""
        boards = self.golden_boards()
        return boards[0] if len(boards) == 1 else None
