"""`line`: a fixture controller MCU speaking the ate line protocol on a serial port
(firmware/fixture_fw is one); `sim`: the same protocol to the fixture's simulated twin.

Imports ate.drivers only.
"""

from __future__ import annotations

from ate.drivers.fixture import FixtureController, LineFixtureController
from ate.drivers.registry import Driver, DriverContext


async def _open_line(ctx: DriverContext) -> FixtureController:
    assert ctx.controller_port is not None  # needs_port: checked when the file loads
    baud = ctx.fixture.controller.port.baud if ctx.fixture.controller.port else 115200
    return await LineFixtureController.open(ctx.controller_port, baud)


async def _open_sim(ctx: DriverContext) -> FixtureController:
    # The station starts the twin and opens its controller endpoint itself (runner).
    raise RuntimeError("the sim driver is opened through its simulated twin")


LINE = Driver(
    "line",
    "a controller MCU speaking the ate line protocol on controller.port",
    _open_line,
    needs_port=True,
)
SIM = Driver("sim", "the fixture's simulated twin (simulation: section)", _open_sim)
