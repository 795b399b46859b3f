"""`ate sim fixture FILE`: a simulated fixture in the foreground, for a person at a terminal.

May import ate.protocol, ate.config, ate.model and ate.sim only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from ate.config.errors import InputError
from ate.config.loader import load_fixture
from ate.sim.dut_server import TRANSPORTS
from ate.sim.fixture_check import check_simulation
from ate.sim.fixture_twin import SimFixture


def run_sim_fixture(fixture_path: str, transport: str, *, power_on: bool = False) -> int:
    """Serve the fixture until Ctrl-C (or SIGTERM); print its endpoints as one JSON line
    (and, under `timing: line`, the model's account as another when it stops).

    Returns the process exit code: 0 after a clean stop, 2 for bad input.
    """
    if transport not in TRANSPORTS:
        print(f"transport {transport!r}: allowed are {', '.join(TRANSPORTS)}", file=sys.stderr)
        return 2
    path = Path(fixture_path)
    try:
        loaded = load_fixture(path)
        check_simulation(loaded)  # file:line:col for what the twin would refuse
        sim = SimFixture(loaded.model, path.parent, transport=transport)
    except InputError as exc:
        print(exc, file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sim, power_on))
    return 0


async def _serve(sim: SimFixture, power_on: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGINT explicitly too: a parent that runs us with SIGINT ignored (nohup-style
    # runners, background jobs) leaves Python without its KeyboardInterrupt handler.
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    await sim.start()
    try:
        if power_on:
            for n in sim.endpoints:
                server = sim.server(n)
                if server is not None:
                    server.power(True)
        info = {
            "fixture": sim.fixture.fixture,
            "transport": sim.transport,
            "controller": sim.controller_endpoint,
            "slots": {str(n): ep for n, ep in sim.endpoints.items()},
            "golden": sim.golden_endpoints,
            "empty": [n for n in sim.endpoints if sim.board(n) is None],
        }
        print(json.dumps(info), flush=True)
        hint = "" if power_on else " Boards are off until the controller gets `!2 power.set 1 1`."
        print(
            f"Open a port: python -m serial.tools.miniterm --eol LF --echo "
            f"{sim.controller_endpoint} 115200, then type `!1 ping`.{hint} Ctrl-C stops.",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        await sim.stop()
        if sim.timing is not None:  # the model's account, for whoever reads our stdout
            print(json.dumps({"line_time": sim.line_time()}), flush=True)
