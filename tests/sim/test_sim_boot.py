"""The simulated second stage boots our test firmware and nothing else."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.sim.boot import BootedApp, NoApp, find_app

IMAGES = Path(__file__).resolve().parents[2] / "firmware" / "test_fw" / "sim"
S3 = (IMAGES / "ate_test_fw-esp32s3.bin").read_bytes()


@pytest.mark.parametrize("chip", ["esp32s3", "esp32c3"])
def test_test_firmware_is_recognised_with_its_sha256(chip: str) -> None:
    image = (IMAGES / f"ate_test_fw-{chip}.bin").read_bytes()
    app = find_app(chip, image + b"\xff" * 4096)  # the rest of the partition is erased
    assert app == BootedApp("ate_test_fw", "1.0.0", hashlib.sha256(image).hexdigest())


def test_blank_flash_does_not_boot() -> None:
    app = find_app("esp32s3", b"\xff" * 4096)
    assert isinstance(app, NoApp) and "invalid magic byte (0xffffffff)" in app.console


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(S3) - 1), st.integers(1, 255))
def test_any_changed_byte_stops_the_boot(pos: int, flip: int) -> None:
    bad = bytearray(S3)
    bad[pos] ^= flip
    assert isinstance(find_app("esp32s3", bytes(bad)), NoApp)


def test_truncated_image_does_not_boot() -> None:
    assert isinstance(find_app("esp32s3", S3[: len(S3) // 2]), NoApp)
