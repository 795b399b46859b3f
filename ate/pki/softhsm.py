"""SoftHSM2 tokens for tests, the bench and the demo (never for production): a token in a
private directory, and EC keys generated inside it. May import pkcs11, cryptography, stdlib.

SoftHSM2 reads SOFTHSM2_CONF, and lists its tokens, when the module is initialised, and
python-pkcs11 initialises a module once per process. `create_token` therefore sets
SOFTHSM2_CONF for this process and, if the module is already loaded here, re-initialises
it so that the new token shows: sessions opened before then become invalid (a `Pkcs11CA`
logs in again on its next signature) and only the newest directory's tokens are visible.
Create the tokens a process needs before opening CAs on them, in one directory if several.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, KeyType
from pkcs11 import exceptions as p11

from ate.pki.errors import PkiError
from ate.pki.pkcs11_ca import open_user_session

MODULE_CANDIDATES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib64/pkcs11/libsofthsm2.so"),
    Path("/usr/local/lib/softhsm/libsofthsm2.so"),
    Path("/opt/homebrew/lib/softhsm/libsofthsm2.so"),
)
# DER OBJECT IDENTIFIER of prime256v1, as CKA_EC_PARAMS wants it.
P256_EC_PARAMS = bytes.fromhex("06082a8648ce3d030107")


@dataclass
class SoftHsmToken:
    """A SoftHSM2 token made by `create_token`; the PINs are not shown by repr()."""

    conf: Path
    label: str
    pin: str = field(repr=False)
    so_pin: str = field(repr=False)
    module: Path


def find_module() -> Path:
    """The SoftHSM2 PKCS#11 module of this machine (SOFTHSM2_MODULE overrides the search)."""
    override = os.environ.get("SOFTHSM2_MODULE")
    candidates = (Path(override),) if override else MODULE_CANDIDATES
    for path in candidates:
        if path.exists():
            return path
    raise PkiError(
        "the SoftHSM2 module libsofthsm2.so was not found (looked in "
        + ", ".join(str(p) for p in candidates)
        + "); install softhsm2 (Debian: apt install softhsm2) or set SOFTHSM2_MODULE"
    )


def create_token(directory: Path, label: str, *, pin: str, so_pin: str) -> SoftHsmToken:
    """Initialise a SoftHSM2 token labelled `label` whose files live under `directory`.

    Writes directory/softhsm2.conf (token directory directory/tokens), runs
    `softhsm2-util --init-token --free` with SOFTHSM2_CONF pointing at it, and sets
    os.environ["SOFTHSM2_CONF"] for this process (python-pkcs11 reads it when it first
    loads the module; see the module docstring for a module already loaded).
    """
    util = shutil.which("softhsm2-util")
    if util is None:
        raise PkiError(
            "softhsm2-util is not installed or not on PATH; install softhsm2 "
            "(Debian: apt install softhsm2)"
        )
    module = find_module()
    directory = Path(directory).resolve()
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    env = dict(os.environ, SOFTHSM2_CONF=str(conf))
    # Test-only tool: the PINs are on softhsm2-util's command line, briefly visible in ps.
    result = subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().replace(pin, "***")
        detail = detail.replace(so_pin, "***") if so_pin else detail
        raise PkiError(f"softhsm2-util could not create token {label!r} in {tokens}: {detail}")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    if str(module) in pkcs11._loaded:
        pkcs11.lib(str(module)).reinitialize()
    return SoftHsmToken(conf=conf, label=label, pin=pin, so_pin=so_pin, module=module)


def _point_from_attribute(value: bytes) -> bytes:
    # CKA_EC_POINT is a DER OCTET STRING around the X9.62 point (some tokens give it raw).
    if len(value) >= 2 and value[0] == 0x04 and value[1] == len(value) - 2:
        return value[2:]
    return value


def generate_ec_key(
    token: SoftHsmToken,
    key_label: str,
    *,
    extractable: bool = False,
    sensitive: bool | None = None,
    always_authenticate: bool = False,
) -> ec.EllipticCurvePublicKey:
    """Generate a P-256 key pair in the token and return its public key.

    The private key is CKA_SENSITIVE and not CKA_EXTRACTABLE, with CKA_SIGN; `extractable`
    (and `sensitive`, default: not extractable) make the weak keys a CA must refuse.
    `always_authenticate` asks for the PIN at every signature, as a YubiKey's PIV
    signature slot does.
    """
    if sensitive is None:
        sensitive = not extractable
    lib = pkcs11.lib(str(token.module))
    try:
        tok = lib.get_token(token_label=token.label)
        with open_user_session(tok, token.pin, rw=True) as session:
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: P256_EC_PARAMS}, local=True
            )
            key_id = secrets.token_bytes(8)
            public, _private = params.generate_keypair(
                id=key_id,
                label=key_label,
                store=True,
                public_template={Attribute.VERIFY: True},
                private_template={
                    Attribute.SENSITIVE: sensitive,
                    Attribute.EXTRACTABLE: extractable,
                    Attribute.SIGN: True,
                    Attribute.DERIVE: False,
                    Attribute.DECRYPT: False,
                    Attribute.UNWRAP: False,
                    Attribute.ALWAYS_AUTHENTICATE: always_authenticate,
                },
            )
            point = _point_from_attribute(bytes(public[Attribute.EC_POINT]))
    except p11.PKCS11Error as exc:
        raise PkiError(
            f"could not generate key {key_label!r} in token {token.label!r} ({type(exc).__name__})"
        ) from None
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
