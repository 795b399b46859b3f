"""What the esp drivers decide without a device: write plans, error wording, mapping."""

from __future__ import annotations

import pytest
from esptool.util import FatalError, NotImplementedInROMError
from hypothesis import given
from hypothesis import strategies as st

from ate.drivers.esp.errors import (
    BaudRefused,
    ImageOverlap,
    ImageTooLarge,
    VerifyFailed,
    WrongChip,
)
from ate.drivers.esp.flasher import SECTOR, EspFlasher, _port_problem, check_images

FLASH = 8 << 20


def test_adjacent_sector_aligned_images_are_fine() -> None:
    check_images([(0x0, bytes(0x8000)), (0x8000, bytes(0x1000)), (0x10000, b"x")], FLASH)


def test_an_image_past_the_end_of_flash_is_refused_with_the_numbers() -> None:
    with pytest.raises(ImageTooLarge) as e:
        check_images([(FLASH - 0x1000, bytes(0x1001))], FLASH)
    assert "past the end of the 8192 KiB flash" in str(e.value)
    assert e.value.offset == FLASH - 0x1000 and e.value.size == 0x1001


def test_overlap_and_shared_erase_sector_are_refused() -> None:
    with pytest.raises(ImageOverlap):
        check_images([(0x10000, bytes(0x2000)), (0x11000, b"y")], FLASH)
    # No byte in common, but writing the second erases the first one's last sector.
    with pytest.raises(ImageOverlap) as e:
        check_images([(0x0, bytes(0x800)), (0x800, bytes(0x800))], FLASH)
    assert "erase sector" in str(e.value)


def test_empty_or_negative_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="empty image"):
        check_images([(0, b"")], FLASH)
    with pytest.raises(ValueError, match="negative"):
        check_images([(-1, b"x")], FLASH)


spans = st.lists(
    st.tuples(st.integers(0, 64 * SECTOR), st.integers(1, 8 * SECTOR)), min_size=1, max_size=5
)


@given(spans)
def test_accepted_plans_never_share_a_sector(plan: list[tuple[int, int]]) -> None:
    images = [(offset, bytes(size)) for offset, size in plan]
    sectors = [set(range(o // SECTOR, (o + s - 1) // SECTOR + 1)) for o, s in plan]
    shared = any(a & b for i, a in enumerate(sectors) for b in sectors[i + 1 :])
    if shared:
        with pytest.raises(ImageOverlap):
            check_images(images, FLASH)
    else:
        check_images(images, FLASH)


def test_unknown_chip_fails_at_construction_not_at_connect() -> None:
    with pytest.raises(ValueError, match="unknown chip"):
        EspFlasher("socket://127.0.0.1:1", chip="esp33", log=print)
    assert EspFlasher("socket://127.0.0.1:1", chip="ESP32-S3", log=print).chip == "esp32s3"


def test_messages_say_what_to_do() -> None:
    assert "found esp32s3, this station expects esp32c3" in str(WrongChip("esp32s3", "esp32c3"))
    failed = VerifyFailed(0x10000, "a" * 32, "b" * 32, erased=True)
    assert "expected MD5 " + "a" * 32 in str(failed) and "write never landed" in str(failed)


@pytest.mark.parametrize(
    ("detail", "problem"),
    [
        ("[Errno 2] could not open port /dev/ttyUSB9: [Errno 2] No such file", "gone"),
        ("Could not open port socket://127.0.0.1:1: [Errno 111] Connection refused", "gone"),
        ("[Errno 13] could not open port /dev/ttyUSB0: [Errno 13] Permission denied", "refused"),
        ("could not open port 'COM3': PermissionError(13, 'Access is denied.')", "busy"),
    ],
)
def test_port_problems_are_told_apart(detail: str, problem: str) -> None:
    assert _port_problem(detail) == problem


class FakeLoader:
    """Only what EspFlasher._set_baud touches, failing the way esptool does."""

    CHIP_NAME = "ESP32-S3"
    secure_download_mode = False

    def __init__(self, change: Exception | None = None, probe: Exception | None = None) -> None:
        self.change, self.probe = change, probe

    def change_baud(self, baud: int) -> None:
        if self.change is not None:
            raise self.change

    def read_reg(self, addr: int) -> int:
        if self.probe is not None:
            raise self.probe
        return 0


def test_baud_refusals_become_baud_refused_with_the_reason() -> None:
    f = EspFlasher("socket://127.0.0.1:1", chip="esp32s3", baud=3_000_000, log=lambda _: None)
    adapter = FatalError("Failed to set baud rate 3000000. The driver may not support this rate.")
    with pytest.raises(BaudRefused, match="driver may not support") as e:
        f._set_baud(FakeLoader(change=adapter))
    assert e.value.baud == 3_000_000 and "adapter supports" in str(e.value)
    silent = FatalError("Timed out waiting for packet header")
    with pytest.raises(BaudRefused, match="does not answer at the new rate"):
        f._set_baud(FakeLoader(probe=silent))
    assert f._set_baud(FakeLoader()) == 3_000_000
    # A ROM that cannot change rate keeps 115200: slower, not an error.
    assert (
        f._set_baud(FakeLoader(change=NotImplementedInROMError(FakeLoader(), f._set_baud)))
        == 115200
    )
