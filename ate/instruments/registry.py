"""Instrument drivers by name (entry point group `ate.instruments`, the way
ate.drivers.registry finds fixture controllers), and the instruments a fixture's roles
opened. A line's own package registers its drivers the same way (pyproject.toml):

    [project.entry-points."ate.instruments"]
    my_load = "my_line.instruments:DRIVER"

A driver says which protocols it provides, the settings it takes (a pydantic model,
validated with the fixture file's line numbers) and how to open it. Opening gives an
`OpenInstrument`: one session to the physical instrument (one lock), which hands each
slot the protocol object for that slot's channel.

Imports ate.instruments.base, ate.drivers.fixture and ate.plugins only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from pydantic import BaseModel

from ate import plugins
from ate.drivers.fixture import FixtureController
from ate.instruments.base import DMM, MUX, SUPPLY, InstrumentError

GROUP = "ate.instruments"

T = TypeVar("T")


class OpenInstrument(Protocol):
    def for_slot(self, slot: int) -> object:
        """The protocol object for `slot`'s channel (InstrumentError if it has none)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class InstrumentContext:
    """What a driver gets to open: its role, validated settings, the fixture file's folder
    (relative paths start there) and the fixture controller (for `fixture_mcu`)."""

    role: str
    settings: Any
    base_dir: Path
    controller: FixtureController | None = None


@dataclass(frozen=True)
class InstrumentDriver:
    name: str
    provides: tuple[str, ...]  # protocol names, said in errors and the README
    open: Callable[[InstrumentContext], Awaitable[OpenInstrument]]
    settings: type[BaseModel]
    # One session serves every role naming this driver (the fixture MCU: its `dmm` and
    # `mux` roles share the selected rail).
    one_per_fixture: bool = False


class UnknownInstrument(LookupError):
    pass


def names() -> list[str]:
    return plugins.registered(GROUP)


def get(name: str) -> InstrumentDriver:
    """The driver registered as `name`; UnknownInstrument naming those that are."""
    return plugins.load(GROUP, name, InstrumentDriver, "instrument driver", UnknownInstrument)


class Instruments:
    """The instruments one fixture's roles opened, for the length of a panel or a station
    session. Roles the fixture file does not name fall back to the fixture controller
    MCU: `supply` always, `dmm` and `mux` together (an MCU mux routes only to the MCU's
    own DMM, so a SCPI DMM never gets one)."""

    def __init__(self, opened: Mapping[str, OpenInstrument]) -> None:
        self.opened = dict(opened)
        self._mcu: Any = None  # the default fixture MCU, made on first use

    def for_slot(self, role: str, slot: int, controller: FixtureController | None) -> object:
        found = self.opened.get(role)
        if found is not None:
            return found.for_slot(slot)
        if self._mcu_default(role):
            if controller is None:
                raise InstrumentError(f"no instrument for role {role!r} and no fixture MCU")
            from ate.instruments.fixture_mcu import OpenMcu

            if self._mcu is None or self._mcu.controller is not controller:
                self._mcu = OpenMcu(controller)
            return self._mcu.for_slot(slot)
        raise InstrumentError(
            f"no instrument for role {role!r}; the fixture file names: "
            f"{', '.join(sorted(self.opened)) or 'none'}"
        )

    def _mcu_default(self, role: str) -> bool:
        return role == SUPPLY or (role in (DMM, MUX) and not {DMM, MUX} & self.opened.keys())

    def has(self, role: str) -> bool:
        """Whether `role` has an instrument, named in the file or the MCU's by default."""
        return role in self.opened or self._mcu_default(role)

    async def aclose(self) -> None:
        for inst in reversed(list({id(i): i for i in self.opened.values()}.values())):
            with contextlib.suppress(Exception):  # one failing close leaves the rest to close
                await inst.aclose()


NONE = Instruments({})


async def open_instruments(
    specs: Mapping[str, tuple[str, Any]],
    base_dir: Path,
    controller: FixtureController | None,
) -> Instruments:
    """Open every role (`role -> (driver name, validated settings)`), in file order; on a
    failure the ones already open are closed and the error raised."""
    opened: dict[str, OpenInstrument] = {}
    shared: dict[str, OpenInstrument] = {}
    try:
        for role, (name, settings) in specs.items():
            driver = get(name)
            if driver.one_per_fixture and name in shared:
                opened[role] = shared[name]
                continue
            opened[role] = await driver.open(
                InstrumentContext(role, settings, base_dir, controller)
            )
            if driver.one_per_fixture:
                shared[name] = opened[role]
    except BaseException:
        await Instruments(opened).aclose()
        raise
    return Instruments(opened)


def bound(obj: object, role: str, protocol: Callable[..., T]) -> T:
    """`obj` as `protocol` (a runtime-checkable protocol class of ate.instruments.base;
    typed as a callable because mypy takes no protocol class for a `type[T]`), or an
    InstrumentError saying the role's driver is not one."""
    if not isinstance(protocol, type) or not isinstance(obj, protocol):
        raise InstrumentError(
            f"the instrument in role {role!r} ({type(obj).__name__}) is not a "
            f"{getattr(protocol, '__name__', protocol)}"
        )
    return cast(T, obj)
