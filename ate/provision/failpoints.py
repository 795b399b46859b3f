"""The fault-injection seam for power-loss tests: a checkpoint that ends the station
process at a named point between two provisioning acts, as a power cut would.

Set ATE_FAILPOINT=<point> (e.g. `cert-signed`, `efuse-intent:sb.en`) to exit with code
86 the first time any unit reaches that point. Never set on a line. Stdlib only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable

ENV = "ATE_FAILPOINT"
EXIT_CODE = 86


async def _exit_at(target: str, chip_id: str, point: str) -> None:
    if point == target:
        sys.stderr.write(f"ate: failpoint {point} reached for {chip_id}: exiting now\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)  # no cleanup, no records: as if the power went


def from_env() -> Callable[[str, str], Awaitable[None]] | None:
    """The checkpoint for Provisioner, or None when the variable is not set."""
    target = os.environ.get(ENV)
    if not target:
        return None

    async def checkpoint(chip_id: str, point: str) -> None:
        await _exit_at(target, chip_id, point)

    return checkpoint
