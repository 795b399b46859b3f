"""Write placeholder test-firmware images for the simulated DUTs, one per chip.

Each is a deterministic ~64 KiB file laid out like an ESP-IDF app image (magic 0xE9,
extended header with the chip id, one segment starting with an esp_app_desc_t naming
project "ate_test_fw" version "1.0.0", checksum, appended SHA-256), so that tools that
hash, size or sniff the image behave as with a real one. The filler is not code: these
images are for the simulator and for tests, never for flashing.

    python firmware/test_fw/sim/make_sim_images.py [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import struct
from pathlib import Path

from ate.sim.release import esp_image  # the image layout, shared with the sim release

PROJECT = b"ate_test_fw"
VERSION = b"1.0.0"
IDF_VERSION = b"v5.3"
# Fixed so that the images are byte-for-byte reproducible.
BUILD_TIME, BUILD_DATE = b"00:00:00", b"Jan  1 2025"

# chip -> (ESP image chip id, entry point, DROM load address)
CHIPS = {
    "esp32s3": (9, 0x4037_5A00, 0x3C00_0020),
    "esp32c3": (5, 0x4038_0000, 0x3C00_0020),
}
IMAGE_SIZE = 64 * 1024


def app_desc() -> bytes:
    """esp_app_desc_t, 256 bytes."""
    return struct.pack(
        "<II8s32s32s16s16s32s32sHHB3s72s",
        0xABCD5432,  # ESP_APP_DESC_MAGIC_WORD
        0,  # secure_version
        b"",
        VERSION,
        PROJECT,
        BUILD_TIME,
        BUILD_DATE,
        IDF_VERSION,
        hashlib.sha256(PROJECT + VERSION).digest(),  # stands in for the ELF's hash
        0,
        0,
        16,  # mmu_page_size, log2 (64 KiB pages)
        b"",
        b"",
    )


def image(chip: str) -> bytes:
    chip_id, entry, load_addr = CHIPS[chip]
    return esp_image(chip_id, entry, load_addr, app_desc(), IMAGE_SIZE, tag=chip)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    for chip in CHIPS:
        target = args.out / f"ate_test_fw-{chip}.bin"
        target.write_bytes(image(chip))
        print(f"wrote {target} ({target.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
