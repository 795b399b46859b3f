"""Helpers for the config tests: write YAML with a marked expected error position."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A real ESP32-S3 test firmware image: the loader checks the image against the chip.
S3_IMAGE = ROOT / "firmware" / "test_fw" / "sim" / "ate_test_fw-esp32s3.bin"
S3_BOARD = ROOT / "fixtures" / "sim" / "board-s3-devkit.yaml"  # validate reads the board
MARK = "»"  # where the error must point; removed before the file is written

HEADER = """\
sequence: t
version: 1.0.0
chip: esp32s3
test_firmware: {path: fw.bin}
"""

FIXTURE_HEADER = """\
fixture: bench
controller: {driver: sim}
simulation: {board: board.yaml}
"""

Written = tuple[Path, int | None, int | None]


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Written]:
    """write(text, name) -> (path, line, column) of the » mark (None if unmarked).

    Also writes fw.bin and board.yaml next to it, the firmware that HEADER names and
    the simulated board that FIXTURE_HEADER names.
    """
    (tmp_path / "fw.bin").write_bytes(S3_IMAGE.read_bytes())
    (tmp_path / "board.yaml").write_bytes(S3_BOARD.read_bytes())

    def _write(text: str, name: str = "seq.yaml") -> Written:
        text = textwrap.dedent(text).lstrip("\n")
        line = column = None
        if MARK in text:
            before = text[: text.index(MARK)]
            line = before.count("\n") + 1
            column = len(before) - (before.rfind("\n") + 1) + 1
            text = text.replace(MARK, "", 1)
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path, line, column

    return _write


@pytest.fixture
def seq() -> Callable[[str], str]:
    """seq(steps) -> a whole sequence: HEADER, then the dedented `steps:` text."""
    return lambda steps: HEADER + textwrap.dedent(steps).lstrip("\n")


@pytest.fixture
def fixture_text() -> Callable[[str], str]:
    """fixture_text(rest) -> a whole fixture file: FIXTURE_HEADER, then `rest` dedented."""
    return lambda rest: FIXTURE_HEADER + textwrap.dedent(rest).lstrip("\n")
