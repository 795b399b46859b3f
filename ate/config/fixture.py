"""The fixture description: slots and their ports, the controller, clamp, resources.

Ports are named by something stable across reboots and re-plugging (a by-path or by-id
link, or the USB adapter's serial number), never /dev/ttyUSBn.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ate.config.common import FieldError, Strict

_UNSTABLE = re.compile(r"^/dev/tty(USB|ACM|S|AMA)\d+$")


class PortSpec(Strict):
    """Exactly one of: by_path, by_id, usb_serial, url, sim."""

    by_path: str | None = Field(None, pattern=r"^/dev/serial/by-path/.+")
    by_id: str | None = Field(None, pattern=r"^/dev/serial/by-id/.+")
    usb_serial: str | None = Field(None, description="the USB-serial adapter's iSerial")
    url: str | None = Field(
        None, pattern=r"^(socket|rfc2217)://.+", description="a network serial port"
    )
    sim: bool = Field(False, description="the simulated twin makes the port")
    baud: int = Field(115200, ge=1200, le=5_000_000)

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
        """What makes two ports the same port (two slots must never share one)."""
        for k in ("by_path", "by_id", "usb_serial", "url"):
            if v := getattr(self, k):
                return f"{k}:{v}"
        return "sim"


class SlotSpec(Strict):
    slot: int = Field(ge=1, le=4)
    port: PortSpec
    power: int = Field(ge=0, description="power switch channel on the controller")
    current_sense: int = Field(ge=0, description="current-sense channel on the controller")
    enabled: bool = True


class ResourceSpec(Strict):
    kind: Literal["dmm", "golden_board", "shield_box", "other"] = "other"
    capacity: int = Field(1, ge=1, le=16)
    description: str = ""


class ControllerSpec(Strict):
    """The fixture controller: slot power, EN/IO0 strapping, clamp, LEDs, current sense."""

    driver: Literal["sim", "line"] = Field(
        description="sim: the built-in simulated twin; line: a controller MCU speaking the "
        "ate line protocol on `port`"
    )
    port: PortSpec | None = None

    @model_validator(mode="after")
    def _port(self) -> ControllerSpec:
        if self.driver == "line" and self.port is None:
            raise ValueError("driver 'line' needs a port")
        return self


class SimSlotSpec(Strict):
    empty: bool = Field(False, description="no board in this slot")
    faults: dict[str, Any] = Field(default_factory=dict, description="see the board model")
    board: str | None = Field(None, description="another board file for this slot")
    efuses: dict[str, int] = Field(
        default_factory=dict,
        description="eFuse fields this unit arrives with (name -> value), e.g. "
        "ENABLE_SECURITY_DOWNLOAD: 1 for a unit locked by a previous station",
    )


class SimulationSpec(Strict):
    board: str = Field(description="simulated board YAML, relative to the fixture file")
    seed: int = 0
    wire_time: bool = Field(
        False, description="throttle ROM-loader traffic to the UART's baud (realistic timing)"
    )
    preflash: str | None = Field(
        None, description="an image every unit comes with at the app offset (relative path)"
    )
    state_dir: str | None = Field(
        None,
        description="keep each slot's unit (flash and eFuses) in <state_dir>/slot<N> across "
        "runs, relative to the fixture file; without it every run starts with new units",
    )
    slots: dict[int, SimSlotSpec] = Field(default_factory=dict)


class FlashingSpec(Strict):
    """How this fixture's USB-serial adapters and cables take esptool traffic."""

    baud: int = Field(921600, ge=9600, le=5_000_000, description="after the stub is running")
    stub: bool = Field(True, description="upload esptool's flasher stub (faster, compresses)")
    compress: bool = True


class Fixture(Strict):
    fixture: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="fixture name")
    description: str = ""
    controller: ControllerSpec
    clamp: Annotated[int, Field(ge=0)] = Field(0, description="clamp switch input number")
    slots: tuple[SlotSpec, ...] = Field(min_length=1, max_length=4)
    resources: dict[str, ResourceSpec] = Field(default_factory=dict)
    flashing: FlashingSpec = FlashingSpec()
    simulation: SimulationSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Fixture:
        # FieldError.at points the message at the second of the clashing entries.
        numbers: set[int] = set()
        for i, s in enumerate(self.slots):
            if s.slot in numbers:
                raise FieldError(f"two slots have the number {s.slot}", ("slots", i, "slot"))
            numbers.add(s.slot)
        ports: dict[str, int] = {}
        for i, s in enumerate(self.slots):
            if s.port.sim:
                continue
            if s.port.identity in ports:
                raise FieldError(
                    f"slots {ports[s.port.identity]} and {s.slot} are on one port "
                    f"({s.port.identity}); each slot needs its own",
                    ("slots", i, "port"),
                )
            ports[s.port.identity] = s.slot
        if self.controller.driver == "sim" and self.simulation is None:
            raise FieldError(
                "controller driver 'sim' needs a simulation section", ("controller", "driver")
            )
        return self
