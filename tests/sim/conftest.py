"""Fixtures for the sim tests (helpers live in sim_helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sim_helpers import Duts


@pytest.fixture
async def duts() -> AsyncIterator[Duts]:
    d = Duts()
    try:
        yield d
    finally:
        await d.close()
