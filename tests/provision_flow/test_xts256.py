"""XTS-AES-256 flash encryption on the ESP32-S3 (`flash_encryption: {key: host, xts: 256}`):
a 512-bit key in two key blocks, the images and the device key sealed with it, the unit
booting with it; a power cut between and inside the burns finished like any other; the
C3, which has no XTS-AES-256, refused with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prov_bench import ProvBench, write_fixture, write_sequence
from prov_helpers import device_key_scalar
from test_power_loss import SLOTS, _cut_nth_inside, assert_finished, no_false_pass

from ate.cli.main import main
from ate.model.verdict import Verdict
from ate.sim import devkey
from ate.sim.devkit import DevKit, make_dev_profile
from ate.sim.prod_boot import engine_key

XTS_256_KEY_1, XTS_256_KEY_2, SECURE_BOOT_DIGEST0 = 2, 3, 9  # espefuse purpose ids (S3)


@pytest.fixture(scope="module")
def xts256_kit(tmp_path_factory: pytest.TempPathFactory) -> DevKit:
    return make_dev_profile(tmp_path_factory.mktemp("kit256") / "devkit", xts=256)


async def test_xts256_end_to_end(make_prov_bench: Any, xts256_kit: DevKit) -> None:
    bench: ProvBench = make_prov_bench(kit=xts256_kit, slots=2)
    result = await bench.run()
    for slot, r in result.slots.items():
        assert r.verdict is Verdict.PASS, r.reason
        assert_finished(bench, slot, result)
        # The key in BLOCK_KEY0 and BLOCK_KEY1, the secure boot digest in the next free one.
        purposes = [int(bench.efuse(slot, f"KEY_PURPOSE_{i}")) for i in range(3)]
        assert purposes == [XTS_256_KEY_1, XTS_256_KEY_2, SECURE_BOOT_DIGEST0]
        key = engine_key("esp32s3", bench.efuses(slot))
        assert key is not None and len(key) == 64
        boot = r.extra["provisioning"]["boot_check"]
        assert boot["status"] == "booted" and boot["banner"]["fe"] == "1"
        d = device_key_scalar(bench, slot)
        assert d is not None
        raw = bench.flash(slot).read(devkey.DEV_KEY_OFFSET, devkey.DEV_KEY_SIZE)
        assert devkey.decode_record(raw) is None  # sealed, not plain


# Where the two key blocks are journalled: cut the station between them.
XTS_POINTS = (
    "efuse-intent:fe.key",
    "efuse-intent:fe.key2",
    "efuse-burned:fe.key",
    "efuse-burned:fe.key2",
)


async def test_xts256_power_cut_between_acts(make_prov_bench: Any, xts256_kit: DevKit) -> None:
    bench: ProvBench = make_prov_bench(kit=xts256_kit, slots=SLOTS, seed=31)
    power_cut, cut = bench.cuts_at(dict(enumerate(XTS_POINTS, 1)))
    first = await bench.run(checkpoint=power_cut)
    assert cut == set(range(1, SLOTS + 1))
    no_false_pass(bench, first)
    second = await bench.run()
    for slot in range(1, SLOTS + 1):
        assert_finished(bench, slot, second, first)


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-applied"])
async def test_xts256_power_cut_inside_each_block_program(
    make_prov_bench: Any, xts256_kit: DevKit, applied: bool
) -> None:
    """The eFuse program operations in order: the serial's data, its write protection,
    then the lock-down batch (the two key blocks and the digest block one after the
    other in espefuse's order, BLOCK0, BLOCK0's lock bits), then the download fuse.
    Every operation is cut in some slot, before and after it lands; cut between the
    two key blocks, one half is on the chip and the other nowhere: the missing half is
    made afresh and everything encrypted with the key again."""
    start = 1
    while True:
        bench = make_prov_bench(kit=xts256_kit, slots=SLOTS, seed=300 + start)
        if not await _cut_nth_inside(bench, "efuse-burn", start, applied):
            break
        start += SLOTS
    assert start > 5  # every operation of the eight was cut in some slot


def test_c3_with_xts256_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = make_dev_profile(tmp_path / "kit", chip="esp32c3", xts=256)
    fixture = write_fixture(tmp_path, slots=1)
    sequence = write_sequence(tmp_path)
    capsys.readouterr()
    code = main(
        [
            "run",
            "-f",
            str(fixture),
            "-s",
            str(sequence),
            "--profile",
            str(kit.profile),
            "--state",
            str(tmp_path / "state"),
            "--out",
            str(tmp_path / "out"),
            "--no-live",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    (line,) = err
    assert line.startswith(f"ate: {kit.profile}:"), line  # file, line, column
    assert "security.flash_encryption.xts: the esp32c3 has no XTS-AES-256" in line, line
    doc = yaml.safe_load(kit.profile.read_text())
    assert doc["security"]["flash_encryption"]["xts"] == 256
