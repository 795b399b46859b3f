"""Development provisioning material made on the spot: a TEST PKI, a factory secret, a
signed simulated production release and a profile naming them, for the demo, tests and
benchmarks. Everything is generated now, into a private folder the caller owns (never a
run's output folder); nothing here is fit for a line.

May import ate.pki, ate.sim.release and ate.provision (pure parts).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ate.drivers.esp.log_capture import SlotCapture, captured
from ate.pki.devpki import make_dev_pki
from ate.pki.softhsm import SoftHsmToken
from ate.sim.release import make_signing_key, make_sim_release, public_key_pem

PIN_ENV = "ATE_HSM_PIN"


@dataclass(frozen=True)
class DevKit:
    profile: Path
    directory: Path
    secret_file: Path
    signing_key: Path | None


def make_dev_profile(
    directory: Path,
    *,
    chip: str = "esp32s3",
    environment: str = "dev",
    token: SoftHsmToken | None = None,
    cloud: str = "bulk",
    flash_encryption: str = "host",
    xts: int = 128,
    secure_boot: bool = True,
    download: str = "secure",
    product: str = "ACME-S3",
    product_id: int = 0x5301,
    name: str = "dev",
    ica_key_label: str = "mfg-ica",
    extra: dict[str, Any] | None = None,
) -> DevKit:
    """Write a complete development profile (and what it names) into `directory`. With a
    SoftHSM2 token the CA key is made inside the token and the profile reads the PIN from
    the ATE_HSM_PIN environment variable (the caller sets it)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    pki = make_dev_pki(directory / "pki", name="ate", token=token, ica_key_label=ica_key_label)
    secret_file = directory / "factory.secret"
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    signing_key = make_signing_key(directory / "secure-boot-signing.pem") if secure_boot else None
    with captured(SlotCapture("espsecure", lambda line: None)):  # its console chatter
        release = make_sim_release(directory / "release", chip, signing_key=signing_key)
    keys: list[str] = []
    if signing_key is not None:
        pub = directory / "secure-boot-public.pem"
        pub.write_bytes(public_key_pem(signing_key))
        keys.append(pub.name)

    def rel(p: Path) -> str:
        return os.path.relpath(p, directory)

    ca: dict[str, Any] = {
        "backend": "pkcs11" if token is not None else "file",
        "chain": [],
        "root": rel(pki.root_cert),
    }
    if token is not None:
        ca["pkcs11"] = {
            "module": str(token.module),
            "token": token.label,
            "key": ica_key_label,
            "cert": rel(pki.ica_cert),
            "pin": f"env:{PIN_ENV}",
        }
    else:
        assert pki.ica_key is not None
        ca["file"] = {"cert": rel(pki.ica_cert), "key": rel(pki.ica_key)}
    doc: dict[str, Any] = {
        "profile": f"{product.lower()}-{name}",
        "environment": environment,
        "product": {"name": product, "id": product_id, "chip": chip},
        "serial": {
            "source": "mac",
            "prefix": "AS3" if chip == "esp32s3" else "AC3",
            "digits": 9,  # AS3-XXXXX-XXXX-C: 16 characters, what BLOCK_USR_DATA holds
            "secret": f"file:{secret_file.name}",
        },
        "ca": ca,
        "certificate": {
            "common_name": "{product}-{serial}",
            "organization": "ACME Sensors TEST",
            "country": "DE",
            "validity_days": 7300,
        },
        "release": rel(release),
        "security": {
            "flash_encryption": {"key": flash_encryption} | ({"xts": xts} if xts != 128 else {}),
            "secure_boot": {"keys": keys},
            "disable_jtag": True,
            "download": download,
        },
        "cloud": {
            "output": cloud,
            "endpoint": "a1b2c3-ats.iot.eu-central-1.amazonaws.com",
            "thing_name": "{product}-{serial}",
        },
    }
    for key, value in (extra or {}).items():
        doc[key] = value
    profile = directory / "profile.yaml"
    profile.write_text(yaml.safe_dump(doc, sort_keys=False))
    return DevKit(profile, directory, secret_file, signing_key)
