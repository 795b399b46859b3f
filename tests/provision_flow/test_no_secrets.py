"""No private key and no factory secret in anything a run leaves behind: records, logs,
JUnit, certificates, cloud manifests, the ledger, the spool and the line database, and
what it printed. The secrets are read from where they really live (the CA key file, the
factory secret file, each simulated unit's flash and eFuses) after a full run."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from prov_bench import write_fixture, write_sequence

from ate.cli.main import main
from ate.provision import flow
from ate.sim import devkey
from ate.sim.devkit import make_dev_profile
from ate.sim.prod_boot import CpuView
from ate.sim.rom.chips import get_profile
from ate.sim.rom.efuses import EfuseBank
from ate.sim.rom.flash import SparseFlash


def forms(secret: bytes) -> set[bytes]:
    """The ways a secret could leak into a file: raw, hex (both cases), base64."""
    out = {secret, secret.hex().encode(), secret.hex().upper().encode()}
    out.add(base64.b64encode(secret))
    out.add(base64.b64encode(secret).rstrip(b"="))
    return {f for f in out if len(f) >= 16}


def private_key_forms(pem: bytes) -> set[bytes]:
    key = load_pem_private_key(pem, password=None)
    der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    found = forms(der) | {pem.strip()}
    numbers = key.private_numbers()  # type: ignore[union-attr]
    if hasattr(numbers, "private_value"):  # EC
        found |= forms(numbers.private_value.to_bytes(32, "big"))
    else:  # RSA
        found |= forms(numbers.d.to_bytes((numbers.d.bit_length() + 7) // 8, "big"))
    return found


def test_a_full_run_leaves_no_secret_anywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = make_dev_profile(tmp_path / "kit")  # flash encryption key injected by the station
    # The chip keeps its flash-encryption key unreadable (the simulator zeroes it, as
    # espefuse's emulator does), so the keys are noted where the station uses them.
    fe_keys: list[bytes] = []
    real_encrypt = flow.encrypt_for_flash

    def noting(release: Any, key: bytes) -> Any:
        fe_keys.append(key)
        return real_encrypt(release, key)

    monkeypatch.setattr(flow, "encrypt_for_flash", noting)
    fixture = write_fixture(tmp_path, slots=2)
    sequence = write_sequence(tmp_path)
    out, state = tmp_path / "out", tmp_path / "state"
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
            str(state),
            "--out",
            str(out),
            "--no-live",
            "--lot",
            "L1",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err

    secrets: dict[str, set[bytes]] = {}
    secret_text = kit.secret_file.read_bytes().strip()
    secrets["factory secret"] = forms(secret_text) | forms(bytes.fromhex(secret_text.decode()))
    secrets["CA key"] = private_key_forms((kit.directory / "pki" / "ica.key").read_bytes())
    assert kit.signing_key is not None
    secrets["secure boot signing key"] = private_key_forms(kit.signing_key.read_bytes())
    chip = get_profile("esp32s3")
    for slot in (1, 2):
        unit = tmp_path / "units" / f"slot{slot}"
        flash = SparseFlash.load(unit / "flash.bin")
        bank = EfuseBank(chip, path=unit / "efuse.bin")
        # Sealed under flash encryption: read as the production app reads it.
        view = CpuView(chip.name, flash, bank)
        raw = view.read(devkey.DEV_KEY_OFFSET, devkey.DEV_KEY_SIZE, encrypted=True)
        d = devkey.decode_record(raw)
        assert d is not None, "the unit has a device key"
        secrets[f"device key {slot}"] = forms(d.to_bytes(32, "big"))
        assert bank.field("KEY_PURPOSE_0") == 4  # XTS_AES_128_KEY: the key was burned
    assert len(fe_keys) == 2
    for i, key in enumerate(fe_keys):
        secrets[f"flash encryption key {i}"] = forms(key) | forms(key[::-1])

    files = [p for root in (out, state) for p in root.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in files) and any(p.suffix == ".jsonl" for p in files)
    assert any(p.name == "bulk-registration.ndjson" for p in files)
    leaks = []
    for path in files:
        data = path.read_bytes()
        for what, needles in secrets.items():
            if any(n in data for n in needles):
                leaks.append(f"{what} in {path.relative_to(tmp_path)}")
    console = (printed.out + printed.err).encode()
    for what, needles in secrets.items():
        if any(n in console for n in needles):
            leaks.append(f"{what} printed")
    assert not leaks, leaks
