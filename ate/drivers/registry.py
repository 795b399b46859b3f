"""Fixture controller drivers, chosen by name in the fixture file (labgrid's way): each
driver says what it binds to, the settings it takes (a pydantic model, validated with
the fixture file's line numbers) and how to open it. Drivers are found through the
`ate.fixture_drivers` entry point group, so a line's own driver package registers the
same way the built-in ones do (pyproject.toml):

    [project.entry-points."ate.fixture_drivers"]
    my_mcu = "my_line.drivers:DRIVER"

Built in: `sim` (the simulated twin), `line` (a controller MCU speaking the line
protocol), `dtr_rts` (no controller: each slot's USB-UART DTR/RTS straps its ESP32),
`gpiod` (Linux GPIO through libgpiod v2).

Imports ate.config, ate.drivers and ate.plugins only; a driver's own dependencies load when it
opens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ate import plugins
from ate.config.fixture import Fixture
from ate.drivers.fixture import FixtureController

GROUP = "ate.fixture_drivers"


@dataclass(frozen=True)
class DriverContext:
    """What a driver gets to open a fixture: its description, where its files are, and
    the ports its slots resolve to (a simulated twin's endpoints included)."""

    fixture: Fixture
    base_dir: Path
    settings: Any  # the driver's validated settings (its `settings` model), or None
    controller_port: str | None  # resolved `controller.port`, if the fixture names one
    slot_ports: Mapping[int, Callable[[], str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Driver:
    name: str
    binds_to: str  # said in `ate validate` errors and the README
    open: Callable[[DriverContext], Awaitable[FixtureController]]
    settings: type[BaseModel] | None = None
    needs_port: bool = False  # `controller.port` required


class UnknownDriver(LookupError):
    pass


def names() -> list[str]:
    return plugins.registered(GROUP)


def get(name: str) -> Driver:
    """The driver registered as `name`; UnknownDriver naming those that are."""
    return plugins.load(GROUP, name, Driver, "controller driver", UnknownDriver)
