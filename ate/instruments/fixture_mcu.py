"""`fixture_mcu`: the fixture controller MCU's slot power, current sense and DMM-behind-a-
rail-mux, re-expressed as the instrument protocols. One object per slot is a PowerSupply
(power on/off, current from `isense.read`), a Dmm (volts from `dmm.read` on the rail its
mux side selected, amps from the current sense) and a RelayMux (rail selection): the MCU
reads slot and rail in one `dmm.read`, so selecting only remembers the rail.

These are the instruments a fixture file without an `instruments:` section has, so the
built-in steps read through roles whatever the fixture.

Imports ate.config.common, ate.drivers.fixture and ate.instruments only.
"""

from __future__ import annotations

from ate.config.common import Strict
from ate.drivers.fixture import FixtureController
from ate.instruments.base import InstrumentError, Reading
from ate.instruments.registry import InstrumentContext, InstrumentDriver, OpenInstrument


class McuSlot:
    """One slot's view of the fixture controller MCU as PowerSupply, Dmm and RelayMux."""

    __slots__ = ("_rail", "controller", "slot")

    def __init__(self, controller: FixtureController, slot: int) -> None:
        self.controller = controller
        self.slot = slot
        self._rail: str | None = None

    # PowerSupply: the slot's switch; its voltage is the fixture's, not settable.
    async def set_voltage(self, volts: float) -> None:
        raise InstrumentError(f"slot {self.slot}: the fixture MCU's slot supply is fixed")

    async def set_current_limit(self, amps: float) -> None:
        raise InstrumentError(f"slot {self.slot}: the fixture MCU's slot supply has no limit")

    async def output(self, on: bool) -> None:
        await self.controller.power(self.slot, on)

    async def measure_voltage(self) -> Reading:
        raise InstrumentError(
            f"slot {self.slot}: the fixture MCU measures the supply through its DMM "
            "(a rail_voltage step), not on the supply"
        )

    async def measure_current(self, samples: int = 1) -> Reading:
        reading = await self.controller.current(self.slot, samples)
        return Reading(reading.mean_ma, "mA")

    # Dmm
    async def measure_volts_dc(self) -> Reading:
        if self._rail is None:
            raise InstrumentError(f"slot {self.slot}: the fixture MCU's DMM has no rail selected")
        return Reading(await self.controller.dmm_volts(self.slot, self._rail), "V")

    async def measure_amps_dc(self, samples: int = 1) -> Reading:
        return await self.measure_current(samples)

    # RelayMux
    async def select(self, route: str) -> None:
        self._rail = route

    async def open_all(self) -> None:
        self._rail = None


class McuSettings(Strict):
    """The fixture MCU takes no settings: its channels are the slots' own."""


class OpenMcu:
    """The MCU for every slot; one per fixture, so that the roles `dmm` and `mux` share
    each slot's selected rail."""

    def __init__(self, controller: FixtureController) -> None:
        self.controller = controller
        self._slots: dict[int, McuSlot] = {}

    def for_slot(self, slot: int) -> McuSlot:
        found = self._slots.get(slot)
        if found is None:
            found = self._slots[slot] = McuSlot(self.controller, slot)
        return found

    async def aclose(self) -> None:
        pass  # the controller is the station's, closed with it


async def _open(ctx: InstrumentContext) -> OpenInstrument:
    if ctx.controller is None:
        raise InstrumentError(f"instrument {ctx.role!r}: fixture_mcu needs the fixture controller")
    return OpenMcu(ctx.controller)


DRIVER = InstrumentDriver(
    "fixture_mcu", ("PowerSupply", "Dmm", "RelayMux"), _open, McuSettings, one_per_fixture=True
)
