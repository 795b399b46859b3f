"""Chip descriptions: one file each, found by any spelling, and what the rest of ate
reads from them agrees with esptool and espefuse (the chip's own tools)."""

from __future__ import annotations

import pytest
from esptool.targets import CHIP_DEFS

from ate import chips
from ate.config.sequence import Chip as SequenceChip
from ate.model.radio import channels
from ate.provision import efuse_plan


def test_every_chip_a_sequence_may_target_has_a_description() -> None:
    assert set(SequenceChip.__args__) == set(chips.names())  # type: ignore[attr-defined]


@pytest.mark.parametrize("spelling", ["esp32s3", "ESP32-S3", "esp32-s3", "ESP32_S3", " Esp32S3 "])
def test_a_chip_is_found_by_any_spelling(spelling: str) -> None:
    assert chips.get(spelling).name == "esp32s3"


def test_an_unknown_chip_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(chips.UnknownChip, match=r"esp32p4.*known: esp32, esp32c3"):
        chips.get("esp32p4")


@pytest.mark.parametrize("chip", chips.all_chips(), ids=chips.names())
def test_descriptions_agree_with_esptool(chip: chips.Chip) -> None:
    target = CHIP_DEFS[chip.name]
    assert chip.display == target.CHIP_NAME
    if chip.image_layout is not None:
        assert chip.image_layout.chip_id == target.IMAGE_CHIP_ID
    assert set(chip.flash_encryption_key_bytes) <= {32, 64}


def test_provisioned_chips_are_the_ones_with_an_efuse_plan() -> None:
    assert efuse_plan.SUPPORTED_CHIPS == ("esp32c3", "esp32s3")
    for name in efuse_plan.SUPPORTED_CHIPS:
        chip = chips.get(name)
        # An XTS-AES-256 key is the plan's two-block burn: the purpose exists on the chip.
        xts256 = efuse_plan.SecuritySpec(fe_xts_256=True)
        if 64 in chip.flash_encryption_key_bytes:
            assert len(efuse_plan.build_plan(name, xts256).steps) > 0
        else:
            with pytest.raises(efuse_plan.PlanError, match="no XTS-AES-256"):
                efuse_plan.build_plan(name, xts256)


def test_radio_channels_come_from_the_description() -> None:
    assert channels("esp32h2", "wifi") == ()
    assert channels("esp32c3", "wifi") == tuple(range(1, 15))
    assert channels("esp32c3", "ble") == (37, 38, 39)
