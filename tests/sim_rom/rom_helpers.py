"""Shared constants and helpers of the simulated-ROM tests (fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

S3_MAC = "24:0a:c4:12:34:56"
C3_MAC = "24:0a:c4:65:43:21"

Cli = Callable[..., subprocess.CompletedProcess[str]]


def run_tool(
    tool: str, chip: str, url: str, args: tuple[str, ...], extra: list[str]
) -> subprocess.CompletedProcess[str]:
    """`python -m <tool> --chip <chip> --port <url> --before no-reset <extra> <args>`."""
    cmd = [sys.executable, "-m", tool, "--chip", chip, "--port", url, "--before", "no-reset"]
    return subprocess.run(
        [*cmd, *extra, *args], capture_output=True, text=True, timeout=120, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The tool's whole output, after checking that it succeeded."""
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    return text
