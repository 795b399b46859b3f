"""Fixtures for the provisioning flow tests (the bench itself is in prov_bench.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prov_bench import ProvBench, write_fixture, write_sequence

from ate.config.loader import load_fixture, load_sequence
from ate.sim.devkit import DevKit, make_dev_profile
from ate.sim.fixture_twin import SimFixtureThread


@pytest.fixture(scope="session")
def dev_kit(tmp_path_factory: pytest.TempPathFactory) -> DevKit:
    """One development kit for the session (RSA-3072 and EC keys take a moment)."""
    return make_dev_profile(tmp_path_factory.mktemp("kit") / "devkit")


@pytest.fixture
def make_prov_bench(tmp_path: Path, dev_kit: DevKit) -> Iterator[Callable[..., ProvBench]]:
    twins: list[SimFixtureThread] = []

    def make(kit: DevKit | None = None, **kw: Any) -> ProvBench:
        where = tmp_path / f"bench{len(twins)}"  # each its own units, ledger and outputs
        where.mkdir()
        fixture = load_fixture(write_fixture(where, **kw))
        twin = SimFixtureThread(fixture.model, fixture.base_dir)
        twin.__enter__()
        twins.append(twin)
        sequence = load_sequence(write_sequence(where))
        return ProvBench(where, fixture, sequence, kit or dev_kit, twin)

    yield make
    for twin in twins:
        twin.close()
