"""The boot check after lock-down: the locked unit boots its production image (secure boot
verified against the burned digest, flash decrypted with the burned key) and its banner
names the identity the station provisioned; a wrong digest or key fails the slot here,
recorded, the unit still locked."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from prov_bench import ProvBench
from prov_helpers import device_key_scalar, locked_fuses_ok, station_state

from ate.config.errors import InputError
from ate.model.verdict import Verdict
from ate.provision.profile import open_profile
from ate.provision.release import encrypt_for_flash, load_release
from ate.sim import devkey
from ate.sim import release as sim_release
from ate.sim.devkit import make_dev_profile
from ate.sim.release import APP_OFFSET, make_signing_key, make_sim_release


def boot_acts(bench: ProvBench, mac: str) -> list[Any]:
    with station_state(bench.state_dir) as (_store, journal):
        return [a for a in journal.acts(mac) if a.act == "boot.check"]


async def test_locked_unit_boots_production_and_reports_its_identity(make_prov_bench: Any) -> None:
    bench: ProvBench = make_prov_bench(slots=1)
    result = await bench.run()
    r = result.slots[1]
    assert r.verdict is Verdict.PASS, r.reason
    prov = r.extra["provisioning"]
    boot = prov["boot_check"]
    assert boot["status"] == "booted" and boot["problems"] == []
    banner = boot["banner"]
    assert banner["serial"] == prov["serial"]
    assert banner["cert"] == prov["certificate"]["fingerprint"]
    assert banner["sb"] == "1" and banner["fe"] == "1"
    assert banner["version"] == load_release(_release_of(bench)).version
    assert r.unit is not None
    (act,) = boot_acts(bench, r.unit.mac)
    assert act.status == "done"


def _release_of(bench: ProvBench) -> Path:
    doc = yaml.safe_load(bench.kit.profile.read_text())
    return bench.kit.directory / doc["release"]


def _on_written(bench: ProvBench, slot: int, write: Any) -> Any:
    """A checkpoint that, when the unit's firmware is written (before any lock-down
    fuse), replaces the app on its flash with `write()` (what a wrong build, a mixed-up
    key or a tampered station would leave there)."""

    async def checkpoint(chip_id: str, point: str) -> None:
        if point != "written":
            return
        data = write()
        flash = bench.flash(slot)

        async def replace() -> None:
            flash.erase(APP_OFFSET, (len(data) + 0xFFF) // 0x1000 * 0x1000)
            flash.program(APP_OFFSET, data)

        bench.twin.run(replace())

    return checkpoint


async def test_wrong_secure_boot_digest_fails_the_boot_check(
    make_prov_bench: Any, tmp_path: Path
) -> None:
    """The app on flash is signed with a key whose digest is not the one burned."""
    kit = make_dev_profile(tmp_path / "kit", flash_encryption="off")
    other = make_sim_release(
        tmp_path / "other", "esp32s3", signing_key=make_signing_key(tmp_path / "other.pem")
    )
    app = (other.parent / "app.bin").read_bytes()
    bench: ProvBench = make_prov_bench(kit=kit, slots=1)
    result = await bench.run(checkpoint=_on_written(bench, 1, lambda: app))
    r = result.slots[1]
    assert r.verdict is Verdict.FAIL, r.reason
    assert r.reason.startswith("boot check after lock-down: the unit did not boot"), r.reason
    assert "secure_boot_v2: app" in r.reason
    assert r.reason.endswith("(the unit is locked: nothing can be undone)")
    assert bench.efuse(1, "SECURE_BOOT_EN") and bench.efuse(1, "ENABLE_SECURITY_DOWNLOAD")
    boot = r.extra["provisioning"]["boot_check"]
    assert boot["status"] == "failed" and boot["banner"] is None
    assert r.unit is not None
    (act,) = boot_acts(bench, r.unit.mac)
    assert act.status == "failed"


async def test_wrong_flash_encryption_key_fails_the_boot_check(make_prov_bench: Any) -> None:
    """The app on flash was encrypted with another key than the one burned."""
    bench: ProvBench = make_prov_bench(slots=1)
    release = load_release(_release_of(bench))
    wrong = dict(encrypt_for_flash(release, os.urandom(32)))[APP_OFFSET]
    result = await bench.run(checkpoint=_on_written(bench, 1, lambda: wrong))
    r = result.slots[1]
    assert r.verdict is Verdict.FAIL, r.reason
    assert "the unit did not boot" in r.reason and "invalid magic byte" in r.reason, r.reason
    locked_fuses_ok(bench, 1)
    assert r.extra["provisioning"]["boot_check"]["status"] == "failed"


async def test_device_key_is_sealed_and_reads_back_through_the_engine(
    make_prov_bench: Any,
) -> None:
    """After lock-down the record on flash is ciphertext (no plain key for anyone with a
    flash reader) and the production app, reading through the engine with the burned
    key, finds the very key the certificate names."""
    bench: ProvBench = make_prov_bench(slots=1)
    result = await bench.run()
    r = result.slots[1]
    assert r.verdict is Verdict.PASS, r.reason
    raw = bench.flash(1).read(devkey.DEV_KEY_OFFSET, devkey.DEV_KEY_SIZE)
    assert devkey.decode_record(raw) is None
    d = device_key_scalar(bench, 1)
    assert d is not None
    point = devkey.public_point(devkey.private_key(d))
    assert r.unit is not None
    with station_state(bench.state_dir) as (store, journal):
        cert = store.certificate(r.unit.mac)
        seals = [a for a in journal.acts(r.unit.mac) if a.act == "dev_key.seal"]
    assert cert is not None and cert.public_key == point.hex()
    assert [(a.kind, a.status) for a in seals] == [("intent", "planned"), ("outcome", "done")]
    assert (
        bytes.fromhex(seals[0].detail["ciphertext"])
        == raw[: len(seals[0].detail["ciphertext"]) // 2]
    )
    banner = r.extra["provisioning"]["boot_check"]["banner"]
    assert banner["key"] == "sha256:" + hashlib.sha256(point).hexdigest()


async def test_plain_device_key_after_lock_down_fails_the_boot_check(
    make_prov_bench: Any,
) -> None:
    """A station that left the record plain (here: put back after sealing) ships a unit
    whose app reads garbage for its key: the boot check catches it."""
    bench: ProvBench = make_prov_bench(slots=1)
    plain: list[bytes] = []

    async def checkpoint(chip_id: str, point: str) -> None:
        flash = bench.flash(1)
        if point == "written":
            plain.append(flash.read(devkey.DEV_KEY_OFFSET, devkey.DEV_KEY_SIZE))
        elif point == "dev-key-sealed":

            async def put_back() -> None:
                flash.erase(devkey.DEV_KEY_OFFSET, devkey.DEV_KEY_SIZE)
                flash.program(devkey.DEV_KEY_OFFSET, plain[0])

            bench.twin.run(put_back())

    result = await bench.run(checkpoint=checkpoint)
    r = result.slots[1]
    assert devkey.decode_record(plain[0]) is not None
    assert r.verdict is Verdict.FAIL, r.reason
    assert "key is none, the station provisioned sha256:" in r.reason, r.reason
    boot = r.extra["provisioning"]["boot_check"]
    assert boot["status"] == "failed" and boot["banner"]["fe"] == "1"


def test_a_release_whose_dev_key_is_not_flagged_encrypted_is_refused(tmp_path: Path) -> None:
    """Under flash encryption the app would read the device key as garbage: the profile
    is refused before the first panel, pointing at its flash_encryption."""
    kit = make_dev_profile(tmp_path / "kit", secure_boot=False)
    manifest = _release_of_kit(kit)
    plain = tuple(dataclasses.replace(p, flags=0) for p in sim_release.SIM_PARTITIONS)
    table_path = manifest.parent / "partition-table.bin"
    old = hashlib.sha256(table_path.read_bytes()).hexdigest()
    table = sim_release.sim_partition_table(plain)  # a build without the flag
    table_path.write_bytes(table)
    text = manifest.read_text().replace(old, hashlib.sha256(table).hexdigest())
    manifest.write_text(text)
    with pytest.raises(InputError, match="partition dev_key lacks the 'encrypted' flag"):
        open_profile(kit.profile, open_ca=False)


def _release_of_kit(kit: Any) -> Path:
    return kit.directory / yaml.safe_load(kit.profile.read_text())["release"]
