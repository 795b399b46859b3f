"""Whether a file is an ESP app image for a chip: esptool's own image parser decides
(magic byte, segments, checksum, appended SHA-256, the chip id in the extended header).

Used when a sequence is loaded, so `ate validate` refuses a wrong or corrupt test firmware
rather than the ROM phase of a run. May import esptool and the standard library only.
"""

from __future__ import annotations

import esptool.targets
from esptool.bin_image import LoadFirmwareImage

_MAGIC = 0xE9


def check_app_image(data: bytes, chip: str) -> None:
    """Return if `data` is an image esptool accepts for `chip`; else ValueError saying
    what is wrong, in words for the test engineer."""
    if not data:
        raise ValueError("the file is empty")
    if data[0] != _MAGIC:
        raise ValueError(
            f"not an ESP image: its first byte is {data[0]:#04x}, an ESP image starts "
            f"with {_MAGIC:#04x}"
        )
    chip_def = esptool.targets.CHIP_DEFS.get(chip)
    if chip_def is None:
        raise ValueError(f"no esptool support for chip {chip!r}")
    try:
        image = LoadFirmwareImage(chip, data)
        image.verify()
    except Exception as exc:  # esptool's parser raises FatalError, struct.error, ...
        raise ValueError(f"not a valid ESP image: {exc or type(exc).__name__}") from None
    expected = int(chip_def.IMAGE_CHIP_ID)
    if image.chip_id != expected:
        names = [
            n for n, c in esptool.targets.CHIP_DEFS.items() if image.chip_id == c.IMAGE_CHIP_ID
        ]
        built_for = names[0] if names else f"chip id {image.chip_id}"
        raise ValueError(
            f"the image is built for {built_for}, not {chip} (chip id {image.chip_id} in "
            f"its extended header; {chip} is {expected})"
        )
    calculated = image.calculate_checksum()
    if calculated != image.checksum:
        raise ValueError(
            f"corrupt ESP image: checksum {image.checksum:#04x}, its contents give "
            f"{calculated:#04x}"
        )
    stored = getattr(image, "stored_digest", None)
    if stored is not None and stored != getattr(image, "calc_digest", None):
        raise ValueError("corrupt ESP image: its appended SHA-256 does not match its contents")
