"""The eFuse security plan: building (order invariants from espefuse's own field tables),
the Secure Boot V2 digest against espsecure's CLI, and inspect/execute with real espefuse
against simulated ESP32-S3 and ESP32-C3 ROM loaders. Keys are generated at test time."""

from __future__ import annotations

import asyncio
import functools
import importlib
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.drivers.esp import (
    Act,
    Burn,
    BurnKey,
    EfuseSession,
    EspFlasher,
    FlashError,
    SecureDownloadMode,
)
from ate.provision.efuse_plan import (
    BurnStep,
    EfusePlan,
    PlanConflict,
    PlanError,
    PlanReport,
    SecuritySpec,
    build_plan,
    execute,
    inspect,
    render,
    sbv2_digest,
)
from ate.sim.rom.server import RomServer

PHASE_ORDER = ("flash_encryption", "secure_boot", "jtag", "download")
CHIPS = ("esp32s3", "esp32c3")


# -- keys made now -------------------------------------------------------------------------


@functools.cache
def _rsa(n: int, bits: int = 3072) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def pub_pem(n: int, bits: int = 3072) -> bytes:
    """The n-th public key of this test run (RSA, generated now, cached per run)."""
    return (
        _rsa(n, bits)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def fe_key(seed: int, size: int = 32) -> bytes:
    return random.Random(f"fe-key-{seed}").randbytes(size)


# -- espefuse's own tables (independent of the module under test) --------------------------


@functools.cache
def espefuse_fields(chip: str) -> dict[str, Any]:
    mem = importlib.import_module(f"espefuse.efuse.{chip}.mem_definition")
    table = mem.EfuseDefineFields(None)
    return {f.name: f for f in [*table.EFUSES, *table.KEYBLOCKS]}


def check_invariants(plan: EfusePlan) -> None:
    fields = espefuse_fields(plan.chip)
    steps = plan.steps
    ids = [s.id for s in steps]
    assert len(set(ids)) == len(ids), ids
    phases = [PHASE_ORDER.index(s.phase) for s in steps]
    assert phases == sorted(phases), ids  # FE, then SB, then JTAG, then download
    download = [i for i, s in enumerate(steps) if s.phase == "download"]
    assert download in ([], [len(steps) - 1])  # the download lock is last of all
    for step in steps:
        names = [n for n, _ in step.fields] + list(step.protect)
        names += [step.block] if step.block else []
        assert all(n in fields for n in names), (step.id, names)  # only what the chip has
        assert (step.action == "burn") == bool(step.fields)
        assert (step.action == "write_protect") == bool(step.protect)
        assert (step.action == "burn_key") == (step.block is not None)
        if step.purpose and step.purpose.startswith("XTS_AES"):
            assert step.block != "BLOCK_KEY5"
    for i, step in enumerate(steps):
        if step.action != "write_protect":
            continue
        groups = {fields[n].write_disable_bit for n in step.protect}
        for later in steps[i + 1 :]:
            touched = {fields[n].write_disable_bit for n, _ in later.fields}
            touched |= {fields[later.block].write_disable_bit} if later.block else set()
            assert not touched & groups, f"{later.id} burns into a group {step.id} locked"
    key_blocks = [s.block for s in steps if s.block]
    assert len(set(key_blocks)) == len(key_blocks)
    used = {int(s.purpose[-1]) for s in steps if s.digest is not None and s.purpose}
    revoked = {int(n[-1]) for s in steps for n, _ in s.fields if "KEY_REVOKE" in n}
    assert not used & revoked  # only unused digest slots are revoked


# -- simulated units -----------------------------------------------------------------------


@dataclass
class Unit:
    """One simulated unit and the host side of its slot."""

    rom: RomServer
    chip: str
    lines: list[str] = field(default_factory=list)

    def flasher(self, **kwargs: Any) -> EspFlasher:
        return EspFlasher(
            str(self.rom.url), chip=self.chip, log=self.lines.append, label="slot", **kwargs
        )

    def rom_loader(self) -> EspFlasher:
        # The bare ROM loader: the simulator cannot yet start the flasher stub through
        # esptool's ESP32-S3 Secure Boot workaround (MEM_END without an entry point).
        return self.flasher(stub=False)

    def efuses(self) -> list[bytes]:
        """Every eFuse block as the simulated chip holds it (read-protected ones too)."""
        ctrl = self.rom.efuses.controller
        return [bytes(ctrl.read_block(i).bytes) for i in range(len(ctrl.Blocks.BLOCKS))]


UnitFactory = Callable[..., Awaitable[Unit]]


@pytest.fixture
async def make_unit(tmp_path: Path) -> AsyncIterator[UnitFactory]:
    """`await make_unit(name, chip=...)`: a fresh simulated unit; every unit of a test has
    the same MAC and factory eFuses, so their states compare field by field."""
    started: list[RomServer] = []

    async def make(name: str = "a", chip: str = "esp32s3") -> Unit:
        rom = RomServer(chip, state_dir=tmp_path / name, mac="24:0a:c4:00:11:21", seed=1)
        await rom.start()
        started.append(rom)
        return Unit(rom, chip)

    try:
        yield make
    finally:
        for rom in started:
            await rom.stop()


class CountingSession(EfuseSession):
    """An EfuseSession that counts the burns it passes on to espefuse: `burns` one entry
    per espefuse batch (one program cycle per block), `acts` one per act in them."""

    def __init__(self, flasher: EspFlasher) -> None:
        super().__init__(flasher)
        self.burns: list[str] = []
        self.acts: list[str] = []

    async def burn_batch(self, acts: list[Act]) -> None:
        texts = [_act_text(a) for a in acts]
        self.burns.append(" + ".join(texts))
        self.acts.extend(texts)
        await super().burn_batch(acts)


def _act_text(act: Act) -> str:
    if isinstance(act, Burn):
        return "burn:" + ",".join(act.values)
    if isinstance(act, BurnKey):
        return f"burn_key:{act.block}"
    return "write_protect:" + ",".join(act.names)


@dataclass
class RecordingJournal:
    events: list[tuple[str, str, str, dict[str, object], str]] = field(default_factory=list)
    on_intent: Callable[[BurnStep], Awaitable[None]] | None = None

    async def intent(self, batch: Sequence[tuple[BurnStep, dict[str, object]]]) -> None:
        for step, before in batch:
            self.events.append(("intent", step.id, "", dict(before), ""))
            if self.on_intent is not None:
                await self.on_intent(step)

    async def outcome(
        self, step: BurnStep, status: str, after: dict[str, object], detail: str
    ) -> None:
        self.events.append(("outcome", step.id, status, dict(after), detail))

    def trace(self) -> list[tuple[str, str, str]]:
        return [(kind, step, status) for kind, step, status, _, _ in self.events]


def full_spec(keys: int = 3, **kw: Any) -> SecuritySpec:
    return SecuritySpec(secure_boot_keys=tuple(pub_pem(i) for i in range(keys)), **kw)


async def run(
    plan: EfusePlan, unit: Unit, key: bytes | None, stop_before: str | None = None
) -> tuple[PlanReport, CountingSession, RecordingJournal]:
    """One execute on a new connection to the unit's ROM loader."""
    async with unit.rom_loader() as f:
        session = CountingSession(f)
        journal = RecordingJournal()
        report = await execute(plan, session, journal, fe_key=key, stop_before=stop_before)
        return report, session, journal


# -- building ------------------------------------------------------------------------------


@pytest.mark.parametrize("chip", CHIPS)
def test_full_plans_keep_the_workflow_order(chip: str) -> None:
    plan = build_plan(chip.upper().replace("ESP32", "ESP32-"), full_spec(2, aggressive_revoke=True))
    check_invariants(plan)
    ids = [s.id for s in plan.steps]
    assert plan.chip == chip
    assert ids[:2] == ["fe.key", "fe.crypt_cnt"]  # key before SPI_BOOT_CRYPT_CNT
    assert ids.index("fe.dis_jtag") < ids.index("fe.wp") < ids.index("sb.digest0")
    assert ids.index("sb.digest1") < ids.index("sb.en") < ids.index("sb.aggressive")
    assert ids.index("sb.wp_rd_dis") < ids.index("sb.revoke2")
    assert "sb.revoke0" not in ids and "sb.revoke1" not in ids
    assert ids[-2:] == ["jtag.soft_dis", "dl.secure"]
    [key] = [s for s in plan.steps if s.id == "fe.key"]
    assert (key.block, key.purpose) == ("BLOCK_KEY0", "XTS_AES_128_KEY")
    [crypt] = [s for s in plan.steps if s.id == "fe.crypt_cnt"]
    assert crypt.fields == (("SPI_BOOT_CRYPT_CNT", 7),)
    digests = [s.digest for s in plan.steps if s.digest is not None]
    assert digests == [sbv2_digest(pub_pem(0)), sbv2_digest(pub_pem(1))]
    lockdown = dict(next(s for s in plan.steps if s.id == "fe.lockdown").fields)
    assert ("DIS_DOWNLOAD_DCACHE" in lockdown) == (chip == "esp32s3")  # the C3 has no D-cache


def test_device_mode_off_jtag_and_disable_download() -> None:
    plan = build_plan(
        "esp32s3",
        full_spec(1, flash_encryption="device", disable_jtag=False, download="disable"),
    )
    check_invariants(plan)
    ids = [s.id for s in plan.steps]
    assert ids == ["sb.digest0", "sb.en", "sb.revoke1", "sb.revoke2", "dl.disable"]
    notes = " ".join(plan.notes)
    assert "bootloader generates the key" in notes and "RD_DIS stays writeable" in notes
    assert "JTAG is left enabled" in notes
    jtag_only = build_plan("esp32c3", SecuritySpec(flash_encryption="off", download="leave"))
    assert [s.id for s in jtag_only.steps] == ["jtag.dis_pad", "jtag.dis_usb", "jtag.soft_dis"]
    assert any("download mode left open" in n for n in jtag_only.notes)


def test_xts_256_takes_two_blocks_on_the_s3_only() -> None:
    plan = build_plan("esp32s3", SecuritySpec(fe_xts_256=True, fe_key_block="BLOCK_KEY3"))
    check_invariants(plan)
    keys = [(s.id, s.block, s.purpose) for s in plan.steps if s.action == "burn_key"]
    assert keys == [
        ("fe.key", "BLOCK_KEY3", "XTS_AES_256_KEY_1"),
        ("fe.key2", "BLOCK_KEY4", "XTS_AES_256_KEY_2"),
    ]
    with pytest.raises(PlanError, match="BLOCK_KEY5 cannot hold an XTS key"):
        build_plan("esp32s3", SecuritySpec(fe_xts_256=True, fe_key_block="BLOCK_KEY4"))
    with pytest.raises(PlanError, match="esp32c3 has no XTS-AES-256"):
        build_plan("esp32c3", SecuritySpec(fe_xts_256=True))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SecuritySpec(fe_key_block="BLOCK_KEY5"), "BLOCK_KEY5 cannot hold an XTS"),
        (SecuritySpec(fe_key_block="BLOCK_USR_DATA"), "not a key block"),
        (full_spec(0, aggressive_revoke=True), "aggressive_revoke needs secure boot"),
        (
            SecuritySpec(secure_boot_keys=(pub_pem(0), pub_pem(0))),
            "secure boot key 1 repeats key 0",
        ),
        (
            full_spec(2, secure_boot_blocks=("BLOCK_KEY0", "BLOCK_KEY1")),
            "BLOCK_KEY0 cannot hold both",
        ),
        (full_spec(2, secure_boot_blocks=("BLOCK_KEY1",)), "only 1 secure_boot_blocks"),
        (SecuritySpec(flash_encryption="cloud"), "not one of 'off', 'host', 'device'"),  # type: ignore[arg-type]
        (SecuritySpec(download="maybe"), "not one of 'secure', 'disable'"),  # type: ignore[arg-type]
    ],
)
def test_specs_that_cannot_be_planned(spec: SecuritySpec, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        build_plan("esp32s3", spec)


def test_secure_boot_keys_must_be_three_rsa_3072_public_keys_at_most() -> None:
    with pytest.raises(PlanError, match="4 secure boot keys given; the chip has 3"):
        build_plan("esp32s3", SecuritySpec(secure_boot_keys=tuple(pub_pem(i) for i in range(4))))
    private = _rsa(0).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(PlanError, match="is a private key; give the public key only"):
        build_plan("esp32s3", SecuritySpec(secure_boot_keys=(private,)))
    with pytest.raises(PlanError, match="secure boot key 0 is not RSA-3072"):
        build_plan("esp32s3", SecuritySpec(secure_boot_keys=(pub_pem(9, bits=2048),)))
    with pytest.raises(PlanError, match="not a PEM public key"):
        build_plan("esp32s3", SecuritySpec(secure_boot_keys=(b"-----BEGIN PUBLIC KEY-----",)))
    with pytest.raises(PlanError, match="no eFuse security plan for chip 'esp32'"):
        build_plan("esp32", SecuritySpec())


@settings(max_examples=80, deadline=None)
@given(
    chip=st.sampled_from(CHIPS),
    fe=st.sampled_from(["off", "host", "device"]),
    fe_block=st.integers(0, 5),
    xts_256=st.booleans(),
    keys=st.integers(0, 3),
    sb_blocks=st.permutations(range(6)),
    aggressive=st.booleans(),
    revoke=st.booleans(),
    jtag=st.booleans(),
    download=st.sampled_from(["secure", "disable", "leave"]),
)
def test_every_plan_that_builds_keeps_the_invariants(
    chip: str,
    fe: Any,
    fe_block: int,
    xts_256: bool,
    keys: int,
    sb_blocks: list[int],
    aggressive: bool,
    revoke: bool,
    jtag: bool,
    download: Any,
) -> None:
    spec = SecuritySpec(
        flash_encryption=fe,
        fe_key_block=f"BLOCK_KEY{fe_block}",
        fe_xts_256=xts_256,
        secure_boot_keys=tuple(pub_pem(i) for i in range(keys)),
        secure_boot_blocks=tuple(f"BLOCK_KEY{b}" for b in sb_blocks[:3]),
        aggressive_revoke=aggressive,
        revoke_unused_digests=revoke,
        disable_jtag=jtag,
        download=download,
    )
    fe_blocks = {fe_block, fe_block + 1} if xts_256 else {fe_block}
    must_fail = (aggressive and not keys) or (
        fe == "host"
        and (
            (xts_256 and (chip == "esp32c3" or fe_block >= 4))
            or fe_block == 5
            or bool(fe_blocks & set(sb_blocks[:keys]))
        )
    )
    try:
        plan = build_plan(chip, spec)
    except PlanError:
        assert must_fail
        return
    assert not must_fail
    check_invariants(plan)
    ids = [s.id for s in plan.steps]
    assert ("fe.key" in ids) == (fe == "host")
    assert ("dl.secure" in ids, "dl.disable" in ids) == (
        download == "secure",
        download == "disable",
    )
    revoked = [i for i in ids if i.startswith("sb.revoke")]
    assert revoked == ([f"sb.revoke{i}" for i in range(keys, 3)] if keys and revoke else [])
    jtag_fields = {n for s in plan.steps for n, _ in s.fields if "JTAG" in n}
    assert jtag_fields == ({"DIS_PAD_JTAG", "DIS_USB_JTAG", "SOFT_DIS_JTAG"} if jtag else set())


def test_sbv2_digest_equals_espsecure_cli(tmp_path: Path) -> None:
    pem = tmp_path / "sb_pub.pem"
    pem.write_bytes(pub_pem(0))
    out = tmp_path / "digest.bin"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "espsecure",
            "digest-sbv2-public-key",
            "-k",
            str(pem),
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    digest = sbv2_digest(pub_pem(0))
    assert len(digest) == 32 and digest == out.read_bytes()
    assert sbv2_digest(pub_pem(1)) != digest
    with pytest.raises(PlanError, match="not a Secure Boot V2 public key"):
        sbv2_digest(b"not a key")


# -- executing against the simulated ROM loader --------------------------------------------


async def test_execute_locks_down_a_fresh_s3(make_unit: UnitFactory) -> None:
    unit = await make_unit()
    plan = build_plan("esp32s3", full_spec(3, aggressive_revoke=True))
    key = fe_key(1)
    ids = [s.id for s in plan.steps]
    report, session, journal = await run(plan, unit, key, stop_before="dl.secure")
    assert report == PlanReport(tuple(ids[:-1]), ())
    # One espefuse batch (one program cycle per block) for every step but the download
    # fuse, which always goes last and alone.
    assert len(session.burns) == 1 and len(session.acts) == len(ids) - 1
    # The caller heard of every step before it was burned and after, in plan order.
    assert journal.trace() == [("intent", i, "") for i in ids[:-1]] + [
        ("outcome", i, "burned") for i in ids[:-1]
    ]

    # A fresh connection reads everything back with espefuse.
    async with unit.rom_loader() as f:
        assert f.info.security.secure_boot and f.info.security.flash_encryption
        fuses = await EfuseSession(f).summary()
        assert fuses["SECURE_BOOT_EN"] is True and fuses["SECURE_BOOT_AGGRESSIVE_REVOKE"] is True
        assert fuses["SPI_BOOT_CRYPT_CNT"] == 7  # odd: encryption on (and for good)
        assert fuses["KEY_PURPOSE_0"] == "XTS_AES_128_KEY" and fuses["BLOCK_KEY0"] is None
        for i in range(3):
            assert fuses[f"KEY_PURPOSE_{i + 1}"] == f"SECURE_BOOT_DIGEST{i}"
            assert fuses[f"BLOCK_KEY{i + 1}"] == sbv2_digest(pub_pem(i))
            assert fuses[f"SECURE_BOOT_KEY_REVOKE{i}"] is False  # all three slots in use
        assert fuses["DIS_PAD_JTAG"] is True and fuses["DIS_USB_JTAG"] is True
        assert fuses["SOFT_DIS_JTAG"] == 7
        assert fuses["DIS_DOWNLOAD_MANUAL_ENCRYPT"] is True and fuses["DIS_DIRECT_BOOT"] is True
        assert fuses["ENABLE_SECURITY_DOWNLOAD"] is False  # stopped before it
        wr_dis = int(fuses["WR_DIS"])  # type: ignore[call-overload]
        assert wr_dis & (1 << 2) and wr_dis & 1  # the cache/JTAG group and RD_DIS locked
        assert fuses["RD_DIS"] == 1  # only the XTS key block is read-protected

        # Resuming on this connection needs no key: the key step is recognised as done.
        session2 = CountingSession(f)
        journal2 = RecordingJournal()
        report2 = await execute(plan, session2, journal2)
        assert report2 == PlanReport(("dl.secure",), tuple(ids[:-1]))
        assert session2.burns == ["burn:ENABLE_SECURITY_DOWNLOAD"]
        assert journal2.trace()[-2:] == [
            ("intent", "dl.secure", ""),
            ("outcome", "dl.secure", "burned"),
        ]
        # The bare ROM acts on it at once: no read-back over this link, and no error.
        assert session2.link == "secure-download"
        assert journal2.events[-1][3] == {"link": "secure-download"}

    # Every later connection finds the ROM in Secure Download Mode: no eFuse access left.
    async with unit.rom_loader() as f:
        assert f.info.security.secure_download and f.info.security.secure_boot
        with pytest.raises(SecureDownloadMode):
            await EfuseSession(f).summary()
    assert unit.rom.efuses.field("ENABLE_SECURITY_DOWNLOAD")
    # The key never left the station in any form: not in the journal, not in the slot log.
    text = repr(journal.events) + repr(journal2.events) + "\n".join(unit.lines)
    assert key.hex() not in text and key.hex(" ") not in text and repr(key) not in text


_ONE_SHOT: list[list[bytes]] = []


@pytest.mark.parametrize("stop_at", [0, 1, 6, 11])
async def test_resume_at_any_step_never_burns_twice(make_unit: UnitFactory, stop_at: int) -> None:
    plan = build_plan("esp32s3", full_spec(1))
    ids = [s.id for s in plan.steps]
    assert ids[11] == "dl.secure"
    key = fe_key(2)
    if not _ONE_SHOT:  # same plan, key, MAC and factory eFuses every time: run it once
        reference = await make_unit("one-shot")
        await run(plan, reference, key)
        _ONE_SHOT.append(reference.efuses())

    unit = await make_unit("resumed")
    first, s1, _ = await run(plan, unit, key, stop_before=ids[stop_at])
    assert first.burned == tuple(ids[:stop_at]) and len(s1.acts) == stop_at
    # The station restarted: the key is gone unless the key step is still to burn.
    second, s2, journal = await run(plan, unit, key if stop_at == 0 else None)
    assert second == PlanReport(tuple(ids[stop_at:]), tuple(ids[:stop_at]))
    assert len(s1.acts) + len(s2.acts) == len(ids)  # every step burned exactly once
    assert len(s1.burns) + len(s2.burns) == (2 if 0 < stop_at < 11 else 1) + 1
    assert [e for e in journal.trace() if e[2] == "already"] == [
        ("outcome", i, "already") for i in ids[:stop_at]
    ]
    assert unit.efuses() == _ONE_SHOT[0]  # the same eFuses as a run without interruption
    assert unit.rom.efuses.field("ENABLE_SECURITY_DOWNLOAD")


async def test_a_foreign_digest_is_a_conflict_and_nothing_is_burned(
    make_unit: UnitFactory,
) -> None:
    unit = await make_unit()
    plan = build_plan("esp32s3", full_spec(2))
    foreign = sbv2_digest(pub_pem(5))
    async with unit.flasher() as f:
        # BLOCK_KEY2 is where the plan puts digest 1; another digest is there already.
        await EfuseSession(f).burn_key("BLOCK_KEY2", foreign, "SECURE_BOOT_DIGEST1")
        before = await EfuseSession(f).summary()
        session = CountingSession(f)
        journal = RecordingJournal()
        with pytest.raises(PlanConflict, match=r"sb\.digest1: BLOCK_KEY2 holds a different") as e:
            await execute(plan, session, journal, fe_key=fe_key(3))
        assert [s.step.id for s in e.value.statuses] == ["sb.digest1"]
        assert session.burns == [] and journal.events == []
        assert await session.summary() == before
        statuses = await inspect(plan, session)
        text = render(statuses)
        assert "CONFLICT: BLOCK_KEY2 holds a different secure boot digest" in text
        assert text.splitlines()[-1].startswith("CONFLICT in 1 step(s)")


@pytest.mark.parametrize(
    ("prepare", "step", "why"),
    [
        (("burn_key", "BLOCK_KEY4", "SECURE_BOOT_DIGEST0"), "sb.digest0", "BLOCK_KEY4 already"),
        (("burn_key", "BLOCK_KEY0", "HMAC_UP"), "fe.key", "already used as HMAC_UP"),
        (("burn_key", "BLOCK_KEY4", "XTS_AES_128_KEY"), "fe.key", "BLOCK_KEY4 already holds"),
        (("block_data", "BLOCK_KEY0", ""), "fe.key", "holds user data"),
        (("burn", "SECURE_BOOT_KEY_REVOKE0", ""), "sb.digest0", "slot 0 is revoked"),
    ],
)
async def test_chip_states_that_contradict_the_plan(
    make_unit: UnitFactory, prepare: tuple[str, str, str], step: str, why: str
) -> None:
    unit = await make_unit()
    plan = build_plan("esp32s3", full_spec(1))
    what, name, purpose = prepare
    async with unit.flasher() as f:
        session = CountingSession(f)
        if what == "burn_key":
            await session.burn_key(name, fe_key(4), purpose)
        elif what == "block_data":
            await session.burn_block_data(name, b"user data")
        else:
            await session.burn({name: 1})
        session.burns.clear()
        [status] = [s for s in await inspect(plan, session) if s.state == "conflict"]
        assert status.step.id == step and why in status.detail
        with pytest.raises(PlanConflict, match=why):
            await execute(plan, session, RecordingJournal(), fe_key=fe_key(3))
        assert session.burns == []


async def test_inspect_and_render_fresh_half_done_and_done(make_unit: UnitFactory) -> None:
    unit = await make_unit()
    plan = build_plan("esp32s3", full_spec(2))
    n = len(plan.steps)
    key = fe_key(5)
    async with unit.flasher() as f:
        session = EfuseSession(f)
        fresh = await inspect(plan, session)
        assert [s.state for s in fresh] == ["todo"] * n
        text = render(fresh)
        assert (
            text.count("[to burn]") == n
            and text.splitlines()[-1] == f"0 of {n} steps burned, {n} to burn"
        )
        assert text.splitlines()[0].startswith(" 1. flash_encryption fe.key")

        await execute(plan, session, RecordingJournal(), fe_key=key, stop_before="sb.en")
        half = await inspect(plan, session)
        k = [s.id for s in plan.steps].index("sb.en")
        assert [s.state for s in half] == ["done"] * k + ["todo"] * (n - k)
        assert half[0].observed == {
            "KEY_PURPOSE_0": "XTS_AES_128_KEY",
            "BLOCK_KEY0.readable": False,
            "BLOCK_KEY0.writeable": False,
            "BLOCK_KEY0.empty": None,
        }
        text = render(half)
        assert text.count("[burned]") == k and f"{k} of {n} steps burned" in text

        await execute(plan, session, RecordingJournal())
        done = await inspect(plan, session)
        assert all(s.state == "done" for s in done)
        text = render(done)
        assert text.splitlines()[-1] == f"all {n} steps burned: the unit is locked down"
        for rendered in (render(fresh), render(half), text):
            assert key.hex() not in rendered and key.hex().upper() not in rendered


async def test_execute_refuses_before_burning_without_the_key(make_unit: UnitFactory) -> None:
    unit = await make_unit()
    plan = build_plan("esp32s3", SecuritySpec())
    async with unit.flasher() as f:
        session = CountingSession(f)
        with pytest.raises(PlanError, match=r"fe\.key is still to burn and no fe_key was given"):
            await execute(plan, session, RecordingJournal())
        # A dry run that stops before the key step needs no key.
        dry = await execute(plan, session, RecordingJournal(), stop_before="fe.key")
        assert dry == PlanReport((), ())
        with pytest.raises(PlanError, match="is 16 bytes; this plan's XTS_AES_128_KEY needs 32"):
            await execute(plan, session, RecordingJournal(), fe_key=bytes(range(16)))
        with pytest.raises(PlanError, match="all zero"):
            await execute(plan, session, RecordingJournal(), fe_key=bytes(32))
        with pytest.raises(PlanError, match=r"'sb\.en' is not a step of this plan"):
            await execute(plan, session, RecordingJournal(), fe_key=fe_key(1), stop_before="sb.en")
        off = build_plan("esp32s3", SecuritySpec(flash_encryption="off"))
        with pytest.raises(PlanError, match="burns no flash encryption key"):
            await execute(off, session, RecordingJournal(), fe_key=fe_key(1))
        assert session.burns == []


async def test_a_burn_that_fails_is_journaled_and_raised(make_unit: UnitFactory) -> None:
    unit = await make_unit()
    plan = build_plan("esp32s3", SecuritySpec(download="leave"))
    f = unit.flasher()
    await f.connect()

    async def unplug(step: BurnStep) -> None:
        if step.id == "fe.lockdown":  # the connection is gone between intent and burn
            await f.close()

    journal = RecordingJournal(on_intent=unplug)
    with pytest.raises(FlashError, match="not connected"):
        await execute(plan, EfuseSession(f), journal, fe_key=fe_key(6))
    # Every step of the batch was announced, none burned, and each hears that it failed.
    ids = [s.id for s in plan.steps]
    assert journal.trace() == [("intent", i, "") for i in ids] + [
        ("outcome", i, "failed") for i in ids
    ]
    assert all("not connected" in e[4] for e in journal.events[len(ids) :])
    assert not unit.rom.efuses.field("DIS_DOWNLOAD_MANUAL_ENCRYPT")
    assert unit.rom.efuses.field("KEY_PURPOSE_0") == 0  # USER: the key was not burned


async def test_bare_rom_goes_to_secure_download_on_the_last_step(make_unit: UnitFactory) -> None:
    unit = await make_unit()
    plan = build_plan("esp32s3", SecuritySpec(flash_encryption="off", disable_jtag=False))
    assert [s.id for s in plan.steps] == ["dl.secure"]
    async with unit.flasher(stub=False) as f:
        session = EfuseSession(f)
        journal = RecordingJournal()
        report = await execute(plan, session, journal)
        assert report.burned == ("dl.secure",) and session.link == "secure-download"
        assert journal.events[-1][2:4] == ("burned", {"link": "secure-download"})
    assert unit.rom.efuses.field("ENABLE_SECURITY_DOWNLOAD")


async def test_a_c3_plan_executes_on_a_simulated_c3(make_unit: UnitFactory) -> None:
    unit = await make_unit(chip="esp32c3")
    plan = build_plan("esp32c3", full_spec(2, download="disable"))
    async with unit.flasher() as f:
        session = CountingSession(f)
        report = await execute(plan, session, RecordingJournal(), fe_key=fe_key(7))
        fuses = await session.summary()  # download mode is disabled from the next reset on
    assert report.burned == tuple(s.id for s in plan.steps)
    assert len(session.acts) == len(plan.steps) and len(session.burns) == 2
    assert fuses["KEY_PURPOSE_0"] == "XTS_AES_128_KEY" and fuses["SPI_BOOT_CRYPT_CNT"] == 7
    assert fuses["BLOCK_KEY2"] == sbv2_digest(pub_pem(1))
    assert fuses["SECURE_BOOT_EN"] is True and fuses["SECURE_BOOT_KEY_REVOKE2"] is True
    assert fuses["DIS_PAD_JTAG"] is True and fuses["SOFT_DIS_JTAG"] == 7
    assert fuses["DIS_DOWNLOAD_MODE"] is True


async def test_xts_256_burns_what_espefuse_burns_for_the_whole_key(
    make_unit: UnitFactory, tmp_path: Path
) -> None:
    key = fe_key(8, size=64)
    plan = build_plan(
        "esp32s3",
        SecuritySpec(fe_xts_256=True, disable_jtag=False, download="leave"),
    )
    ours = await make_unit("ours")
    report, _, _ = await run(plan, ours, key)
    assert report.burned == ("fe.key", "fe.key2", "fe.crypt_cnt", "fe.lockdown", "fe.wp")

    # The same key through espefuse's CLI, which splits XTS_AES_256_KEY itself.
    theirs = await make_unit("theirs")
    keyfile = tmp_path / "xts256.bin"
    keyfile.write_bytes(key)
    cli = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "espefuse", "--chip", "esp32s3", "--port", str(theirs.rom.url)],
        *["--before", "no-reset", "--do-not-confirm"],
        *["burn-key", "BLOCK_KEY0", str(keyfile), "XTS_AES_256_KEY"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await cli.communicate()
    keyfile.unlink()
    assert cli.returncode == 0, output.decode()
    assert ours.efuses()[4:6] == theirs.efuses()[4:6]  # BLOCK_KEY0 and BLOCK_KEY1, raw
    for name in ("KEY_PURPOSE_0", "KEY_PURPOSE_1", "RD_DIS"):
        assert ours.rom.efuses.field(name) == theirs.rom.efuses.field(name)
    assert ours.rom.efuses.field("KEY_PURPOSE_1") == 3  # XTS_AES_256_KEY_2

    # Half a key on the chip cannot be finished with another key's second half.
    half = await make_unit("half")
    await run(plan, half, key, stop_before="fe.key2")
    async with half.rom_loader() as f:
        with pytest.raises(PlanConflict, match="one half of the XTS-AES-256 key is burned"):
            await execute(plan, EfuseSession(f), RecordingJournal(), fe_key=fe_key(9, 64))
