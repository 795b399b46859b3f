"""The pieces of the boot check and of the dev_key seal on their own: the banner's syntax
and judgement, the station's reading of the dev_key record against the device's codec,
the seal against the simulated engine, the engine's key after read protection, and the
eFuse plan's hook before the download fuse."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.drivers.esp import EspFlasher
from ate.drivers.esp.efuse import EfuseSession
from ate.provision import devkey_seal
from ate.provision.boot_check import FIELDS, BannerError, judge, parse_banner
from ate.provision.efuse_plan import BurnStep, SecuritySpec, build_plan, execute
from ate.sim import devkey
from ate.sim.prod_boot import banner, decrypt, engine_key
from ate.sim.rom.server import RomServer

FP = "sha256:" + "ab" * 32
GOOD = {"version": "1.0.0", "serial": "AS3-1", "cert": FP, "key": FP, "sb": "1", "fe": "1"}


# -- the banner -------------------------------------------------------------------------


def test_the_simulated_app_prints_what_the_station_parses() -> None:
    parsed = parse_banner(banner(GOOD))
    assert parsed is not None and parsed.fields == GOOD
    assert judge(parsed, GOOD) == []


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("ATE-PROD version=1 serial=A cert=x key=y sb=1", "lacks fe"),
        ("ATE-PROD version=1 version=2", "appears twice"),
        ("ATE-PROD color=red", "not one of"),
        ("ATE-PROD version=", "no printable value"),
        (banner({**GOOD, "sb": "2"}), "sb is '2'"),
    ],
)
def test_a_malformed_banner_is_refused(line: str, words: str) -> None:
    with pytest.raises(BannerError, match=words):
        parse_banner(line)


def test_other_lines_are_not_the_banner() -> None:
    assert parse_banner("I (300) app_main: acme_prod 1.0.0 starting") is None
    assert parse_banner("ATE-PRODUCTION version=1") is None


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_console_line_parses_or_is_refused_never_crashes(line: str) -> None:
    try:
        result = parse_banner(line)
    except BannerError:
        return
    if result is not None:
        assert set(result.fields) == set(FIELDS)


def test_judge_names_every_field_that_differs() -> None:
    parsed = parse_banner(banner({**GOOD, "serial": "AS3-2", "key": "none", "fe": "0"}))
    assert parsed is not None
    problems = judge(parsed, GOOD)
    assert problems == [
        "serial is AS3-2, the station provisioned AS3-1",
        f"key is none, the station provisioned {FP}",
        "fe is 0, the station provisioned 1",
    ]
    # A field the station does not check must still be a fingerprint.
    loose = {k: v for k, v in GOOD.items() if k != "cert"}
    bad = parse_banner(banner({**GOOD, "cert": "none"}))
    assert bad is not None and judge(bad, loose) == ["cert is none, not a sha256 fingerprint"]


# -- the dev_key record and its seal -------------------------------------------------------

scalars = st.integers(min_value=1, max_value=devkey.P256_ORDER - 1)


@given(scalars)
@settings(max_examples=50, deadline=None)
def test_the_station_reads_the_record_as_the_device_writes_it(d: int) -> None:
    record = devkey.encode_record(d) + b"\xff" * 56
    point = devkey.public_point(devkey.private_key(d))
    assert devkey_seal.record_public_key(record) == point


@given(scalars, st.integers(min_value=0, max_value=devkey.RECORD_SIZE - 1), st.integers(1, 255))
@settings(max_examples=100, deadline=None)
def test_a_damaged_record_is_no_key_to_both(d: int, at: int, flip: int) -> None:
    record = bytearray(devkey.encode_record(d) + b"\xff" * 56)
    record[at] ^= flip
    assert devkey.decode_record(bytes(record)) is None
    assert devkey_seal.record_public_key(bytes(record)) is None


@pytest.mark.parametrize("size", [32, 64], ids=["xts-128", "xts-256"])
def test_the_sealed_record_reads_back_through_the_engine(size: int) -> None:
    key = hashlib.sha512(b"seal").digest()[:size]
    plain = devkey.encode_record(12345) + b"\xff" * (devkey_seal.SEAL_BYTES - 72)
    sealed = devkey_seal.seal(plain, devkey.DEV_KEY_OFFSET, key)
    assert len(sealed) == devkey_seal.SEAL_BYTES and devkey.decode_record(sealed) is None
    assert decrypt(key, devkey.DEV_KEY_OFFSET, sealed) == plain
    # At another offset (the XTS tweak is the flash address) it is garbage.
    assert devkey.decode_record(decrypt(key, devkey.DEV_KEY_OFFSET + 0x1000, sealed)) is None
    with pytest.raises(ValueError, match="aligned"):
        devkey_seal.seal(plain, devkey.DEV_KEY_OFFSET + 0x10, key)


# -- the engine's key and the plan's hook, on a simulated unit ----------------------------


@pytest.fixture
async def rom(tmp_path: Path) -> AsyncIterator[RomServer]:
    server = RomServer("esp32s3", state_dir=tmp_path / "unit", mac="24:0a:c4:00:11:22", seed=2)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Journal:
    def __init__(self, trace: list[str]) -> None:
        self.trace = trace

    async def intent(self, batch: Sequence[tuple[BurnStep, dict[str, object]]]) -> None:
        self.trace.extend(f"intent:{step.id}" for step, _ in batch)

    async def outcome(
        self, step: BurnStep, status: str, after: dict[str, object], detail: str
    ) -> None:
        self.trace.append(f"{status}:{step.id}")


@pytest.mark.parametrize("xts_256", [False, True], ids=["xts-128", "xts-256"])
async def test_engine_key_survives_read_protection_and_hook_runs_before_download(
    rom: RomServer, xts_256: bool
) -> None:
    key = hashlib.sha512(b"engine").digest()[: 64 if xts_256 else 32]
    plan = build_plan("esp32s3", SecuritySpec(fe_xts_256=xts_256, disable_jtag=False))
    trace: list[str] = []

    async def hook() -> None:
        trace.append("hook")

    flasher = EspFlasher(str(rom.url), chip="esp32s3", log=lambda line: None, label="t", stub=False)
    async with flasher:
        await execute(plan, EfuseSession(flasher), Journal(trace), fe_key=key, before_download=hook)
    assert trace.count("hook") == 1
    assert trace[trace.index("hook") + 1 :] == ["intent:dl.secure", "burned:dl.secure"]
    efuses = rom.efuses
    assert not any(efuses._block_words(4))  # read-protected: espefuse reads zeros
    assert engine_key("esp32s3", efuses) == key  # the engine still has it


async def test_the_hook_runs_at_the_end_of_a_plan_without_a_download_step(
    rom: RomServer,
) -> None:
    plan = build_plan("esp32s3", SecuritySpec(disable_jtag=False, download="leave"))
    trace: list[str] = []

    async def hook() -> None:
        trace.append("hook")

    flasher = EspFlasher(str(rom.url), chip="esp32s3", log=lambda line: None, label="t", stub=False)
    async with flasher:
        await execute(
            plan, EfuseSession(flasher), Journal(trace), fe_key=b"\x11" * 32, before_download=hook
        )
    assert trace[-1] == "hook" and trace.count("hook") == 1
