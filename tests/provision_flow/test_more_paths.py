"""The same flow through the PKCS#11 CA on a real SoftHSM2 token, on ESP32-C3 units, and
with the station process itself killed at named points (ATE_FAILPOINT) between acts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prov_bench import REPO, ProvBench, write_fixture, write_sequence
from prov_helpers import locked_fuses_ok, openssl_verify, station_state, usr_serial

from ate.model.verdict import Verdict
from ate.pki.softhsm import SoftHsmToken
from ate.provision.failpoints import ENV, EXIT_CODE
from ate.sim.devkit import PIN_ENV, make_dev_profile


async def test_pkcs11_ca_provisions_and_chains_verify(
    make_prov_bench: Any,
    tmp_path: Path,
    hsm_token: SoftHsmToken,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PIN_ENV, hsm_token.pin)
    kit = make_dev_profile(tmp_path / "kit", token=hsm_token, ica_key_label="flow-ica")
    assert "pkcs11" in kit.profile.read_text()
    bench: ProvBench = make_prov_bench(kit=kit, slots=2)
    result = await bench.run()
    for slot, r in result.slots.items():
        assert r.verdict is Verdict.PASS, r.reason
        locked_fuses_ok(bench, slot)
        serial = r.extra["provisioning"]["serial"]
        assert usr_serial(bench, slot) == serial
        out = bench.out_dir()
        proc = openssl_verify(out / "certs" / "chain.pem", out / "certs" / f"{serial}.pem")
        assert proc.returncode == 0, proc.stdout + proc.stderr


def c3_files(tmp: Path) -> tuple[Path, Path]:
    fixture = write_fixture(tmp, slots=2)
    doc = yaml.safe_load(fixture.read_text())
    shutil.copy(REPO / "fixtures" / "sim" / "board-c3-devkit.yaml", tmp / "sim")
    doc["simulation"]["board"] = "sim/board-c3-devkit.yaml"
    fixture.write_text(yaml.safe_dump(doc, sort_keys=False))
    seq = yaml.safe_load((REPO / "sequences" / "minimal.yaml").read_text())
    seq["chip"] = "esp32c3"
    c3_fw = REPO / "firmware" / "test_fw" / "sim" / "ate_test_fw-esp32c3.bin"
    seq["test_firmware"]["path"] = str(c3_fw)
    seq["steps"] = [s for s in seq["steps"] if s["type"] != "gpio_read"]  # C3 boot pin is 9
    for step in seq["steps"]:
        if step["type"] == "supply_current":  # a C3 idles at about 20 mA
            step["limits"] = {"low": 10, "high": 35, "unit": "mA"}
    sequence = tmp / "c3.yaml"
    sequence.write_text(yaml.safe_dump(seq, sort_keys=False))
    return fixture, sequence


def test_c3_units_are_provisioned_and_locked(tmp_path: Path) -> None:
    kit = make_dev_profile(tmp_path / "kit", chip="esp32c3", product="ACME-C3", product_id=0xC301)
    fixture, sequence = c3_files(tmp_path)
    proc = ate_run(fixture, sequence, kit.profile, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with station_state(tmp_path / "state") as (store, _journal):
        units = store.prov_units()
        assert len(units) == 2 and {u.state for u in units} == {"locked"}
        assert all(u.serial and u.serial.startswith("AC3-") for u in units)


def ate_run(
    fixture: Path, sequence: Path, profile: Path, tmp: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ate.cli.main",
            "run",
            "-f",
            str(fixture),
            "-s",
            str(sequence),
            "--profile",
            str(profile),
            "--state",
            str(tmp / "state"),
            "--out",
            str(tmp / "out"),
            "--no-live",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
        check=False,
    )


# Moments of a provisioning panel at which `ate run --profile` is SIGKILLed: every kind
# of act (claim, device key, issuance, proof, serial burn, partition and firmware writes,
# key burns, the final download lock), on both sides of the irreversible ones.
KILL_POINTS = [
    "serial-claimed",
    "device-key",
    "cert-intent",
    "cert-signed",
    "proven",
    "serial-burned",
    "partition-fctry",
    "firmware-app",
    "efuse-intent:fe.key",
    "efuse-burned:fe.key",
    "efuse-intent:sb.en",
    "efuse-burned:dl.secure",
]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_station_process_killed_then_rerun_finishes(
    tmp_path: Path, dev_kit: Any, point: str
) -> None:
    """SIGKILL at the moment, then a rerun on the same state: the unit ends locked with
    one identity and one certificate, no traceback, and no PASS from the killed run."""
    fixture = write_fixture(tmp_path, slots=1)
    sequence = write_sequence(tmp_path)
    died = ate_run(fixture, sequence, dev_kit.profile, tmp_path, {ENV: f"kill:{point}"})
    assert died.returncode == -9, died.stderr[-2000:]
    assert f"failpoint {point} reached" in died.stderr
    assert "Traceback" not in died.stderr
    # The dead station wrote no record saying PASS.
    for record in (tmp_path / "out" / "records").glob("*.json"):
        assert '"verdict": "PASS"' not in record.read_text()
    again = ate_run(fixture, sequence, dev_kit.profile, tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "Traceback" not in again.stderr
    with station_state(tmp_path / "state") as (store, journal):
        (unit,) = store.prov_units()
        assert unit.state == "locked"
        assert len(store.certificates()) == 1
        done = [a.act for a in journal.acts(unit.chip_id) if a.status == "done"]
        assert done.count("cert.issue") == 1
        assert all(done.count(act) <= 1 for act in done if act.startswith("efuse:"))


def test_station_process_exits_at_a_failpoint_as_a_power_cut(tmp_path: Path, dev_kit: Any) -> None:
    fixture = write_fixture(tmp_path, slots=1)
    sequence = write_sequence(tmp_path)
    died = ate_run(fixture, sequence, dev_kit.profile, tmp_path, {ENV: "cert-signed"})
    assert died.returncode == EXIT_CODE, died.stderr[-2000:]
    again = ate_run(fixture, sequence, dev_kit.profile, tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]


async def test_flash_encryption_left_to_the_device_burns_no_key(
    make_prov_bench: Any, tmp_path: Path
) -> None:
    """`flash_encryption: {key: device}`: the production bootloader makes the key at first
    boot; the station burns no key and no SPI_BOOT_CRYPT_CNT, writes the images in the
    clear, and still locks secure boot, JTAG and the download mode."""
    kit = make_dev_profile(tmp_path / "kit", flash_encryption="device")
    bench: ProvBench = make_prov_bench(kit=kit, slots=1)
    result = await bench.run()
    r = result.slots[1]
    assert r.verdict is Verdict.PASS, r.reason
    assert bench.efuse(1, "SECURE_BOOT_EN") and bench.efuse(1, "ENABLE_SECURITY_DOWNLOAD")
    assert bench.efuse(1, "SPI_BOOT_CRYPT_CNT") == 0
    assert bench.efuse(1, "KEY_PURPOSE_0") == 0  # BLOCK_KEY0 left for the bootloader
    release = yaml.safe_load(kit.profile.read_text())["release"]
    app = (kit.profile.parent / release).parent / "app.bin"
    assert bench.flash(1).read(0x10000, 64) == app.read_bytes()[:64]  # in the clear
