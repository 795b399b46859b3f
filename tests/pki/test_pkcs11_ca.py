"""The PKCS#11 CA on a real SoftHSM2 token: refusals with clear words, a key that cannot
leave the token, several threads on one CA, and a token that goes away and comes back."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11

from ate.pki.ca import new_cert_serial
from ate.pki.csr import CertTemplate, public_key_bytes
from ate.pki.devpki import DevPki, make_intermediate
from ate.pki.errors import CaUnavailable
from ate.pki.pkcs11_ca import Pkcs11CA, TokenSigningKey
from ate.pki.softhsm import SoftHsmToken, generate_ec_key
from ate.pki.trust import verify_issued
from tests.pki.conftest import ICA_KEY_LABEL, Device, DeviceFactory, open_token_ca


@pytest.fixture
def token_ca(hsm_token: SoftHsmToken, token_pki: DevPki) -> Iterator[Pkcs11CA]:
    ca = open_token_ca(hsm_token, token_pki)
    assert isinstance(ca, Pkcs11CA)
    yield ca
    ca.close()


def _refusal(token: SoftHsmToken, pki: DevPki, **changes: object) -> str:
    with pytest.raises(CaUnavailable) as err:
        open_token_ca(token, pki, **changes)
    message = str(err.value)
    assert token.pin not in message and token.so_pin not in message
    return message


def test_wrong_pin_is_named_and_never_echoed(hsm_token: SoftHsmToken, token_pki: DevPki) -> None:
    wrong = "wrong-" + hsm_token.pin[::-1]
    message = _refusal(hsm_token, token_pki, pin=wrong)
    assert message == f"wrong PIN for token {hsm_token.label!r}"
    assert wrong not in message


def test_unknown_token_lists_the_labels_present(hsm_token: SoftHsmToken, token_pki: DevPki) -> None:
    message = _refusal(hsm_token, token_pki, token_label="no-such-token")
    assert message.startswith("no token labelled 'no-such-token' in PKCS#11 module")
    assert message.endswith(f"(tokens present: {hsm_token.label!r})")


def test_unknown_key_lists_the_private_keys_present(
    hsm_token: SoftHsmToken, token_pki: DevPki
) -> None:
    message = _refusal(hsm_token, token_pki, key_label="no-such-key")
    assert message.startswith(
        f"no private key labelled 'no-such-key' on token {hsm_token.label!r} (private keys "
        "present: "
    )
    assert repr(ICA_KEY_LABEL) in message


@pytest.mark.parametrize(
    ("label", "options", "words"),
    [
        ("weak-extractable", {"extractable": True}, "is extractable"),
        ("weak-not-sensitive", {"extractable": False, "sensitive": False}, "is not sensitive"),
    ],
)
def test_weak_keys_are_refused(
    hsm_token: SoftHsmToken,
    token_pki: DevPki,
    label: str,
    options: dict[str, bool],
    words: str,
) -> None:
    generate_ec_key(hsm_token, label, **options)
    message = _refusal(hsm_token, token_pki, key_label=label)
    assert words in message
    assert "the CA key must be non-extractable" in message


def test_missing_module_is_named(
    hsm_token: SoftHsmToken, token_pki: DevPki, tmp_path: Path
) -> None:
    message = _refusal(hsm_token, token_pki, module=tmp_path / "libnothing.so")
    assert message == f"PKCS#11 module {tmp_path / 'libnothing.so'} does not exist"


def test_module_that_cannot_load_is_named(
    hsm_token: SoftHsmToken, token_pki: DevPki, tmp_path: Path
) -> None:
    junk = tmp_path / "libjunk.so"
    junk.write_bytes(b"\x7fELF not really a shared object")
    message = _refusal(hsm_token, token_pki, module=junk)
    assert message.startswith(f"PKCS#11 module {junk} could not be loaded or initialised")


def test_key_that_does_not_match_the_certificate_is_refused(
    hsm_token: SoftHsmToken, token_pki: DevPki
) -> None:
    generate_ec_key(hsm_token, "not-the-ica")
    message = _refusal(hsm_token, token_pki, key_label="not-the-ica")
    assert message.startswith(
        f"private key 'not-the-ica' on token {hsm_token.label!r} does not match the CA certificate"
    )


def test_ca_key_cannot_leave_the_token(hsm_token: SoftHsmToken, token_pki: DevPki) -> None:
    lib = pkcs11.lib(str(hsm_token.module))
    with lib.get_token(token_label=hsm_token.label).open(user_pin=hsm_token.pin) as session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=ICA_KEY_LABEL)
        with pytest.raises(p11.AttributeSensitive):
            key[Attribute.VALUE]
        assert key[Attribute.SENSITIVE] is True and key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.NEVER_EXTRACTABLE] is True
        assert key[Attribute.ALWAYS_SENSITIVE] is True
        wrapping = session.generate_key(KeyType.AES, 256, store=False)
        with pytest.raises((p11.KeyUnextractable, p11.MechanismInvalid, p11.FunctionFailed)):
            cast(Any, wrapping).wrap_key(key)  # AES keys have WrapMixin at run time
    ca = open_token_ca(hsm_token, token_pki)
    assert isinstance(ca, Pkcs11CA)
    signing_key = ca.signing_key
    ca.close()
    assert isinstance(signing_key, TokenSigningKey)
    with pytest.raises(TypeError, match="non-extractable"):
        signing_key.private_numbers()
    with pytest.raises(TypeError, match="non-extractable"):
        signing_key.private_bytes()


def test_secrets_stay_out_of_reprs(hsm_token: SoftHsmToken, token_ca: Pkcs11CA) -> None:
    for text in (repr(token_ca), str(token_ca), repr(hsm_token), repr(vars(token_ca))):
        if text.startswith("{"):
            continue  # vars() holds the PIN by design; it is never printed
        assert hsm_token.pin not in text and hsm_token.so_pin not in text


def test_twenty_certificates_from_four_threads(
    token_ca: Pkcs11CA,
    make_device: DeviceFactory,
    template: CertTemplate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    devices = [make_device(200 + i) for i in range(20)]
    guard = threading.Lock()
    arrived: list[str] = []
    all_arrived = threading.Event()
    in_token = {"now": 0, "max": 0}
    # Instrument both sides of the CA's token lock: a thread "arrives" when it asks the
    # key to sign, and is "in the token" while it signs. The first signature waits until
    # all four threads have arrived: without the lock, the others then sign alongside it.
    outer = token_ca.signing_key._sign_digest
    inner = token_ca._sign_once

    def arrive(digest: bytes) -> bytes:
        with guard:
            arrived.append(threading.current_thread().name)
            if len(arrived) >= 4:
                all_arrived.set()
        return outer(digest)

    def sign_in_token(digest: bytes) -> bytes:
        with guard:
            in_token["now"] += 1
            in_token["max"] = max(in_token["max"], in_token["now"])
        try:
            assert all_arrived.wait(timeout=30), "four threads never reached the token"
            return inner(digest)
        finally:
            with guard:
                in_token["now"] -= 1

    monkeypatch.setattr(token_ca.signing_key, "_sign_digest", arrive)
    monkeypatch.setattr(token_ca, "_sign_once", sign_in_token)

    def issue(dev: Device) -> x509.Certificate:
        return token_ca.issue(
            dev.csr, dev.subject, template, serial_number=new_cert_serial(), now=datetime.now(UTC)
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        certs = list(pool.map(issue, devices))
    assert len(set(arrived[:4])) == 4  # four threads were waiting on the token together
    assert in_token["max"] == 1  # and the token saw one signature at a time
    assert len({c.serial_number for c in certs}) == 20
    for dev, cert in zip(devices, certs, strict=True):
        verify_issued(cert, token_ca.chain, token_ca.root)
        assert cert.subject == dev.subject
        assert public_key_bytes(cert.public_key()) == dev.point  # type: ignore[arg-type]


def test_ca_logs_in_again_after_the_module_is_reinitialised(
    hsm_token: SoftHsmToken, token_ca: Pkcs11CA, make_device: DeviceFactory, template: CertTemplate
) -> None:
    token_ca.probe()
    pkcs11.lib(str(hsm_token.module)).reinitialize()  # every session is gone
    dev = make_device(300)
    cert = token_ca.issue(
        dev.csr, dev.subject, template, serial_number=new_cert_serial(), now=datetime.now(UTC)
    )
    verify_issued(cert, token_ca.chain, token_ca.root)


def test_token_gone_then_back(
    hsm_token: SoftHsmToken,
    token_ca: Pkcs11CA,
    make_device: DeviceFactory,
    template: CertTemplate,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lib = pkcs11.lib(str(hsm_token.module))
    empty = tmp_path / "empty.conf"
    (tmp_path / "tokens").mkdir()
    empty.write_text(f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\n")
    try:
        monkeypatch.setenv("SOFTHSM2_CONF", str(empty))
        lib.reinitialize()  # the module now sees a directory without our token
        with pytest.raises(CaUnavailable) as err:
            token_ca.probe()
        message = str(err.value)
        assert message.startswith("the HSM is no longer usable: no token labelled")
        assert hsm_token.pin not in message
        dev = make_device(303)  # through cryptography's certificate builder, the same refusal
        with pytest.raises(CaUnavailable, match="the HSM is no longer usable"):
            token_ca.issue(
                dev.csr,
                dev.subject,
                template,
                serial_number=new_cert_serial(),
                now=datetime.now(UTC),
            )
    finally:
        monkeypatch.setenv("SOFTHSM2_CONF", str(hsm_token.conf))
        lib.reinitialize()
    assert os.environ["SOFTHSM2_CONF"] == str(hsm_token.conf)
    token_ca.probe()  # back: the CA logs in again by itself


def test_generate_ec_key_returns_the_token_public_key(hsm_token: SoftHsmToken) -> None:
    public = generate_ec_key(hsm_token, "pub-check")
    assert isinstance(public.curve, ec.SECP256R1)
    lib = pkcs11.lib(str(hsm_token.module))
    with lib.get_token(token_label=hsm_token.label).open(user_pin=hsm_token.pin) as session:
        pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label="pub-check")
        assert public_key_bytes(public) in bytes(pub[Attribute.EC_POINT])


def test_two_cas_on_one_token_in_one_process(
    hsm_token: SoftHsmToken, token_pki: DevPki, make_device: DeviceFactory, template: CertTemplate
) -> None:
    # PKCS#11 login state belongs to the process: the second CA finds the user logged in,
    # and closing the first (C_Logout) does not strand the second.
    first = open_token_ca(hsm_token, token_pki)
    second = open_token_ca(hsm_token, token_pki)
    first.probe()
    first.close()
    dev = make_device(301)
    cert = second.issue(
        dev.csr, dev.subject, template, serial_number=new_cert_serial(), now=datetime.now(UTC)
    )
    verify_issued(cert, second.chain, second.root)
    second.close()


def test_key_that_wants_the_pin_at_every_signature(
    hsm_token: SoftHsmToken, token_pki: DevPki, make_device: DeviceFactory, template: CertTemplate
) -> None:
    # A YubiKey's PIV signature slot (9c) asks for a context-specific login per signature.
    ica_cert, _ = make_intermediate(
        token_pki.root_cert.parent,
        token_pki.root_cert,
        token_pki.root_key,
        "ate Always-Auth CA TEST",
        organization="ate",
        stem="ica-always-auth",
        token=hsm_token,
        key_label="always-auth",
        always_authenticate=True,
    )
    ca = open_token_ca(hsm_token, token_pki, key_label="always-auth", cert=ica_cert, chain=())
    try:
        assert isinstance(ca, Pkcs11CA) and ca.always_authenticate
        dev = make_device(302)
        cert = ca.issue(
            dev.csr, dev.subject, template, serial_number=new_cert_serial(), now=datetime.now(UTC)
        )
        verify_issued(cert, ca.chain, ca.root)
    finally:
        ca.close()
