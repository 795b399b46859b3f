"""Open a provisioning profile for a run: validate it, read its secret, release and
keys, check trust, build the eFuse plan and open the CA. Everything that can refuse a
run refuses here, before the first panel, with the profile's file and line.

May import ate.config, ate.pki, ate.provision's pure modules and the esp driver's log
capture.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ate.config.errors import InputError
from ate.config.files import (
    LIBRARY_MAX,
    PEM_MAX,
    SECRET_MAX,
    YAML_MAX,
    FileRefused,
    check_file,
    read_file,
)
from ate.config.loader import Loaded, load_document
from ate.config.profile import Profile
from ate.drivers.esp.log_capture import SlotCapture, captured
from ate.pki.ca import IssuingCA, load_pem_chain
from ate.pki.csr import CertTemplate
from ate.pki.errors import CaUnavailable, PkiError, TrustError
from ate.pki.trust import check_trust
from ate.provision import efuse_plan
from ate.provision.release import (
    Release,
    ReleaseError,
    check_layout,
    load_release,
    partition_table_entries,
)

MIN_SECRET_BYTES = 16


class CaNotReady(Exception):
    """The CA cannot sign now (HSM unplugged, wrong PIN, key missing): the station cannot
    provision, and says why."""


@dataclass(frozen=True)
class LoadedProfile:
    model: Profile
    path: Path
    sha256: str
    base_dir: Path
    release: Release
    plan: efuse_plan.EfusePlan
    template: CertTemplate
    secure_boot_keys: tuple[bytes, ...]
    layout: dict[str, tuple[int, int]]
    secret: bytes = field(repr=False)  # the factory secret: never logged, never recorded
    ca: IssuingCA | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.model.profile

    def chain_pem(self) -> bytes:
        """The CA chain a device carries: issuing CA first, root last."""
        assert self.ca is not None
        certs = (*self.ca.chain, self.ca.root)
        return b"".join(c.public_bytes(Encoding.PEM) for c in certs)

    def close(self) -> None:
        if self.ca is not None:
            self.ca.close()


def _field_error(loaded: Loaded[Profile], where: tuple[str | int, ...], message: str) -> InputError:
    line, column = loaded.positions.value(where)
    return InputError(loaded.path, message, line, column)


def read_secret(ref: str, base_dir: Path) -> bytes:
    """`env:NAME` (as set) or `file:PATH` (stripped of surrounding white space); ValueError
    with a sentence that never holds the value. An empty secret is refused: an unset variable
    exported as "" or an empty file must not key the serials or unlock the CA."""
    kind, _, name = ref.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise ValueError(f"environment variable {name} is not set")
        # Used as given (a change would change every serial derived from it); only a
        # value that is nothing but white space is refused.
        data = value.encode()
        source = f"environment variable {name}"
    else:
        path = base_dir / name
        try:
            data = read_file(path, SECRET_MAX).strip()
        except FileRefused as exc:
            raise ValueError(f"{path} {exc}") from None
        source = str(path)
    if not data.strip():
        raise ValueError(f"{source} is empty (or only white space)")
    return data


def open_profile(
    path: Path | str, *, open_ca: bool = True, sequence_chip: str | None = None
) -> LoadedProfile:
    """Load and check a profile; with open_ca, open and probe its CA (CaNotReady if the
    CA cannot sign). InputError for everything that is the profile's fault."""
    loaded = load_document(path, Profile)
    p = loaded.model
    base = loaded.path.parent.resolve()

    def rel(name: str) -> Path:
        return (base / name).resolve()

    if sequence_chip is not None and sequence_chip != p.product.chip:
        raise _field_error(
            loaded,
            ("product", "chip"),
            f"the profile is for {p.product.chip}, the sequence for {sequence_chip}",
        )
    try:
        secret = read_secret(p.serial.secret, base)
    except ValueError as exc:
        raise _field_error(loaded, ("serial", "secret"), f"factory secret: {exc}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise _field_error(
            loaded,
            ("serial", "secret"),
            f"factory secret is too short: at least {MIN_SECRET_BYTES} bytes are needed",
        )

    try:
        release = load_release(rel(p.release))
    except ReleaseError as exc:
        raise _field_error(loaded, ("release",), f"production release: {exc}") from None
    if release.chip != p.product.chip:
        raise _field_error(
            loaded,
            ("release",),
            f"release {release.name} is for {release.chip}, not {p.product.chip}",
        )
    layout = {
        "esp_secure_cert": (p.partitions.esp_secure_cert.offset, p.partitions.esp_secure_cert.size),
        "dev_key": (p.partitions.dev_key.offset, p.partitions.dev_key.size),
        "fctry": (p.partitions.fctry.offset, p.partitions.fctry.size),
    }
    try:
        check_layout(release, layout)
    except ReleaseError as exc:
        raise _field_error(loaded, ("partitions",), str(exc)) from None
    if p.security.flash_encryption.key != "off" and not _dev_key_encrypted(release):
        raise _field_error(
            loaded,
            ("security", "flash_encryption"),
            f"release {release.name}: partition dev_key lacks the 'encrypted' flag; under "
            "flash encryption the production app would read the device key as garbage",
        )

    if p.ca.pkcs11 is not None:
        module = Path(p.ca.pkcs11.module)
        try:
            check_file(module, LIBRARY_MAX)
        except FileRefused as exc:
            # A module that is absent is the station's state (HSM software not installed:
            # exit 3 when the CA is opened), not the profile's fault.
            if str(exc) != "no such file":
                raise _field_error(
                    loaded, ("ca", "pkcs11", "module"), f"PKCS#11 module {module} {exc}"
                ) from None

    sb = p.security.secure_boot
    keys: list[bytes] = []
    for i, key in enumerate(sb.keys):
        try:
            keys.append(read_file(rel(key), PEM_MAX))
        except FileRefused as exc:
            raise _field_error(
                loaded,
                ("security", "secure_boot", "keys", i),
                f"secure boot key {key}: {exc}",
            ) from None
    if keys:
        from ate.provision.release import verify_signatures

        try:
            # espsecure reports each signature block on the console; not ours to print.
            with captured(SlotCapture("espsecure", lambda line: None)):
                verify_signatures(release, keys)
        except ReleaseError as exc:
            raise _field_error(
                loaded,
                ("security", "secure_boot", "keys"),
                f"the release is not signed for these keys, burning them would brick units: {exc}",
            ) from None
    fe = p.security.flash_encryption
    try:
        plan = efuse_plan.build_plan(
            p.product.chip,
            efuse_plan.SecuritySpec(
                flash_encryption=fe.key,
                fe_key_block=fe.block,
                fe_xts_256=fe.xts == 256,
                secure_boot_keys=tuple(keys),
                secure_boot_blocks=_secure_boot_blocks(p),
                aggressive_revoke=sb.aggressive_revoke,
                revoke_unused_digests=sb.revoke_unused,
                disable_jtag=p.security.disable_jtag,
                download=p.security.download,
            ),
        )
    except efuse_plan.PlanError as exc:
        raise _field_error(loaded, ("security",), f"eFuse plan: {exc}") from None

    c = p.certificate
    template = CertTemplate(
        common_name=c.common_name,
        organization=c.organization,
        organizational_unit=c.organizational_unit,
        country=c.country,
        validity_days=c.validity_days,
        key_type=c.key_type,
    )
    profile = LoadedProfile(
        model=p,
        path=loaded.path,
        sha256=loaded.sha256,
        base_dir=base,
        release=release,
        plan=plan,
        template=template,
        secure_boot_keys=tuple(keys),
        layout=layout,
        secret=secret,
    )
    if not open_ca:
        _check_anchors(loaded, base)
        return profile
    ca = _open_ca(loaded, base)
    return dataclasses.replace(profile, ca=ca)


def _anchors(
    loaded: Loaded[Profile], base: Path
) -> tuple[tuple[x509.Certificate, ...], x509.Certificate]:
    spec = loaded.model.ca
    try:
        chain = load_pem_chain([base / c for c in spec.chain])
        (root,) = load_pem_chain([base / spec.root])
    except (PkiError, ValueError) as exc:
        raise _field_error(loaded, ("ca",), f"CA certificates: {exc}") from None
    return chain, root


def _check_anchors(loaded: Loaded[Profile], base: Path) -> None:
    spec = loaded.model.ca
    chain, root = _anchors(loaded, base)
    issuing = spec.file.cert if spec.file else spec.pkcs11.cert if spec.pkcs11 else None
    assert issuing is not None
    try:
        (ica,) = load_pem_chain([base / issuing])
        check_trust(loaded.model.environment, spec.backend, (ica, *chain), root, spec.root_sha256)
    except (PkiError, ValueError) as exc:
        where = ("ca", "root") if isinstance(exc, TrustError) else ("ca",)
        raise _field_error(loaded, where, f"trust: {exc}") from None


def _open_ca(loaded: Loaded[Profile], base: Path) -> IssuingCA:
    spec = loaded.model.ca
    _check_anchors(loaded, base)
    chain_paths = [base / c for c in spec.chain]
    root_path = base / spec.root
    try:
        if spec.backend == "file":
            from ate.pki.file_ca import open_file_ca

            assert spec.file is not None
            password = None
            if spec.file.password is not None:
                try:
                    password = read_secret(spec.file.password, base)
                except ValueError as exc:
                    raise _field_error(
                        loaded, ("ca", "file", "password"), f"CA key password: {exc}"
                    ) from None
            ca = open_file_ca(
                base / spec.file.cert, base / spec.file.key, chain_paths, root_path, password
            )
        else:
            from ate.pki.pkcs11_ca import open_pkcs11_ca

            assert spec.pkcs11 is not None
            try:
                pin = read_secret(spec.pkcs11.pin, base).decode()
            except ValueError as exc:
                raise _field_error(loaded, ("ca", "pkcs11", "pin"), f"HSM PIN: {exc}") from None
            ca = open_pkcs11_ca(
                Path(spec.pkcs11.module),
                spec.pkcs11.token,
                spec.pkcs11.key,
                pin,
                base / spec.pkcs11.cert,
                chain_paths,
                root_path,
            )
        ca.probe()
    except CaUnavailable as exc:
        raise CaNotReady(f"{loaded.path}: CA ({spec.backend}) unavailable: {exc}") from None
    return ca


def _secure_boot_blocks(p: Profile) -> tuple[str, ...]:
    """The profile's secure_boot.blocks; when it gives none, the first key blocks the
    flash-encryption key leaves free (an XTS-AES-256 key takes two)."""
    sb, fe = p.security.secure_boot, p.security.flash_encryption
    if "blocks" in sb.model_fields_set or fe.key != "host":
        return sb.blocks
    first = int(fe.block.removeprefix("BLOCK_KEY"))
    taken = {first, first + 1} if fe.xts == 256 else {first}
    return tuple(f"BLOCK_KEY{i}" for i in range(6) if i not in taken)[: len(sb.blocks)]


def _dev_key_encrypted(release: Release) -> bool:
    table = partition_table_entries(release.image("partition_table").data)
    return any(e.name == "dev_key" and e.encrypted for e in table)


def file_sha256(path: Path) -> str:
    """The sha256 of an input file, to see whether it changed; OSError if it cannot be
    read as one any more."""
    try:
        return hashlib.sha256(read_file(path, YAML_MAX)).hexdigest()
    except FileRefused as exc:
        raise OSError(f"{path} {exc}") from None
