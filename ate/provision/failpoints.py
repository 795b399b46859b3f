"""The fault-injection seam for power-loss and shutdown tests: a checkpoint that ends the
station process at a named point between two provisioning acts, as a power cut would, or
holds it there.

Set ATE_FAILPOINT=<point> (e.g. `cert-signed`, `efuse-intent:sb.en`) to exit with code
86 the first time any unit reaches that point; ATE_FAILPOINT=kill:<point> sends the
process SIGKILL there instead. ATE_FAILPOINT=pause:<point> instead holds
the unit there (saying so on stderr) until the process gets SIGUSR1, at most PAUSE_MAX_S:
a test can signal the station while an act is in progress. Never set on a line. Stdlib
only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable

ENV = "ATE_FAILPOINT"
EXIT_CODE = 86
PAUSE_MAX_S = 120.0


async def _exit_at(target: str, chip_id: str, point: str) -> None:
    if point == target:
        sys.stderr.write(f"ate: failpoint {point} reached for {chip_id}: exiting now\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)  # no cleanup, no records: as if the power went


async def _pause_at(target: str, chip_id: str, point: str) -> None:
    if point != target:
        return
    resume = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, resume.set)
    sys.stderr.write(f"ate: failpoint {point} reached for {chip_id}: paused until SIGUSR1\n")
    sys.stderr.flush()
    try:
        async with asyncio.timeout(PAUSE_MAX_S):
            await resume.wait()
    except TimeoutError:
        pass
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


async def _kill_at(target: str, chip_id: str, point: str) -> None:
    if point == target:
        sys.stderr.write(f"ate: failpoint {point} reached for {chip_id}: SIGKILL\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def from_env() -> Callable[[str, str], Awaitable[None]] | None:
    """The checkpoint for Provisioner, or None when the variable is not set."""
    target = os.environ.get(ENV)
    if not target:
        return None
    if target.startswith("kill:"):
        kill_point = target.removeprefix("kill:")

        async def kill(chip_id: str, at: str) -> None:
            await _kill_at(kill_point, chip_id, at)

        return kill
    if target.startswith("pause:"):
        point = target.removeprefix("pause:")

        async def pause(chip_id: str, at: str) -> None:
            await _pause_at(point, chip_id, at)

        return pause

    async def checkpoint(chip_id: str, point: str) -> None:
        await _exit_at(target, chip_id, point)

    return checkpoint
