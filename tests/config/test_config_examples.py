"""The example sequences and the repository's fixtures load without a single complaint."""

from __future__ import annotations

from pathlib import Path

import pytest

from ate.config.loader import load_fixture, load_sequence
from ate.config.sequence import PluginStep

ROOT = Path(__file__).resolve().parents[2]
SEQUENCES = sorted((ROOT / "sequences").glob("*.yaml"))
# fixtures/sim/ holds board models; *-station.yaml are station files (tests/station).
FIXTURES = sorted(p for p in (ROOT / "fixtures").glob("*.yaml") if "-station" not in p.name)
STEP_TYPES = {
    "gpio_loopback", "gpio_read", "i2c_probe", "i2c_read", "spi_jedec", "spi_transfer",
    "adc", "rail_voltage", "supply_current", "rf_golden",
}  # fmt: skip


def test_examples_exist() -> None:
    names = {p.name for p in SEQUENCES}
    assert {"s3-devkit-functional.yaml", "c3-devkit-functional.yaml", "minimal.yaml"} <= names


@pytest.mark.parametrize("path", SEQUENCES, ids=lambda p: p.name)
def test_example_sequence_loads(path: Path) -> None:
    loaded = load_sequence(path)
    assert loaded.firmware_path.is_file()
    assert len(loaded.sha256) == len(loaded.firmware_sha256) == 64
    assert all(step.description for step in loaded.model.steps), "describe every step"


def test_s3_example_uses_every_step_type_but_plugin() -> None:
    seq = load_sequence(ROOT / "sequences" / "s3-devkit-functional.yaml").model
    assert {step.type for step in seq.steps} == STEP_TYPES
    assert not any(isinstance(step, PluginStep) for step in seq.steps)
    assert seq.chip == "esp32s3" and seq.on_failure == "continue"
    assert (seq.defaults.timeout, seq.defaults.retries) == (2.0, 1)


def test_sim_firmware_images_are_plausible() -> None:
    for chip in ("esp32s3", "esp32c3"):
        image = (ROOT / "firmware/test_fw/sim" / f"ate_test_fw-{chip}.bin").read_bytes()
        assert image[0] == 0xE9
        assert b"ate_test_fw" in image and b"1.0.0" in image
        assert 60_000 < len(image) <= 65_536


@pytest.mark.skipif(not FIXTURES, reason="no fixture files in fixtures/ yet")
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_fixture_loads(path: Path) -> None:
    assert load_fixture(path).model.slots
