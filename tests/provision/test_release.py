"""The production release: the simulated release, manifest checks and refusals, the
partition table reader, layout checks, Secure Boot V2 signatures and flash encryption
(espsecure), all with keys generated now."""

from __future__ import annotations

import hashlib
import io
import random
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import espsecure
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from esptool.bin_image import LoadFirmwareImage

from ate.config.errors import InputError
from ate.provision.release import (
    PartitionEntry,
    Release,
    ReleaseError,
    check_layout,
    encrypt_for_flash,
    load_release,
    partition_table_entries,
    verify_signatures,
)
from ate.sim.release import (
    SIM_LAYOUT,
    SIM_PARTITIONS,
    make_signing_key,
    make_sim_release,
    public_key_pem,
    sim_partition_table,
)

Data = dict[str, Any]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two RSA-3072 signing keys generated for this module: the release's and a stranger's."""
    d = tmp_path_factory.mktemp("keys")
    return make_signing_key(d / "signing.pem"), make_signing_key(d / "other.pem")


@pytest.fixture(scope="module")
def signed_dir(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> Path:
    return make_sim_release(
        tmp_path_factory.mktemp("signed"), "esp32s3", signing_key=keys[0]
    ).parent


@pytest.fixture(scope="module")
def unsigned_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sim_release(tmp_path_factory.mktemp("unsigned"), "esp32s3").parent


@pytest.fixture
def copy(tmp_path: Path) -> Callable[[Path], Path]:
    """A private copy of a release folder, for tests that change it; returns its manifest."""

    def _copy(source: Path) -> Path:
        target = tmp_path / source.name
        shutil.copytree(source, target)
        return target / "manifest.yaml"

    return _copy


def _edit(manifest: Path, change: Callable[[Data], None]) -> None:
    data = yaml.safe_load(manifest.read_text())
    change(data)
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _image(data: Data, role: str) -> Data:
    return next(i for i in data["images"] if i["role"] == role)


# ---- the simulated release ----------------------------------------------------------------


def test_sim_release_loads(signed_dir: Path) -> None:
    manifest = signed_dir / "manifest.yaml"
    release = load_release(manifest)
    assert (release.name, release.version, release.chip) == ("acme-prod", "1.0.0", "esp32s3")
    assert release.path == manifest.resolve() and release.path.is_absolute()
    assert release.sha256 == _sha(manifest)
    roles = [(i.role, i.offset, i.path.name) for i in release.images]
    assert roles == [
        ("bootloader", 0x0, "bootloader.bin"),
        ("partition_table", 0x8000, "partition-table.bin"),
        ("app", 0x10000, "app.bin"),
    ]
    for img in release.images:
        assert img.data == img.path.read_bytes()
        assert img.sha256 == hashlib.sha256(img.data).hexdigest()


def test_release_keeps_the_bytes_it_hashed(signed_dir: Path, copy: Callable[[Path], Path]) -> None:
    manifest = copy(signed_dir)
    release = load_release(manifest)
    original = release.image("app").data
    (manifest.parent / "app.bin").write_bytes(b"changed on disk after loading")
    assert release.image("app").data == original
    assert hashlib.sha256(release.image("app").data).hexdigest() == release.image("app").sha256


@pytest.mark.parametrize(("chip", "chip_id"), [("esp32s3", 9), ("esp32c3", 5)])
def test_sim_images_parse_with_esptool(tmp_path: Path, chip: str, chip_id: int) -> None:
    release = load_release(make_sim_release(tmp_path, chip, version="2.3.4"))
    for role in ("bootloader", "app"):
        image = LoadFirmwareImage(chip, release.image(role).data)
        assert image.chip_id == chip_id
        assert image.checksum == image.calculate_checksum()
        assert image.stored_digest == image.calc_digest
    app = LoadFirmwareImage(chip, release.image("app").data)
    desc = app.segments[0].data[:256]
    assert desc[:4] == (0xABCD5432).to_bytes(4, "little")
    assert desc[16:21] == b"2.3.4" and desc[48:57] == b"acme_prod"
    boot = LoadFirmwareImage(chip, release.image("bootloader").data)
    assert boot.segments[0].data[0] == 0x50  # esp_bootloader_desc_t magic


def test_unsigned_sim_release_is_reproducible(tmp_path: Path) -> None:
    a = make_sim_release(tmp_path / "a", "esp32s3").parent
    b = make_sim_release(tmp_path / "b", "esp32s3").parent
    names = sorted(p.name for p in a.iterdir())
    assert names == ["app.bin", "bootloader.bin", "manifest.yaml", "partition-table.bin"]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes()
    other = make_sim_release(tmp_path / "c", "esp32s3", version="1.0.1").parent
    assert (other / "app.bin").read_bytes() != (a / "app.bin").read_bytes()


def test_sim_release_refuses_other_chips_and_bad_versions(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"made for esp32c3 or esp32s3, not .esp32."):
        make_sim_release(tmp_path, "esp32")
    with pytest.raises(ValueError, match="printable ASCII"):
        make_sim_release(tmp_path, "esp32s3", version="x" * 32)


def test_signing_key_is_private_and_never_overwritten(keys: tuple[Path, Path]) -> None:
    key = keys[0]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 3072
    public = serialization.load_pem_public_key(public_key_pem(key))
    assert public.public_numbers() == private.public_key().public_numbers()
    before = key.read_bytes()
    with pytest.raises(FileExistsError, match="never overwritten"):
        make_signing_key(key)
    assert key.read_bytes() == before


# ---- partition table ----------------------------------------------------------------------


def test_partition_table_entries(signed_dir: Path) -> None:
    table = (signed_dir / "partition-table.bin").read_bytes()
    assert len(table) == 0xC00
    assert partition_table_entries(table) == list(SIM_PARTITIONS)
    assert partition_table_entries(table)[3] == PartitionEntry("factory", 0, 0, 0x10000, 0x300000)


def test_partition_table_md5_and_magic_are_checked() -> None:
    table = bytearray(sim_partition_table())
    table[4] ^= 0x01  # an offset byte of the first entry
    with pytest.raises(ValueError, match="MD5"):
        partition_table_entries(bytes(table))
    table = bytearray(sim_partition_table())
    table[32:34] = b"\x12\x34"
    with pytest.raises(ValueError, match="magic 0x3412"):
        partition_table_entries(bytes(table))


def test_check_layout(signed_dir: Path) -> None:
    release = load_release(signed_dir / "manifest.yaml")
    check_layout(release, SIM_LAYOUT)
    check_layout(release, {"fctry": (0x310000, 0x6000)})
    with pytest.raises(ReleaseError) as info:
        check_layout(release, {"fctry": (0x320000, 0x6000), "keys": (0x11000, 0x1000)})
    message = str(info.value)
    assert message.startswith(str(release.path))
    assert "partition 'fctry' is at 0x310000 size 0x6000; the station expects 0x320000" in message
    assert "no partition 'keys'" in message


# ---- manifest refusals ------------------------------------------------------------------


def test_sha256_mismatch_names_file_line_and_both_hashes(
    signed_dir: Path, copy: Callable[[Path], Path]
) -> None:
    manifest = copy(signed_dir)
    expected = _sha(manifest.parent / "app.bin")
    (manifest.parent / "app.bin").write_bytes(b"\xe9" + bytes(4095))
    actual = _sha(manifest.parent / "app.bin")
    with pytest.raises(ReleaseError) as info:
        load_release(manifest)
    line = next(
        n for n, text in enumerate(manifest.read_text().splitlines(), 1) if "app.bin" in text
    )
    assert str(info.value).startswith(f"{manifest}:{line}:")
    assert f"app.bin: sha256 is {actual}, the manifest says {expected}" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, InputError)


def _set(role: str, key: str, value: Any) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        _image(data, role)[key] = value

    return change


def _drop(role: str) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        data["images"] = [i for i in data["images"] if i["role"] != role]

    return change


def _duplicate(role: str) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        data["images"].append(dict(_image(data, role), offset=0x200000))

    return change


def _top(key: str, value: Any) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        data[key] = value

    return change


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (_set("app", "file", "missing.bin"), "missing.bin: no such file"),
        (_drop("app"), "no image with role 'app'"),
        (_drop("bootloader"), "no image with role 'bootloader'"),
        (_drop("partition_table"), "no image with role 'partition_table'"),
        (_duplicate("app"), "a second image with role 'app'"),
        (_set("app", "offset", 0x10800), "offset 0x10800 is not a multiple of 0x1000"),
        (_set("app", "offset", 0x100000), "'factory' app partition is at 0x10000"),
        (_set("bootloader", "offset", 0x1000), "the esp32s3 ROM loads it from 0x0"),
        (_set("partition_table", "offset", 0x4000), "overlaps partition-table.bin at 0x4000"),
        (_set("app", "sha256", "abc"), "64 hex digits"),
        (_set("app", "role", "firmware"), "role"),
        (_set("app", "offset", "0x10000"), "offset"),
        (_set("app", "comment", "x"), "unknown field 'comment'"),
        (_top("notes", "x"), "unknown field 'notes'"),
        (_top("version", 1.4), 'quote it: "1.4"'),
        (_top("chip", "esp32x"), "chip"),
        (_top("images", []), "images"),
    ],
)
def test_manifest_refusals(
    signed_dir: Path, copy: Callable[[Path], Path], change: Callable[[Data], None], words: str
) -> None:
    manifest = copy(signed_dir)
    _edit(manifest, change)
    with pytest.raises(ReleaseError, match=words) as info:
        load_release(manifest)
    assert str(info.value).startswith(str(manifest))


def test_a_data_image_overlapping_the_app_is_refused(
    signed_dir: Path, copy: Callable[[Path], Path]
) -> None:
    manifest = copy(signed_dir)
    storage = manifest.parent / "storage.bin"
    storage.write_bytes(b"\x00" * 0x1000)
    entry = {"role": "data", "file": "storage.bin", "offset": 0x20000, "sha256": _sha(storage)}
    _edit(manifest, lambda d: d["images"].append(entry))
    with pytest.raises(
        ReleaseError, match=r"app.bin \(0x10000-0x20fff\) overlaps storage.bin at 0x20000"
    ):
        load_release(manifest)
    entry["offset"] = 0x320000  # past the app: accepted
    _edit(manifest, lambda d: d["images"].__setitem__(-1, entry))
    assert load_release(manifest).image("data").data == bytes(0x1000)


def test_an_app_larger_than_its_partition_is_refused(
    signed_dir: Path, copy: Callable[[Path], Path]
) -> None:
    manifest = copy(signed_dir)
    app = manifest.parent / "app.bin"
    app.write_bytes(app.read_bytes() + bytes(0x300000))
    _edit(manifest, _set("app", "sha256", _sha(app)))
    with pytest.raises(ReleaseError, match="partition 'factory' holds 0x300000"):
        load_release(manifest)


def test_missing_manifest_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="no such file"):
        load_release(tmp_path / "nothere.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("release: [unclosed\n")
    with pytest.raises(ReleaseError, match=f"^{bad}:"):
        load_release(bad)


# ---- Secure Boot V2 signatures ------------------------------------------------------------


def test_signatures_verify_with_the_right_key(signed_dir: Path, keys: tuple[Path, Path]) -> None:
    release = load_release(signed_dir / "manifest.yaml")
    right, other = public_key_pem(keys[0]), public_key_pem(keys[1])
    verify_signatures(release, [right])
    verify_signatures(release, [other, right])  # one of the keys is enough


def test_signatures_fail_with_another_key(signed_dir: Path, keys: tuple[Path, Path]) -> None:
    release = load_release(signed_dir / "manifest.yaml")
    with pytest.raises(ReleaseError, match=r"bootloader\.bin is not signed by any of the 1 given"):
        verify_signatures(release, [public_key_pem(keys[1])])


def test_unsigned_release_fails(unsigned_dir: Path, keys: tuple[Path, Path]) -> None:
    release = load_release(unsigned_dir / "manifest.yaml")
    with pytest.raises(ReleaseError, match=r"bootloader\.bin has no Secure Boot V2 .* unsigned"):
        verify_signatures(release, [public_key_pem(keys[0])])


def test_an_image_changed_after_signing_fails(
    signed_dir: Path, copy: Callable[[Path], Path], keys: tuple[Path, Path]
) -> None:
    manifest = copy(signed_dir)
    app = manifest.parent / "app.bin"
    data = bytearray(app.read_bytes())
    data[0x2000] ^= 0xFF  # inside the signed part, before the signature sector
    app.write_bytes(bytes(data))
    _edit(manifest, _set("app", "sha256", _sha(app)))
    release = load_release(manifest)  # the manifest is consistent: only the signature knows
    with pytest.raises(ReleaseError, match=r"app\.bin: .* changed after signing"):
        verify_signatures(release, [public_key_pem(keys[0])])


def test_verify_refuses_keys_that_are_not_rsa3072_public_keys(
    signed_dir: Path, keys: tuple[Path, Path]
) -> None:
    release = load_release(signed_dir / "manifest.yaml")
    with pytest.raises(ReleaseError, match="key #1 is not a PEM public key"):
        verify_signatures(release, [keys[0].read_bytes()])  # a private key: refused
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = small.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ReleaseError, match="key #2 is not an RSA-3072"):
        verify_signatures(release, [public_key_pem(keys[0]), pem])
    with pytest.raises(ValueError, match="at least one"):
        verify_signatures(release, [])


# ---- flash encryption ---------------------------------------------------------------------


def _decrypt(chip_xts: bool, key: bytes, offset: int, data: bytes) -> bytes:
    out = io.BytesIO()
    espsecure.decrypt_flash_data(io.BytesIO(key), out, offset, 0xF, chip_xts, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("key_bytes", [32, 64])
def test_encrypt_for_flash_round_trips_through_espsecure(signed_dir: Path, key_bytes: int) -> None:
    release = load_release(signed_dir / "manifest.yaml")
    key = random.Random(1000 + key_bytes).randbytes(key_bytes)
    encrypted = encrypt_for_flash(release, key)
    assert [offset for offset, _ in encrypted] == [img.offset for img in release.images]
    for (offset, cipher), img in zip(encrypted, release.images, strict=True):
        assert len(cipher) == len(img.data)
        assert cipher != img.data
        assert _decrypt(True, key, offset, cipher) == img.data
        assert _decrypt(True, key, offset + 0x1000, cipher) != img.data  # the offset matters


def test_encrypt_for_flash_uses_the_key(signed_dir: Path) -> None:
    release = load_release(signed_dir / "manifest.yaml")
    a = encrypt_for_flash(release, random.Random(1).randbytes(32))
    b = encrypt_for_flash(release, random.Random(2).randbytes(32))
    assert all(x != y for (_, x), (_, y) in zip(a, b, strict=True))


def test_encrypt_for_flash_refuses_wrong_key_sizes(tmp_path: Path) -> None:
    s3 = load_release(make_sim_release(tmp_path / "s3", "esp32s3"))
    c3 = load_release(make_sim_release(tmp_path / "c3", "esp32c3"))
    with pytest.raises(ValueError, match="32 or 64 bytes; this one has 16"):
        encrypt_for_flash(s3, bytes(16))
    with pytest.raises(ValueError, match="32 bytes; this one has 64"):
        encrypt_for_flash(c3, bytes(64))
    assert len(encrypt_for_flash(c3, random.Random(3).randbytes(32))) == 3


def test_encrypt_for_flash_pads_to_the_write_alignment(signed_dir: Path) -> None:
    release = load_release(signed_dir / "manifest.yaml")
    img = release.image("app")
    odd = img.data[:-4]  # 4 bytes short of a 16-byte boundary
    shortened = Release(
        release.name,
        release.version,
        release.chip,
        release.path,
        release.sha256,
        (type(img)(img.role, img.path, img.offset, odd, hashlib.sha256(odd).hexdigest()),),
    )
    ((offset, cipher),) = encrypt_for_flash(shortened, random.Random(4).randbytes(32))
    assert len(cipher) == len(img.data)
    assert _decrypt(True, random.Random(4).randbytes(32), offset, cipher) == odd + b"\xff" * 4
