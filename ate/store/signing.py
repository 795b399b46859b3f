"""The station's audit signing key: Ed25519, made on first use in the state folder.

Each audit entry's hash is signed as the entry is written, so an entry appended or
edited by anyone without this key (even with the whole database in hand) does not
verify. The private key never leaves the state folder (a 0600 file in a 0700 folder);
the public key is registered in the line database and can be pinned by `ate audit
verify --spool` (which reads it from the state folder). Imports cryptography and
ate.statedir and ate.store.api only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ate.statedir import write_private
from ate.store.api import StoreError

KEY_FILE = "audit-signing.key"


class KeyFileError(StoreError):
    """The key file exists but is not an Ed25519 private key (damaged or replaced)."""


@dataclass(frozen=True)
class StationKey:
    private: Ed25519PrivateKey

    @classmethod
    def load_or_create(cls, state: Path) -> StationKey:
        path = state / KEY_FILE
        if path.exists():
            return cls(_load(path))
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, raw)
        return cls(key)

    @property
    def public_hex(self) -> str:
        return public_hex(self.private.public_key())

    def sign(self, entry_hash: str) -> str:
        return self.private.sign(bytes.fromhex(entry_hash)).hex()


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a readable audit signing key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key


def pinned_public_key(state: Path) -> str | None:
    """The public key of the signing key in a state folder, or None when it has none."""
    path = state / KEY_FILE
    return public_hex(_load(path).public_key()) if path.exists() else None


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def signature_valid(public_key_hex: str, entry_hash: str, signature_hex: str | None) -> bool:
    if not signature_hex:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(signature_hex), bytes.fromhex(entry_hash))
    except (ValueError, InvalidSignature):
        return False
    return True
