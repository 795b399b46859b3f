"""The eFuse security lock-down of one unit: build the ordered plan, inspect a chip against it,
execute it in as few burns as its order allows (check, journal intent, one espefuse batch,
read back, journal outcome).

Owns `SecuritySpec` -> `EfusePlan` for ESP32-S3 and ESP32-C3 in the order of ESP-IDF's
"Security Features Enablement Workflows" (flash encryption, secure boot V2, JTAG, download
mode last), the done/todo/conflict judgement of each step and the text `ate plan` prints.
May import ate.drivers.esp (EfuseSession, errors), espsecure, espefuse (field definitions),
cryptography and the standard library.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import io
import os
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import espsecure
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ate import chips
from ate.drivers.esp.efuse import Act, Burn, BurnKey, EfuseSession, WriteProtect
from ate.drivers.esp.errors import EfuseRefused

PHASES = ("flash_encryption", "secure_boot", "jtag", "download")
# The chips whose description says ate provisions them (ate/chips).
SUPPORTED_CHIPS = tuple(c.name for c in chips.all_chips() if c.provisioning)
SB_SLOTS = 3  # SECURE_BOOT_DIGEST0..2
CRYPT_CNT_RELEASE = 7  # all three bits: flash encryption on for good
SOFT_DIS_JTAG_ALL = 7  # all three bits: JTAG soft-disabled, no HMAC re-enable left
# Burned with the flash encryption key (IDF workflow, "burn security eFuses"), when the chip
# has them: no cache or manual-encryption access from download mode, no plain direct boot.
_FE_FUSES = (
    "DIS_DOWNLOAD_ICACHE",
    "DIS_DOWNLOAD_DCACHE",
    "DIS_DIRECT_BOOT",
    "DIS_DOWNLOAD_MANUAL_ENCRYPT",
)
_FE_PROTECT = "DIS_ICACHE"  # the workflow's write-protect-efuse target (its WR_DIS group)
_JTAG_HARD = (("DIS_PAD_JTAG", "jtag.dis_pad"), ("DIS_USB_JTAG", "jtag.dis_usb"))


class PlanError(ValueError):
    """A spec that cannot be planned, or an execute() call that cannot go ahead."""


class PlanConflict(Exception):
    """The chip's eFuses contradict the plan; nothing was burned for the steps named."""

    def __init__(self, statuses: Sequence[StepStatus]) -> None:
        self.statuses = tuple(statuses)
        parts = "; ".join(f"{s.step.id}: {s.detail}" for s in self.statuses)
        super().__init__(
            f"the chip's eFuses contradict the security plan ({parts}); nothing more is "
            "burned until someone decides what this unit is"
        )


@dataclass(frozen=True)
class SecuritySpec:
    """What the lock-down should leave on the chip (see the module and DOMAIN.md)."""

    # host: the station burns an XTS-AES key it generated and forgets (the key exists in the
    # station's memory for a moment); device: the production bootloader generates the key
    # and enables encryption on first boot, the plan burns nothing for it; off: no FE.
    flash_encryption: Literal["off", "host", "device"] = "host"
    fe_key_block: str = "BLOCK_KEY0"
    fe_xts_256: bool = False  # S3 only: XTS_AES_256 in fe_key_block and the block after it
    secure_boot_keys: tuple[bytes, ...] = ()  # RSA-3072 public key PEMs, 0..3
    secure_boot_blocks: tuple[str, ...] = ("BLOCK_KEY1", "BLOCK_KEY2", "BLOCK_KEY3")
    aggressive_revoke: bool = False
    revoke_unused_digests: bool = True
    disable_jtag: bool = True
    download: Literal["secure", "disable", "leave"] = "secure"


@dataclass(frozen=True)
class BurnStep:
    id: str  # stable and unique: "fe.key", "sb.digest0", "dl.secure", ...
    phase: str  # one of PHASES
    action: str  # "burn" | "burn_key" | "write_protect"
    fields: tuple[tuple[str, int], ...] = ()  # burn: (name, value)
    block: str | None = None  # burn_key
    purpose: str | None = None  # burn_key (espefuse purpose name)
    digest: bytes | None = None  # burn_key of a secure boot digest (public)
    protect: tuple[str, ...] = ()  # write_protect: field names
    description: str = ""


@dataclass(frozen=True)
class EfusePlan:
    chip: str
    steps: tuple[BurnStep, ...]
    notes: tuple[str, ...]


StepState = Literal["done", "todo", "conflict"]


@dataclass(frozen=True)
class StepStatus:
    step: BurnStep
    state: StepState
    observed: dict[str, object]  # field values relevant to the step; never key material
    detail: str


class Journal(Protocol):
    async def intent(self, batch: Sequence[tuple[BurnStep, dict[str, object]]]) -> None:
        """The steps about to be burned together (one irreversible act), each with what
        the chip showed for it; every one of them then gets an outcome."""
        ...

    async def outcome(
        self, step: BurnStep, status: str, after: dict[str, object], detail: str
    ) -> None: ...  # status: "burned" | "already" | "failed"


@dataclass(frozen=True)
class PlanReport:
    burned: tuple[str, ...]
    already: tuple[str, ...]


# -- the chip's eFuse definitions (espefuse's own tables) ----------------------------------


@dataclass(frozen=True)
class _KeyBlock:
    name: str
    index: int  # 0..5 for BLOCK_KEY0..5
    purpose_field: str


@dataclass(frozen=True)
class _ChipDefs:
    chip: str
    wr_bit: dict[str, int | None]  # every field -> its WR_DIS bit (None: cannot be protected)
    rd_bit: dict[str, int]  # read-protectable blocks -> RD_DIS bit
    bit_len: dict[str, int]
    aliases: dict[str, str]  # alias or canonical name -> canonical name
    key_blocks: tuple[_KeyBlock, ...]
    purposes: tuple[str, ...]

    def name(self, name: str) -> str | None:
        return self.aliases.get(name.upper())

    def key_block(self, name: str) -> _KeyBlock | None:
        canonical = self.name(name)
        return next((k for k in self.key_blocks if k.name == canonical), None)


@functools.cache
def _defs(chip: str) -> _ChipDefs:
    mem: Any = importlib.import_module(f"espefuse.efuse.{chip}.mem_definition")
    kinds: Any = importlib.import_module(f"espefuse.efuse.{chip}.fields")
    table = mem.EfuseDefineFields(None)
    wr_bit: dict[str, int | None] = {}
    rd_bit: dict[str, int] = {}
    bit_len: dict[str, int] = {}
    aliases: dict[str, str] = {}
    for f in [*table.EFUSES, *table.KEYBLOCKS]:
        wr_bit[f.name] = f.write_disable_bit
        bit_len[f.name] = int(f.bit_len)
        if isinstance(f.read_disable_bit, int):
            rd_bit[f.name] = f.read_disable_bit
        for alias in [f.name, *(f.alt_names or [])]:
            aliases[alias.upper()] = f.name
    key_blocks: list[_KeyBlock] = []
    for (
        name,
        alias,
        _index,
        _rd,
        _wr,
        _wr_bit,
        rd_dis,
        _len,
        purpose,
    ) in mem.EfuseDefineBlocks.BLOCKS:
        for a in [name, *alias]:
            aliases.setdefault(a.upper(), name)
        if purpose is not None:
            key_blocks.append(_KeyBlock(name, int(rd_dis), purpose))
    purposes = tuple(p[0] for p in kinds.EfuseKeyPurposeField.KEY_PURPOSES if p[1] >= 0)
    return _ChipDefs(chip, wr_bit, rd_bit, bit_len, aliases, tuple(key_blocks), purposes)


def _chip(name: str) -> str:
    chip = name.lower().replace("-", "").replace("_", "")
    if chip not in SUPPORTED_CHIPS:
        raise PlanError(
            f"no eFuse security plan for chip {name!r}; "
            f"plans exist for {', '.join(SUPPORTED_CHIPS)}"
        )
    return chip


# -- building ------------------------------------------------------------------------------


def sbv2_digest(public_key_pem: bytes) -> bytes:
    """The Secure Boot V2 key digest (SHA-256 of the signature block's public-key part) that
    goes into a SECURE_BOOT_DIGESTn block, computed by espsecure."""
    try:
        # espsecure's digest-sbv2-public-key without its output file.
        digest = espsecure._digest_sbv2_public_key(io.BytesIO(public_key_pem))
    except Exception as e:
        raise PlanError(f"not a Secure Boot V2 public key: {' '.join(str(e).split())}") from e
    return bytes(digest)


def _check_sb_key(index: int, pem: bytes) -> None:
    if b"PRIVATE KEY" in pem:
        raise PlanError(
            f"secure boot key {index} is a private key; give the public key only (the "
            "signing key never belongs on a station)"
        )
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise PlanError(f"secure boot key {index} is not a PEM public key ({e})") from e
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != 3072:
        raise PlanError(
            f"secure boot key {index} is not RSA-3072; Secure Boot V2 on ESP32-S3/C3 "
            "accepts RSA-3072 keys only"
        )


def _key_block(defs: _ChipDefs, name: str, what: str) -> _KeyBlock:
    blk = defs.key_block(name)
    if blk is None:
        names = ", ".join(k.name for k in defs.key_blocks)
        raise PlanError(f"{what} {name!r} is not a key block of the {defs.chip}; one of {names}")
    return blk


def _burn(step_id: str, phase: str, fields: Sequence[tuple[str, int]], text: str) -> BurnStep:
    return BurnStep(step_id, phase, "burn", fields=tuple(fields), description=text)


def _flash_encryption_steps(
    defs: _ChipDefs, spec: SecuritySpec, notes: list[str]
) -> tuple[list[BurnStep], list[str]]:
    """FE steps and the key blocks they take."""
    if spec.flash_encryption == "off":
        notes.append("flash encryption is off: anyone holding the unit can read its flash")
        return [], []
    if spec.flash_encryption == "device":
        notes.append(
            "flash encryption in device mode: the production bootloader generates the key, "
            "burns SPI_BOOT_CRYPT_CNT and its security fuses on first boot; this plan burns "
            "no flash encryption key and no SPI_BOOT_CRYPT_CNT, and leaves RD_DIS writeable "
            "so the bootloader can read-protect its key"
        )
        return [], []
    if spec.flash_encryption != "host":
        raise PlanError(
            f"flash_encryption {spec.flash_encryption!r} is not one of 'off', 'host', 'device'"
        )
    first = _key_block(defs, spec.fe_key_block, "fe_key_block")
    steps: list[BurnStep] = []
    if spec.fe_xts_256:
        if "XTS_AES_256_KEY_1" not in defs.purposes:
            raise PlanError(
                f"the {defs.chip} has no XTS-AES-256 flash encryption; set fe_xts_256 False "
                "(XTS_AES_128_KEY)"
            )
        later = [k for k in defs.key_blocks if k.index == first.index + 1]
        if not later or later[0].index == 5 or first.index == 5:
            raise PlanError(
                f"an XTS-AES-256 key takes {first.name} and the block after it, and "
                "BLOCK_KEY5 cannot hold an XTS key: choose fe_key_block BLOCK_KEY0..3"
            )
        second = later[0]
        steps.append(
            BurnStep(
                "fe.key",
                "flash_encryption",
                "burn_key",
                block=first.name,
                purpose="XTS_AES_256_KEY_1",
                description=f"Burn the first half of the station's XTS-AES-256 flash "
                f"encryption key into {first.name}, read- and write-protected",
            )
        )
        steps.append(
            BurnStep(
                "fe.key2",
                "flash_encryption",
                "burn_key",
                block=second.name,
                purpose="XTS_AES_256_KEY_2",
                description=f"Burn the second half of the XTS-AES-256 key into "
                f"{second.name}, read- and write-protected",
            )
        )
        blocks = [first.name, second.name]
    else:
        if first.index == 5:
            raise PlanError(
                "BLOCK_KEY5 cannot hold an XTS flash encryption key (a hardware quirk); "
                "choose fe_key_block BLOCK_KEY0..4"
            )
        steps.append(
            BurnStep(
                "fe.key",
                "flash_encryption",
                "burn_key",
                block=first.name,
                purpose="XTS_AES_128_KEY",
                description=f"Burn the station's XTS-AES-128 flash encryption key into "
                f"{first.name}, read- and write-protected",
            )
        )
        blocks = [first.name]
    steps.append(
        _burn(
            "fe.crypt_cnt",
            "flash_encryption",
            [("SPI_BOOT_CRYPT_CNT", CRYPT_CNT_RELEASE)],
            "Enable flash encryption for good (SPI_BOOT_CRYPT_CNT = 7, release mode)",
        )
    )
    fuses = [(n, 1) for n in _FE_FUSES if n in defs.wr_bit]
    steps.append(
        _burn(
            "fe.lockdown",
            "flash_encryption",
            fuses,
            "Close download-mode cache and manual-encryption access and plain direct boot ("
            + ", ".join(n for n, _ in fuses)
            + ")",
        )
    )
    group = defs.wr_bit[_FE_PROTECT]
    jtag = [(n, 1) for n, _ in _JTAG_HARD if n in defs.wr_bit and defs.wr_bit[n] == group]
    if spec.disable_jtag and jtag:
        steps.append(
            _burn(
                "fe.dis_jtag",
                "flash_encryption",
                jtag,
                "Disable JTAG (" + ", ".join(n for n, _ in jtag) + ") now: the next step "
                "write-protects their group",
            )
        )
    elif jtag:
        notes.append(
            "JTAG stays enabled, and for good: flash encryption write-protects the group "
            f"that holds {', '.join(n for n, _ in jtag)} (WR_DIS bit {group})"
        )
    steps.append(
        BurnStep(
            "fe.wp",
            "flash_encryption",
            "write_protect",
            protect=(_FE_PROTECT,),
            description=f"Write-protect the cache/JTAG/manual-encryption fuses "
            f"(WR_DIS bit {group}, via {_FE_PROTECT})",
        )
    )
    notes.append(
        "flash encryption by the station: the key exists in the station's memory while it "
        "is burned; images must be flashed encrypted with it before the unit first boots"
    )
    return steps, blocks


def _secure_boot_steps(
    defs: _ChipDefs, spec: SecuritySpec, fe_blocks: list[str], notes: list[str]
) -> list[BurnStep]:
    keys = spec.secure_boot_keys
    if not keys:
        if spec.aggressive_revoke:
            raise PlanError("aggressive_revoke needs secure boot: give secure_boot_keys")
        notes.append("secure boot is off: the unit runs any firmware written to it")
        return []
    if len(keys) > SB_SLOTS:
        raise PlanError(f"{len(keys)} secure boot keys given; the chip has {SB_SLOTS} digest slots")
    if len(spec.secure_boot_blocks) < len(keys):
        raise PlanError(
            f"{len(keys)} secure boot keys but only {len(spec.secure_boot_blocks)} "
            "secure_boot_blocks to hold their digests"
        )
    blocks = [_key_block(defs, b, "secure boot block").name for b in spec.secure_boot_blocks]
    blocks = blocks[: len(keys)]
    if len(set(blocks)) != len(blocks):
        raise PlanError(f"secure_boot_blocks repeat a block: {', '.join(blocks)}")
    taken = sorted(set(blocks) & set(fe_blocks))
    if taken:
        raise PlanError(
            f"{', '.join(taken)} cannot hold both the flash encryption key and a secure "
            "boot digest; choose other blocks"
        )
    digests: list[bytes] = []
    for i, pem in enumerate(keys):
        _check_sb_key(i, pem)
        digest = sbv2_digest(pem)
        if digest in digests:
            raise PlanError(f"secure boot key {i} repeats key {digests.index(digest)}")
        digests.append(digest)
    steps = [
        BurnStep(
            f"sb.digest{i}",
            "secure_boot",
            "burn_key",
            block=block,
            purpose=f"SECURE_BOOT_DIGEST{i}",
            digest=digest,
            description=f"Burn secure boot key digest {i} ({digest.hex()[:16]}...) into "
            f"{block}, write-protected",
        )
        for i, (block, digest) in enumerate(zip(blocks, digests, strict=True))
    ]
    steps.append(_burn("sb.en", "secure_boot", [("SECURE_BOOT_EN", 1)], "Enable Secure Boot V2"))
    if spec.aggressive_revoke:
        steps.append(
            _burn(
                "sb.aggressive",
                "secure_boot",
                [("SECURE_BOOT_AGGRESSIVE_REVOKE", 1)],
                "Revoke a key digest as soon as a signature made with it fails",
            )
        )
    if spec.flash_encryption == "device":
        notes.append(
            "RD_DIS stays writeable (the bootloader must read-protect its flash encryption "
            "key); write-protect it after the first boot"
        )
    else:
        steps.append(
            BurnStep(
                "sb.wp_rd_dis",
                "secure_boot",
                "write_protect",
                protect=("RD_DIS",),
                description="Write-protect RD_DIS so no digest block can be read-protected "
                "later (no key can be read-protected after this)",
            )
        )
    if spec.revoke_unused_digests:
        steps.extend(
            _burn(
                f"sb.revoke{i}",
                "secure_boot",
                [(f"SECURE_BOOT_KEY_REVOKE{i}", 1)],
                f"Revoke the unused digest slot {i}, so no key can be added to it",
            )
            for i in range(len(keys), SB_SLOTS)
        )
    return steps


def _jtag_steps(defs: _ChipDefs, spec: SecuritySpec, done: set[str]) -> list[BurnStep]:
    if not spec.disable_jtag:
        return []
    steps = [
        _burn(step_id, "jtag", [(name, 1)], f"Disable JTAG for good ({name})")
        for name, step_id in _JTAG_HARD
        if name in defs.wr_bit and name not in done
    ]
    if "SOFT_DIS_JTAG" in defs.wr_bit:
        steps.append(
            _burn(
                "jtag.soft_dis",
                "jtag",
                [("SOFT_DIS_JTAG", SOFT_DIS_JTAG_ALL)],
                "Soft-disable JTAG with no HMAC re-enable left (SOFT_DIS_JTAG = 7)",
            )
        )
    return steps


def _download_steps(spec: SecuritySpec, notes: list[str]) -> list[BurnStep]:
    if spec.download == "secure":
        return [
            _burn(
                "dl.secure",
                "download",
                [("ENABLE_SECURITY_DOWNLOAD", 1)],
                "Secure Download Mode: the ROM loader then only writes flash and reports "
                "security info (no eFuse burns after this)",
            )
        ]
    if spec.download == "disable":
        return [
            _burn(
                "dl.disable",
                "download",
                [("DIS_DOWNLOAD_MODE", 1)],
                "Disable the ROM download mode for good (no flashing or eFuse access after "
                "the next reset)",
            )
        ]
    if spec.download == "leave":
        notes.append("download mode left open: anyone with the UART can read flash and burn eFuses")
        return []
    raise PlanError(f"download {spec.download!r} is not one of 'secure', 'disable', 'leave'")


def _check_plan(defs: _ChipDefs, steps: Sequence[BurnStep]) -> None:
    """The invariants every plan keeps (a failure here is a bug in this module)."""
    ids = [s.id for s in steps]
    if len(set(ids)) != len(ids):
        raise AssertionError(f"step ids repeat: {ids}")
    order = [PHASES.index(s.phase) for s in steps]
    if order != sorted(order):
        raise AssertionError("phases out of order")
    for i, step in enumerate(steps):
        names = [n for n, _ in step.fields] + list(step.protect)
        if any(n not in defs.wr_bit for n in names):
            raise AssertionError(f"{step.id} names a field the {defs.chip} does not have")
        if step.action != "write_protect":
            continue
        groups = {defs.wr_bit[n] for n in step.protect}
        for later in steps[i + 1 :]:
            touched = {defs.wr_bit[n] for n, _ in later.fields}
            if later.block is not None:
                touched.add(defs.wr_bit[later.block])
            if touched & groups:
                raise AssertionError(f"{later.id} burns into a group {step.id} protected")


def build_plan(chip: str, spec: SecuritySpec) -> EfusePlan:
    """The ordered lock-down for `chip`; PlanError says why a spec cannot be planned."""
    defs = _defs(_chip(chip))
    notes: list[str] = []
    fe, fe_blocks = _flash_encryption_steps(defs, spec, notes)
    sb = _secure_boot_steps(defs, spec, fe_blocks, notes)
    jtag_done = {n for s in fe for n, _ in s.fields}
    steps = [*fe, *sb, *_jtag_steps(defs, spec, jtag_done), *_download_steps(spec, notes)]
    if not spec.disable_jtag:
        notes.append("JTAG is left enabled: a debugger can halt the CPU and read memory")
    _check_plan(defs, steps)
    return EfusePlan(defs.chip, tuple(steps), tuple(notes))


# -- judging a chip against the plan -------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    defs: _ChipDefs
    values: dict[str, object]

    def number(self, name: str) -> int:
        value = self.values[name]
        return int(value) if isinstance(value, bool | int) else 0

    def writeable(self, name: str) -> bool:
        bit = self.defs.wr_bit[name]
        return bit is None or not (self.number("WR_DIS") >> bit) & 1

    def readable(self, name: str) -> bool:
        bit = self.defs.rd_bit.get(name)
        return bit is None or not (self.number("RD_DIS") >> bit) & 1

    def purpose_holders(self, purpose: str) -> list[str]:
        return [k.name for k in self.defs.key_blocks if self.values[k.purpose_field] == purpose]


async def _snapshot(plan: EfusePlan, session: EfuseSession) -> _Snapshot:
    values = await session.summary()
    defs = _defs(plan.chip)
    wanted = {"WR_DIS", "RD_DIS"} | {n for s in plan.steps for n, _ in s.fields}
    wanted |= {k.name for k in defs.key_blocks} | {k.purpose_field for k in defs.key_blocks}
    missing = sorted(n for n in wanted if n not in values)
    if missing:
        raise PlanError(
            f"the chip has no eFuse {', '.join(missing)}: this plan was built for an "
            f"{plan.chip}; build it for the chip in the slot"
        )
    return _Snapshot(defs, values)


def _judge_burn(step: BurnStep, snap: _Snapshot) -> StepStatus:
    observed: dict[str, object] = {n: snap.values[n] for n, _ in step.fields}
    pending: list[str] = []
    for name, target in step.fields:
        now = snap.number(name)
        if now & ~target:
            return StepStatus(
                step,
                "conflict",
                observed,
                f"{name} is {now:#x}, which has bits the plan's {target:#x} does not",
            )
        if now != target:
            if not snap.writeable(name):
                return StepStatus(
                    step,
                    "conflict",
                    observed,
                    f"{name} is {now:#x}, not {target:#x}, and is write-protected",
                )
            pending.append(name)
    if pending:
        return StepStatus(step, "todo", observed, f"to burn: {', '.join(pending)}")
    return StepStatus(step, "done", observed, "already burned")


def _judge_protect(step: BurnStep, snap: _Snapshot) -> StepStatus:
    observed: dict[str, object] = {f"{n}.writeable": snap.writeable(n) for n in step.protect}
    observed["WR_DIS"] = hex(snap.number("WR_DIS"))
    open_ = [n for n in step.protect if snap.writeable(n)]
    if open_:
        return StepStatus(step, "todo", observed, f"still writeable: {', '.join(open_)}")
    return StepStatus(step, "done", observed, "already write-protected")


def _judge_key(
    step: BurnStep,
    snap: _Snapshot,
    planned: frozenset[tuple[str, str]],
    interrupted: frozenset[str] = frozenset(),
) -> StepStatus:
    assert step.block is not None and step.purpose is not None
    blk = snap.defs.key_block(step.block)
    assert blk is not None
    purpose_now = snap.values[blk.purpose_field]
    readable, writeable = snap.readable(blk.name), snap.writeable(blk.name)
    observed: dict[str, object] = {
        blk.purpose_field: purpose_now,
        f"{blk.name}.readable": readable,
        f"{blk.name}.writeable": writeable,
    }
    data = snap.values[blk.name]
    empty = isinstance(data, bytes) and not any(data)
    digest = step.digest
    if digest is not None:
        # A digest is public: it may be shown and compared.
        observed[blk.name] = data.hex() if isinstance(data, bytes) else None
    else:
        observed[f"{blk.name}.empty"] = empty if readable else None  # never the key itself

    def conflict(why: str) -> StepStatus:
        return StepStatus(step, "conflict", observed, why)

    others = [b for b in snap.purpose_holders(step.purpose) if b != blk.name]
    if others:
        return conflict(f"{', '.join(others)} already holds a {step.purpose} key")
    if step.purpose.startswith("XTS_AES"):
        foreign = [
            k.name
            for k in snap.defs.key_blocks
            if str(snap.values[k.purpose_field]).startswith("XTS_AES")
            and (k.name, str(snap.values[k.purpose_field])) not in planned
        ]
        if foreign:
            return conflict(f"{', '.join(foreign)} already holds a flash encryption key")
    if digest is not None:
        slot = int(step.purpose[-1])
        revoke = f"SECURE_BOOT_KEY_REVOKE{slot}"
        if snap.number(revoke):
            return conflict(f"digest slot {slot} is revoked ({revoke} burned)")
    if purpose_now == step.purpose:
        if digest is not None and data != digest:
            return conflict(f"{blk.name} holds a different secure boot digest")
        if digest is None and readable and empty:
            return conflict(f"{blk.name} has purpose {step.purpose} but holds no key")
        unfinished = (digest is None and readable) or writeable or snap.writeable(blk.purpose_field)
        if unfinished and step.id not in interrupted:
            return conflict(
                f"{blk.name} holds its {step.purpose} but it or its purpose is still "
                "unprotected, and this station did not leave it so: someone must decide"
            )
        if unfinished:
            # espefuse burns the key block, then the purpose, then (postponed to the end of
            # its batch) read and write protection: the power went in between.
            observed["interrupted"] = True
            observed["needs_key"] = digest is None and readable
            return StepStatus(
                step,
                "todo",
                observed,
                f"{blk.name} holds its {step.purpose} from an interrupted burn-key; its "
                "protection is still to burn",
            )
        return StepStatus(step, "done", observed, f"{blk.name} holds the {step.purpose}")
    if purpose_now != "USER":
        return conflict(f"{blk.name} is already used as {purpose_now}")
    if not readable or not writeable or not snap.writeable(blk.purpose_field):
        return conflict(f"{blk.name} is not free: it is read- or write-protected")
    if not empty:
        # espefuse programs the key block before BLOCK0 (purpose, protection): power lost
        # in between leaves the key in place, still readable, its purpose still USER.
        if digest is not None and data != digest:
            return conflict(f"{blk.name} holds user data, not this plan's digest")
        if step.id not in interrupted or planned_partial(step, snap) is None:
            return conflict(f"{blk.name} holds user data")
        observed["interrupted"] = True
        observed["needs_key"] = digest is None
        return StepStatus(
            step,
            "todo",
            observed,
            f"{blk.name} holds the key of an interrupted burn-key; its purpose and "
            "protection are still to burn",
        )
    return StepStatus(step, "todo", observed, f"{blk.name} is free")


def planned_partial(step: BurnStep, snap: _Snapshot) -> bytes | None:
    """The key an interrupted burn-key left in `step`'s block (purpose still USER, block
    readable): as the station generated it, or None. Only the flash-encryption key step
    of the plan and its own block qualify."""
    if step.action != "burn_key" or step.block is None or step.purpose is None:
        return None
    blk = snap.defs.key_block(step.block)
    if blk is None or snap.values[blk.purpose_field] not in ("USER", step.purpose):
        return None
    data = snap.values[blk.name]
    if not isinstance(data, bytes) or not any(data) or not snap.readable(blk.name):
        return None
    if step.digest is not None:
        return data
    # XTS keys are stored reversed (espefuse's KEY_PURPOSES "Reverse").
    return data[::-1] if step.purpose.startswith("XTS_AES") else data


def fe_key_bytes(plan: EfusePlan) -> int:
    """The size of the flash-encryption key the plan burns: 32 (XTS-AES-128), 64
    (XTS-AES-256, two blocks), 0 when it burns none."""
    return 32 * sum(1 for s in plan.steps if s.action == "burn_key" and s.digest is None)


def _free_block(step: BurnStep, snap: _Snapshot) -> bool:
    blk = snap.defs.key_block(step.block or "")
    if blk is None or snap.values[blk.purpose_field] != "USER":
        return False
    data = snap.values[blk.name]
    return (
        isinstance(data, bytes)
        and not any(data)
        and snap.readable(blk.name)
        and snap.writeable(blk.name)
        and snap.writeable(blk.purpose_field)
    )


async def interrupted_key(plan: EfusePlan, session: EfuseSession) -> bytes | None:
    """The flash-encryption key an interrupted burn-key left readable on the chip, for the
    station to finish that burn with (and to encrypt the images it writes with it).

    An XTS-AES-256 key is two blocks programmed one after the other in the same burn: a
    power cut between them leaves one half on the chip and the other nowhere (it lived in
    the station's memory). The half on the chip is kept (its bits cannot be taken back)
    and the missing half is made afresh: nothing was ever encrypted with the new key, and
    everything encrypted with the old one is encrypted and written again."""
    snap = await _snapshot(plan, session)
    parts: list[bytes | None] = []
    for step in plan.steps:
        if step.action == "burn_key" and step.digest is None:
            key = planned_partial(step, snap)
            if key is None and not _free_block(step, snap):
                return None
            parts.append(key)
    if not any(p is not None for p in parts):
        return None
    return b"".join(p if p is not None else os.urandom(32) for p in parts)


def _judge_revoke(step: BurnStep, snap: _Snapshot, status: StepStatus) -> StepStatus:
    """A slot to revoke must be unused: a digest there is one the plan does not know."""
    name = step.fields[0][0]
    if status.state != "todo" or not name.startswith("SECURE_BOOT_KEY_REVOKE"):
        return status
    slot = name[-1]
    holders = snap.purpose_holders(f"SECURE_BOOT_DIGEST{slot}")
    if holders:
        return StepStatus(
            step,
            "conflict",
            status.observed,
            f"digest slot {slot} holds a digest the plan does not know (in "
            f"{', '.join(holders)}); revoking it is for a person to decide",
        )
    return status


def _planned_keys(plan: EfusePlan) -> frozenset[tuple[str, str]]:
    return frozenset(
        (s.block, s.purpose) for s in plan.steps if s.block is not None and s.purpose is not None
    )


def _judge(
    step: BurnStep,
    snap: _Snapshot,
    planned: frozenset[tuple[str, str]],
    interrupted: frozenset[str] = frozenset(),
) -> StepStatus:
    if step.action == "burn_key":
        return _judge_key(step, snap, planned, interrupted)
    if step.action == "write_protect":
        return _judge_protect(step, snap)
    return _judge_revoke(step, snap, _judge_burn(step, snap))


async def inspect(
    plan: EfusePlan, session: EfuseSession, *, interrupted: Collection[str] = ()
) -> list[StepStatus]:
    """Each step's state on the chip behind `session`: done, todo or conflict. One read of
    the eFuses (protection from WR_DIS/RD_DIS and espefuse's tables); never burns."""
    snap = await _snapshot(plan, session)
    planned = _planned_keys(plan)
    return [_judge(step, snap, planned, frozenset(interrupted)) for step in plan.steps]


_STATE_TEXT = {"done": "burned", "todo": "to burn"}


def render(statuses: Sequence[StepStatus]) -> str:
    """The text `ate plan` prints: one numbered line per step and a final verdict."""
    lines = []
    width = max((len(s.step.id) for s in statuses), default=0)
    for i, s in enumerate(statuses, 1):
        state = _STATE_TEXT.get(s.state) or f"CONFLICT: {s.detail}"
        lines.append(
            f"{i:2d}. {s.step.phase:<16} {s.step.id:<{width}}  {s.step.description}  [{state}]"
        )
    done = sum(s.state == "done" for s in statuses)
    todo = sum(s.state == "todo" for s in statuses)
    conflicts = sum(s.state == "conflict" for s in statuses)
    if conflicts:
        lines.append(
            f"CONFLICT in {conflicts} step(s): the chip contradicts the plan, nothing will "
            f"be burned ({done} burned, {todo} to burn)"
        )
    elif todo:
        lines.append(f"{done} of {len(statuses)} steps burned, {todo} to burn")
    else:
        lines.append(f"all {len(statuses)} steps burned: the unit is locked down")
    return "\n".join(lines)


# -- executing -----------------------------------------------------------------------------


def _key_parts(plan: EfusePlan, fe_key: bytes | None) -> dict[str, bytes]:
    """The key bytes each fe key step burns, checked against the plan."""
    steps = [s for s in plan.steps if s.action == "burn_key" and s.digest is None]
    if not steps:
        if fe_key is not None:
            raise PlanError("fe_key given but this plan burns no flash encryption key")
        return {}
    if fe_key is None:
        return {}
    size = 32 * len(steps)
    if len(fe_key) != size:
        raise PlanError(
            f"the flash encryption key is {len(fe_key)} bytes; this plan's "
            f"{steps[0].purpose} needs {size}"
        )
    if not any(fe_key):
        raise PlanError("the flash encryption key is all zero; generate a random key")
    return {s.id: fe_key[32 * i : 32 * (i + 1)] for i, s in enumerate(steps)}


async def _finish_key(
    step: BurnStep, session: EfuseSession, snap: _Snapshot, key: bytes | None
) -> None:
    """Complete an interrupted burn-key: the data is in place (checked equal to what this
    step burns), its purpose, read protection (for secret keys) and write protection
    are not."""
    assert step.block is not None and step.purpose is not None
    blk = snap.defs.key_block(step.block)
    assert blk is not None
    secret = step.digest is None
    if snap.readable(blk.name):  # what is there can (and must) be checked
        there = planned_partial(step, snap)
        want = step.digest if not secret else key
        if there is None or want is None or there != want:
            raise EfuseRefused(step.id, f"{blk.name} does not hold the key this step burns")
    if snap.values[blk.purpose_field] == "USER":
        await session.burn({blk.purpose_field: snap.defs.purposes.index(step.purpose)})
    if secret and snap.readable(blk.name):
        rd_bit = snap.defs.rd_bit[blk.name]
        await session.burn({"RD_DIS": snap.number("RD_DIS") | 1 << rd_bit})
    still = [n for n in (blk.name, blk.purpose_field) if snap.writeable(n)]
    if still:
        await session.write_protect(still)


def _act(step: BurnStep, key: bytes | None) -> Act:
    """The espefuse act that burns `step` from scratch."""
    if step.action == "burn":
        return Burn(dict(step.fields))
    if step.action == "write_protect":
        return WriteProtect(step.protect)
    assert step.block is not None and step.purpose is not None
    material = step.digest if step.digest is not None else key
    assert material is not None
    return BurnKey(step.block, material, step.purpose)


def _alone(step: BurnStep, status: StepStatus) -> bool:
    """A step burned on its own rather than in a batch: finishing an interrupted key
    takes several burns judged one by one, and a download-mode fuse may end the link
    (no read-back after it), so it must be the last burn and alone."""
    return bool(status.observed.get("interrupted")) or step.phase == "download"


async def execute(
    plan: EfusePlan,
    session: EfuseSession,
    journal: Journal,
    *,
    fe_key: bytes | None = None,
    stop_before: str | None = None,
    interrupted: Collection[str] = (),
    before_download: Callable[[], Awaitable[None]] | None = None,
) -> PlanReport:
    """Bring the chip to the plan, never burning a step twice, in as few burns as the
    plan's order allows.

    Reads the chip first and refuses (nothing burned) on any conflict or a missing fe_key.
    Steps already done get outcome "already". The steps still to burn go in one espefuse
    batch (one program cycle per block, lock bits and download fuses last, one read-back:
    the order the plan's write protections need): intent for each (the caller records it
    durably), the burn, the chip read again, outcome "burned" or "failed" for each (then
    raises). Finishing an interrupted key and a download-mode fuse burn on their own
    (`_alone`), in plan order. A burn that raises gets outcome "failed" for every step in
    it and is re-raised; a cancellation gets no outcome (the burn may still land: inspect
    again). `stop_before` names the step to stop in front of. `before_download` is
    awaited once, after every earlier step has landed and before the first download-mode
    step (or at the end when the plan has none): the last moment the ROM loader still
    reads and writes flash freely.
    """
    if stop_before is not None and stop_before not in {s.id for s in plan.steps}:
        raise PlanError(f"stop_before {stop_before!r} is not a step of this plan")
    keys = _key_parts(plan, fe_key)
    planned = _planned_keys(plan)
    snap = await _snapshot(plan, session)
    cut = frozenset(interrupted)
    first = [_judge(step, snap, planned, cut) for step in plan.steps]
    conflicts = [s for s in first if s.state == "conflict"]
    if conflicts:
        raise PlanConflict(conflicts)
    fe_keys = [s for s in first if s.step.action == "burn_key" and s.step.digest is None]
    ids = [s.id for s in plan.steps]
    to_run = set(ids[: ids.index(stop_before)] if stop_before is not None else ids)
    need_key = [
        s.step.id for s in fe_keys if s.state == "todo" and s.observed.get("needs_key", True)
    ]
    if need_key and len(need_key) < len(fe_keys):
        raise PlanConflict(
            [
                dataclasses.replace(
                    s,
                    state="conflict",
                    detail="one half of the XTS-AES-256 key is burned and the other is not; "
                    "the key it came from cannot be checked",
                )
                for s in fe_keys
                if s.state == "todo"
            ]
        )
    if not keys and any(step_id in to_run for step_id in need_key):
        raise PlanError(
            f"{', '.join(need_key)} is still to burn and no fe_key was given; pass the "
            "freshly generated flash encryption key"
        )
    run = _Run(plan, session, journal, planned, cut, keys, snap)
    batch: list[BurnStep] = []
    hook = before_download
    for step in plan.steps:
        if step.id == stop_before:
            break
        if step.phase == "download" and hook is not None:
            await run.burn(batch)
            batch = []
            await hook()
            hook = None
        # Judged on the chip as read before the pending batch: a step's state never
        # depends on an earlier step of the same batch (the plan's order is kept by the
        # batch itself: everything lands before the lock bits).
        status = _judge(step, run.snap, planned, cut)
        if status.state == "conflict":
            raise PlanConflict([status])
        if status.state == "done":
            await journal.outcome(step, "already", status.observed, status.detail)
            run.already.append(step.id)
        elif _alone(step, status):
            await run.burn(batch)
            batch = []
            await run.burn_alone(step)
        else:
            batch.append(step)
    await run.burn(batch)
    if hook is not None and stop_before is None:
        await hook()
    return PlanReport(tuple(run.burned), tuple(run.already))


@dataclass
class _Run:
    """One execute(): the chip as last read and what was burned, with the two ways a
    step is burned (in a batch, or alone)."""

    plan: EfusePlan
    session: EfuseSession
    journal: Journal
    planned: frozenset[tuple[str, str]]
    cut: frozenset[str]
    keys: dict[str, bytes]
    snap: _Snapshot
    burned: list[str] = dataclasses.field(default_factory=list)
    already: list[str] = dataclasses.field(default_factory=list)

    async def burn(self, steps: list[BurnStep]) -> None:
        """Intent for each, one batch, one read-back, outcome for each."""
        if not steps:
            return
        await self.journal.intent(
            [(step, _judge(step, self.snap, self.planned, self.cut).observed) for step in steps]
        )
        try:
            await self.session.burn_batch([_act(s, self.keys.get(s.id)) for s in steps])
        except Exception as e:
            await self._failed(steps, str(e))
            raise
        await self._read_back(steps)

    async def burn_alone(self, step: BurnStep) -> None:
        status = _judge(step, self.snap, self.planned, self.cut)
        await self.journal.intent([(step, status.observed)])
        try:
            if status.observed.get("interrupted"):
                await _finish_key(step, self.session, self.snap, self.keys.get(step.id))
            else:
                await self.session.burn_batch([_act(step, self.keys.get(step.id))])
        except Exception as e:
            await self._failed([step], str(e))
            raise
        if self.session.link != "normal":
            # The download fuse took effect at once: the chip no longer answers eFuse
            # reads on this link; espefuse's burn went through.
            await self.journal.outcome(
                step,
                "burned",
                {"link": self.session.link},
                f"burned; the chip is now {self.session.link} on this link, no read-back",
            )
            self.burned.append(step.id)
            return
        await self._read_back([step])

    async def _failed(self, steps: list[BurnStep], why: str) -> None:
        try:
            snap: _Snapshot | None = await _snapshot(self.plan, self.session)
        except Exception:
            snap = None
        for step in steps:
            after = _judge(step, snap, self.planned, self.cut) if snap is not None else None
            await self.journal.outcome(step, "failed", after.observed if after else {}, why)

    async def _read_back(self, steps: list[BurnStep]) -> None:
        self.snap = await _snapshot(self.plan, self.session)
        failed: EfuseRefused | None = None
        for step in steps:
            result = _judge(step, self.snap, self.planned, self.cut)
            if result.state == "done":
                await self.journal.outcome(step, "burned", result.observed, "burned and read back")
                self.burned.append(step.id)
                continue
            detail = f"read back after burning: {result.detail}"
            await self.journal.outcome(step, "failed", result.observed, detail)
            failed = failed or EfuseRefused(step.id, detail)
        if failed is not None:
            raise failed


__all__ = [
    "PHASES",
    "BurnStep",
    "EfusePlan",
    "Journal",
    "PlanConflict",
    "PlanError",
    "PlanReport",
    "SecuritySpec",
    "StepState",
    "StepStatus",
    "build_plan",
    "execute",
    "fe_key_bytes",
    "inspect",
    "interrupted_key",
    "render",
    "sbv2_digest",
]
