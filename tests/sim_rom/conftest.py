"""Fixtures for the simulated ROM loader: servers in threads, real esptool/espefuse CLIs."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rom_helpers import C3_MAC, S3_MAC, Cli, run_tool

from ate.sim.rom.server import RomServerThread


@pytest.fixture
def esptool_cli() -> Cli:
    """`esptool_cli(url, *args, chip=...)`: the real esptool CLI in a subprocess."""

    def run(url: str, *args: str, chip: str = "esp32s3") -> subprocess.CompletedProcess[str]:
        # One connection attempt: a silent unit fails in about a second, not seven.
        return run_tool("esptool", chip, url, args, ["--connect-attempts", "1"])

    return run


@pytest.fixture
def espefuse_cli() -> Cli:
    """`espefuse_cli(url, *args, chip=...)`: the real espefuse CLI, never asking to confirm."""

    def run(url: str, *args: str, chip: str = "esp32s3") -> subprocess.CompletedProcess[str]:
        return run_tool("espefuse", chip, url, args, ["--do-not-confirm"])

    return run


@pytest.fixture
def s3() -> Iterator[RomServerThread]:
    with RomServerThread("esp32s3", mac=S3_MAC, seed=1) as rom:
        yield rom


@pytest.fixture
def c3() -> Iterator[RomServerThread]:
    with RomServerThread("esp32c3", mac=C3_MAC, seed=2) as rom:
        yield rom


@pytest.fixture
def image(tmp_path: Path) -> Callable[[int], Path]:
    """`image(size)`: a file of random bytes (half compressible), generated per test."""
    rng = random.Random()
    count = 0

    def make(size: int) -> Path:
        nonlocal count
        count += 1
        half = size // 2
        data = rng.randbytes(half) + bytes(rng.choice(b"ab\x00\xff") for _ in range(size - half))
        path = tmp_path / f"image{count}.bin"
        path.write_bytes(data)
        return path

    return make
