"""An issuing CA whose private key stays in a PKCS#11 token (SoftHSM2 in tests; a YubiKey or
network HSM on a line). The key must be sensitive and non-extractable; signing happens in
the token with raw CKM_ECDSA over a digest computed on the host, since SoftHSM2 has no
CKM_ECDSA_SHA256. May import cryptography, pkcs11 (python-pkcs11), stdlib and ate.pki.

python-pkcs11 loads a module once per process (`pkcs11.lib` caches it by path), and
SoftHSM2 reads SOFTHSM2_CONF and its token directory when the module is initialised: set
SOFTHSM2_CONF before the first CA is opened (`ate.pki.softhsm.create_token` does).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from ate.pki.ca import (
    IssuingCA,
    assemble_chain,
    build_device_certificate,
    check_signing_key_matches,
)
from ate.pki.csr import CertTemplate
from ate.pki.errors import CaUnavailable

_MAX_LISTED = 12


class TokenSigningKey(ec.EllipticCurvePrivateKey):
    """A cryptography EC private key whose `sign()` hashes on the host and signs the digest
    in the token; pass it to `CertificateBuilder.sign()`. Nothing private can be read from it.
    """

    def __init__(
        self, public_key: ec.EllipticCurvePublicKey, sign_digest: Callable[[bytes], bytes]
    ) -> None:
        self._public_key = public_key
        self._sign_digest = sign_digest

    def sign(
        self,
        data: bytes,  # type: ignore[override]  # cryptography also accepts buffers
        signature_algorithm: ec.EllipticCurveSignatureAlgorithm,
    ) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise TypeError("a token EC key signs with ECDSA only")
        algorithm = signature_algorithm.algorithm
        if isinstance(algorithm, Prehashed):
            digest = bytes(data)
            if len(digest) != algorithm.digest_size:
                raise ValueError("the prehashed digest has the wrong length for its hash")
        else:
            h = hashes.Hash(algorithm)
            h.update(bytes(data))
            digest = h.finalize()
        raw = self._sign_digest(digest)
        half = len(raw) // 2
        if len(raw) != 2 * ((self.key_size + 7) // 8):
            raise CaUnavailable(
                f"the token returned a {len(raw)}-byte ECDSA signature; expected r||s of "
                f"{2 * ((self.key_size + 7) // 8)} bytes"
            )
        r = int.from_bytes(raw[:half], "big")
        s = int.from_bytes(raw[half:], "big")
        return encode_dss_signature(r, s)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public_key.curve

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> NoReturn:
        raise TypeError("the token CA key is for signing only")

    def private_numbers(self) -> NoReturn:
        raise TypeError("the token CA key is non-extractable")

    def private_bytes(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("the token CA key is non-extractable")

    def __copy__(self) -> TokenSigningKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenSigningKey:
        return self

    def __repr__(self) -> str:
        return f"<TokenSigningKey {self.curve.name}>"


def _load_module(module: Path) -> Any:
    if not module.exists():
        raise CaUnavailable(f"PKCS#11 module {module} does not exist")
    try:
        return pkcs11.lib(str(module))
    except p11.PKCS11Error as exc:
        detail = str(exc).strip() or type(exc).__name__
        raise CaUnavailable(
            f"PKCS#11 module {module} could not be loaded or initialised ({detail}); for "
            "SoftHSM2 check that SOFTHSM2_CONF names a readable configuration"
        ) from None


def _token_labels(lib: Any) -> list[str]:
    try:
        return sorted({t.label for t in lib.get_tokens() if t.label})
    except p11.PKCS11Error:
        return []


def _attribute(key: Any, attribute: Attribute) -> object:
    try:
        return key[attribute]
    except p11.PKCS11Error:
        return None


def open_user_session(token: Any, pin: str, *, rw: bool = False) -> Any:
    """A session in the user's logged-in state. PKCS#11 login is per application, not per
    session: if this process is already logged in to the token (another CA object on it),
    C_Login answers USER_ALREADY_LOGGED_IN and a plain session already has the user state."""
    try:
        return token.open(rw=rw, user_pin=pin)
    except p11.UserAlreadyLoggedIn:
        return token.open(rw=rw)


class _Connection:
    """One logged-in session on the token and the CA key found in it."""

    def __init__(self, module: Path, token_label: str, key_label: str, pin: str) -> None:
        lib = _load_module(module)
        try:
            token = lib.get_token(token_label=token_label)
        except p11.NoSuchToken:
            labels = _token_labels(lib)
            present = ", ".join(repr(label) for label in labels) if labels else "none"
            raise CaUnavailable(
                f"no token labelled {token_label!r} in PKCS#11 module {module} "
                f"(tokens present: {present})"
            ) from None
        except p11.MultipleTokensReturned:
            raise CaUnavailable(
                f"several tokens are labelled {token_label!r} in {module}; labels must be unique"
            ) from None
        except p11.PKCS11Error as exc:
            raise CaUnavailable(
                f"cannot list the tokens of {module} ({type(exc).__name__})"
            ) from None
        try:
            session = open_user_session(token, pin)
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
            raise CaUnavailable(f"wrong PIN for token {token_label!r}") from None
        except p11.PinLocked:
            raise CaUnavailable(
                f"the user PIN of token {token_label!r} is locked after too many wrong PINs; "
                "its security officer must reset it"
            ) from None
        except p11.PinExpired:
            raise CaUnavailable(f"the user PIN of token {token_label!r} has expired") from None
        except p11.UserPinNotInitialized:
            raise CaUnavailable(f"token {token_label!r} has no user PIN set") from None
        except p11.PKCS11Error as exc:
            raise CaUnavailable(
                f"cannot log in to token {token_label!r} ({type(exc).__name__})"
            ) from None
        try:
            key = self._find_key(session, token_label, key_label)
        except BaseException:
            session.close()
            raise
        self.session = session
        self.key = key
        self.always_authenticate = _attribute(key, Attribute.ALWAYS_AUTHENTICATE) is True

    @staticmethod
    def _find_key(session: Any, token_label: str, key_label: str) -> Any:
        try:
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
        except p11.NoSuchKey:
            try:
                labels = sorted(
                    {
                        str(o[Attribute.LABEL])
                        for o in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
                    }
                )
            except p11.PKCS11Error:
                labels = []
            present = ", ".join(repr(label) for label in labels[:_MAX_LISTED]) or "none"
            raise CaUnavailable(
                f"no private key labelled {key_label!r} on token {token_label!r} "
                f"(private keys present: {present})"
            ) from None
        except p11.MultipleObjectsReturned:
            raise CaUnavailable(
                f"several private keys are labelled {key_label!r} on token {token_label!r}; "
                "labels must be unique"
            ) from None
        if key.key_type != KeyType.EC:
            raise CaUnavailable(
                f"private key {key_label!r} on token {token_label!r} is a {key.key_type.name} "
                "key; the issuing CA signs ECDSA and needs an EC key"
            )
        sensitive = _attribute(key, Attribute.SENSITIVE)
        extractable = _attribute(key, Attribute.EXTRACTABLE)
        if sensitive is not True or extractable is not False:
            raise CaUnavailable(
                f"private key {key_label!r} on token {token_label!r} is "
                f"{'extractable' if extractable is not False else 'not sensitive'}: "
                "the CA key must be non-extractable (CKA_EXTRACTABLE false, CKA_SENSITIVE true)"
            )
        if _attribute(key, Attribute.SIGN) is False:
            raise CaUnavailable(
                f"private key {key_label!r} on token {token_label!r} is not allowed to sign "
                "(CKA_SIGN false)"
            )
        return key

    def close(self) -> None:
        # The session may already be gone with the token.
        with contextlib.suppress(p11.PKCS11Error):
            self.session.close()


class Pkcs11CA:
    """An `IssuingCA` signing in a PKCS#11 token. One session per object; token access is
    serialised with a lock, so `issue()` may be called from several threads."""

    backend = "pkcs11"

    def __init__(
        self,
        module: Path,
        token_label: str,
        key_label: str,
        pin: str,
        chain: tuple[x509.Certificate, ...],
        root: x509.Certificate,
    ) -> None:
        self.module = module
        self.token_label = token_label
        self.key_label = key_label
        self.__pin = pin  # kept to log in again when the token comes back; never shown
        self.chain = chain
        self.root = root
        self._lock = threading.Lock()
        self._conn: _Connection | None = None
        public_key = chain[0].public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise CaUnavailable(
                f"the CA certificate {chain[0].subject.rfc4514_string()} does not hold an EC key"
            )
        self._signing_key = TokenSigningKey(public_key, self._sign_digest)
        self._closed = False

    def __repr__(self) -> str:
        return f"Pkcs11CA(token={self.token_label!r}, key={self.key_label!r})"

    @property
    def signing_key(self) -> TokenSigningKey:
        """The CA key as a cryptography key object (signs through the token)."""
        return self._signing_key

    @property
    def always_authenticate(self) -> bool:
        """True if the token asks for the PIN at every signature (CKA_ALWAYS_AUTHENTICATE)."""
        return self._conn is not None and self._conn.always_authenticate

    def connect(self) -> None:
        """Open the session and find the key; check it matches the CA certificate."""
        with self._lock:
            self._connect_locked()
        try:
            matches = check_signing_key_matches(self._signing_key, self.chain[0])
        except CaUnavailable:
            matches = False  # e.g. a signature of another curve's size
        if not matches:
            self.close()
            raise CaUnavailable(
                f"private key {self.key_label!r} on token {self.token_label!r} does not match "
                f"the CA certificate ({self.chain[0].subject.rfc4514_string()})"
            )

    def _connect_locked(self) -> None:
        if self._closed:
            raise CaUnavailable("the PKCS#11 CA is closed")
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._conn = _Connection(self.module, self.token_label, self.key_label, self.__pin)

    def _sign_once(self, digest: bytes) -> bytes:
        assert self._conn is not None
        pin = self.__pin if self._conn.always_authenticate else None
        return bytes(self._conn.key.sign(digest, mechanism=Mechanism.ECDSA, pin=pin))

    def _sign_digest(self, digest: bytes) -> bytes:
        with self._lock:
            if self._closed:
                raise CaUnavailable("the PKCS#11 CA is closed")
            if self._conn is not None:
                try:
                    return self._sign_once(digest)
                except p11.PKCS11Error:
                    pass
            # The session may be gone (token removed and back, network HSM reconnect,
            # module re-initialised): log in again once, then give up with the reason.
            try:
                self._connect_locked()
            except CaUnavailable as exc:
                raise CaUnavailable(f"the HSM is no longer usable: {exc}") from None
            try:
                return self._sign_once(digest)
            except p11.PKCS11Error as exc:
                raise CaUnavailable(
                    f"token {self.token_label!r} refused to sign with key {self.key_label!r} "
                    f"({type(exc).__name__})"
                ) from None

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        subject: x509.Name,
        template: CertTemplate,
        *,
        serial_number: int,
        now: datetime,
    ) -> x509.Certificate:
        return build_device_certificate(
            self._signing_key,
            self.chain[0],
            csr,
            subject,
            template,
            serial_number=serial_number,
            now=now,
        )

    def probe(self) -> None:
        if not check_signing_key_matches(self._signing_key, self.chain[0]):
            raise CaUnavailable(
                f"private key {self.key_label!r} on token {self.token_label!r} no longer "
                "matches the CA certificate"
            )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def open_pkcs11_ca(
    module: Path,
    token_label: str,
    key_label: str,
    pin: str,
    cert: Path,
    chain: Sequence[Path],
    root: Path,
) -> IssuingCA:
    """Open the CA key `key_label` on token `token_label` through PKCS#11 module `module`.

    `cert` is the issuing CA certificate, `chain` any further intermediates (copies of `cert`
    or of the root are ignored), `root` the trust anchor. CaUnavailable, in one sentence that
    never contains the PIN, when the module is missing or not loadable, no token has that
    label (the labels present are listed), the PIN is wrong, no private key has that label,
    the key is extractable or not sensitive, or the key does not match the CA certificate.
    """
    chain_certs, root_cert = assemble_chain(Path(cert), [Path(p) for p in chain], Path(root))
    ca = Pkcs11CA(Path(module), token_label, key_label, pin, chain_certs, root_cert)
    ca.connect()
    return ca
