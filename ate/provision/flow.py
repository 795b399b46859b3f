"""Provision one unit that passed: identity, device key and certificate, proof of
possession, partitions, production firmware, eFuse lock-down last.

Every step checks the unit's state first, so a re-run after a power loss at any instant
continues where the unit is; every irreversible act is recorded in the station's journal
(intent before, outcome after) and announced on the event stream. The unit's serial,
certificate and provisioning state are the line store's (LineStore), claimed there before
anything is signed or burned; the CA signs only what the store lets it (the issuance
guard: claimed by this station in this lot, tests PASSed in this panel, within the lot's
quota and the station's hourly rate).

May import ate.drivers, ate.pki, ate.provision, ate.model, ate.store.api's rows and
ate.scheduler's hook types.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ate.drivers.dut import TestFirmwareClient
from ate.drivers.esp import EspFlasher, FlashError, FlashProgress
from ate.drivers.esp.efuse import EfuseSession
from ate.drivers.esp.errors import EfuseRefused
from ate.drivers.esp.log_capture import SlotCapture, captured
from ate.drivers.line_client import DeviceError, DeviceGone
from ate.model.events import Event, ProvisionAct
from ate.model.prov_state import FACTORY, reached, state_of
from ate.model.verdict import Verdict
from ate.pki.ca import new_cert_serial
from ate.pki.csr import check_csr, fingerprint, public_key_bytes, subject_for
from ate.pki.errors import CaUnavailable, CsrRejected, PkiError
from ate.provision import boot_check, devkey_seal, efuse_plan
from ate.provision.critical import CriticalSections
from ate.provision.identity import (
    UsrData,
    UsrDataCorrupt,
    decode_usr_data,
    derive_serial,
    encode_usr_data,
    normalise_serial,
)
from ate.provision.journal import Journal, JournalError, now_iso
from ate.provision.partitions import NvsEntry, build_nvs, build_secure_cert, read_secure_cert
from ate.provision.profile import LoadedProfile, file_sha256
from ate.provision.release import encrypt_for_flash
from ate.scheduler.slot import LogSink, ProgressSink, Provisioned, SlotAccess
from ate.store.api import CertificateRow, IssuancePolicy, ProvUnit

T = TypeVar("T")
PROOF_PREFIX = b"ate-proof/1:"
USR_BLOCK = "BLOCK_USR_DATA"

# A named point between two acts, where the fault-injection seam may cut the power.
Checkpoint = Callable[[str, str], Awaitable[None]]  # (chip id, point)


class LineStore(Protocol):
    """The line store, the one owner of every unit's serial, certificate and provisioning
    state (ate.station.line.LineDb over ate.store). Raises Refused when a rule refuses
    (another unit holds the serial, another station claimed the unit, the issuance guard
    says no) or the store cannot be reached."""

    async def unit(self, chip_id: str) -> ProvUnit | None: ...

    async def certificate(self, chip_id: str) -> CertificateRow | None: ...

    async def advance(self, chip_id: str, state: str) -> str: ...

    async def claim_serial(self, chip_id: str, serial: str) -> None: ...

    async def claim_issuance(
        self, chip_id: str, *, station: str, lot: str, panel_id: str, tested: str
    ) -> None: ...

    async def authorize_issue(
        self, chip_id: str, *, station: str, lot: str, panel_id: str, policy: IssuancePolicy
    ) -> None: ...

    async def record_certificate(self, row: CertificateRow) -> None: ...


def at_least(state: str, target: str) -> bool:
    """Whether a unit in `state` got as far as the factory state `target` (every state
    after the factory counts as past all of it)."""
    return reached(state_of(state), state_of(target))


class Refused(Exception):
    """Provisioning stops for this unit with a reason; nothing irreversible follows.
    `verdict` FAIL when the unit is at fault (bad CSR, bad proof), ERROR otherwise."""

    def __init__(self, reason: str, verdict: Verdict = Verdict.ERROR) -> None:
        super().__init__(reason)
        self.verdict = verdict


@dataclass(frozen=True)
class Gate:
    """The files the tests ran under; provisioning refuses if any changed since."""

    files: dict[Path, str]  # path -> sha256 when the run started

    def changed(self) -> list[Path]:
        out = []
        for path, digest in self.files.items():
            try:
                now = file_sha256(path)
            except OSError:
                now = ""
            if now != digest:
                out.append(path)
        return out


@dataclass
class UnitContext:
    """One unit's provisioning in one panel: who acts, and what it has done so far."""

    mac: str
    panel_id: str
    slot: int
    emit: Callable[[Event], None]
    log: LogSink = lambda line: None  # host tool output about this unit
    acts: list[dict[str, Any]] = field(default_factory=list)
    serial: str | None = None
    cert: CertificateRow | None = None

    product: str | None = None
    lot: str | None = None
    label: str | None = None  # what the unit's label read, scanned before the panel
    boot: dict[str, Any] | None = None  # the boot check after lock-down, when it ran

    def section(self, state: str) -> dict[str, Any]:
        cert = self.cert
        return {
            "serial": self.serial,
            "state": state,
            "product": self.product,
            "lot": self.lot,
            "certificate": {
                "fingerprint": cert.fingerprint,
                "cert_serial": cert.cert_serial,
                "issuer": cert.issuer,
                "not_after": cert.not_after,
            }
            if cert
            else None,
            "acts": list(self.acts),
            **({"boot_check": self.boot} if self.boot is not None else {}),
        }


class Provisioner:
    """Station-wide: one profile, one CA, one journal, one line store; provisions units
    slot by slot."""

    def __init__(
        self,
        profile: LoadedProfile,
        journal: Journal,
        *,
        line: LineStore,
        station: str,
        operator: str,
        gate: Gate,
        lot: str | None = None,
        out_dir: Path | None = None,
        checkpoint: Checkpoint | None = None,
        labels: dict[int, str] | None = None,
        require_label: bool = False,
        boot_timeout: float = 10.0,
    ) -> None:
        self.profile = profile
        self.boot_timeout = boot_timeout  # lock-down to the production app's banner
        self.journal = journal
        self.station = station
        self.operator = operator
        self.gate = gate
        self.lot = lot
        self.out_dir = out_dir
        self._checkpoint = checkpoint
        self.labels = labels or {}
        self.require_label = require_label
        self.line = line
        self._issue_lock = asyncio.Lock()  # one CA signature at a time per station
        # Intent to outcome of every irreversible act; a stopping station waits on it.
        self.critical = CriticalSections()

    def _unit(
        self, mac: str, panel_id: str, slot: int, emit: Callable[[Event], None], log: LogSink
    ) -> UnitContext:
        unit = UnitContext(mac, panel_id, slot, emit, log)
        unit.product, unit.lot = self.profile.model.product.name, self.lot
        return unit

    # -- the seams ----------------------------------------------------------------------

    async def point(self, unit: UnitContext, name: str) -> None:
        if self._checkpoint is not None:
            await self._checkpoint(unit.mac, name)

    async def _act(
        self, unit: UnitContext, act: str, kind: str, status: str, detail: dict[str, Any]
    ) -> None:
        """Durable first (the journal commits with fsync), then announced."""
        detail = {**detail, "slot": unit.slot}
        await self.journal.call(
            lambda: self.journal.act(
                unit.mac,
                act,
                kind,
                status,
                detail,
                panel_id=unit.panel_id,
                station=self.station,
                operator=self.operator,
            )
        )
        unit.acts.append({"act": act, "kind": kind, "status": status, **detail, "at": now_iso()})
        unit.emit(ProvisionAct(unit.panel_id, unit.slot, act, kind, status, detail))

    async def _advance(self, unit: UnitContext, state: str) -> str:
        return await self.line.advance(unit.mac, state)

    def _policy(self) -> IssuancePolicy:
        spec = self.profile.model.issuance
        return IssuancePolicy(spec.lot_quota, spec.per_station_per_hour)

    # -- after the tests: the app phase, then the ROM phase -------------------------------

    async def after_tests(self, access: SlotAccess, label: str | None = None) -> Provisioned:
        """Provision a unit that passed; `label` is what its label read (a scan for this
        panel), else the one given for its slot when the Provisioner was made."""
        unit = self._unit(
            access.unit.mac, access.panel_id, access.slot, access.emit, access.tool_log
        )
        unit.label = label if label is not None else self.labels.get(access.slot)
        if unit.label is None and self.require_label:
            return await self._stopped(
                unit,
                Verdict.ERROR,
                "provision: no label was scanned for this slot; scan the unit's label, then retest",
            )
        try:
            changed = self.gate.changed()
            if changed:
                names = ", ".join(str(p) for p in changed)
                raise Refused(f"provisioning refused: {names} changed since the tests ran")
            uid = access.rom.get("optional_unique_id")
            await self._app_phase(
                unit,
                access.dut,
                access.slot,
                bytes.fromhex(uid) if isinstance(uid, str) else None,
                access.tested,
            )
            access.phase("lock")
            await access.release_port()
            await access.controller.strap(access.slot, "boot")
            endpoint = access.rom.get("endpoint")
            if not isinstance(endpoint, str):
                raise Refused(
                    "provisioning needs the ROM-loader phase; the sequence says flash: never"
                )
            flasher = self.flasher(access.rom, access.tool_log, access.progress, access.slot)
            async with flasher:
                state = await self.finish_in_rom(flasher, unit)
            await self._boot_check(unit, access, endpoint)
        except Refused as exc:
            return await self._stopped(unit, exc.verdict, str(exc))
        except (CaUnavailable, PkiError, JournalError) as exc:
            return await self._stopped(unit, Verdict.ERROR, f"provision: {exc}")
        except (FlashError, DeviceError) as exc:
            return await self._stopped(unit, Verdict.ERROR, f"provision: {exc}")
        return Provisioned(Verdict.PASS, "", unit.section(state))

    def expected_banner(self, unit: UnitContext) -> dict[str, str]:
        """What the locked unit's production app must report (boot_check.FIELDS)."""
        assert unit.cert is not None and unit.serial is not None
        plan = self.profile.plan
        want = {
            "version": self.profile.release.version,
            "serial": unit.serial,
            "cert": unit.cert.fingerprint,
            "key": "sha256:" + hashlib.sha256(bytes.fromhex(unit.cert.public_key)).hexdigest(),
            "sb": str(int(any(s.phase == "secure_boot" for s in plan.steps))),
        }
        if self.profile.model.security.flash_encryption.key != "device":
            # In device mode the bootloader turns encryption on at the first boot, which
            # this check may or may not be: either answer is right.
            want["fe"] = str(int(any(s.id == "fe.key" for s in plan.steps)))
        return want

    async def _boot_check(self, unit: UnitContext, access: SlotAccess, endpoint: str) -> None:
        """Reset the locked unit into its production firmware and read its banner: a
        wrong digest, key or identity shows here, not in the field. Recorded either way;
        a failure is FAIL (the unit is locked: nothing can be undone)."""
        try:
            seen = await boot_check.observe_boot(
                endpoint,
                lambda: access.controller.strap(access.slot, "run"),
                timeout=self.boot_timeout,
            )
        except DeviceGone as exc:
            raise Refused(f"boot check: {exc}") from None
        want = self.expected_banner(unit)
        problems = [seen.why] if seen.banner is None else boot_check.judge(seen.banner, want)
        unit.boot = {
            "status": "failed" if problems else "booted",
            "banner": seen.banner.fields if seen.banner is not None else None,
            "problems": problems,
            "console": list(seen.console[-8:]),
        }
        detail = {k: v for k, v in unit.boot.items() if k != "console"}
        await self._act(unit, "boot.check", "outcome", "failed" if problems else "done", detail)
        if problems:
            raise Refused(
                "boot check after lock-down: "
                + "; ".join(problems)
                + " (the unit is locked: nothing can be undone)",
                Verdict.FAIL,
            )

    async def _stopped(self, unit: UnitContext, verdict: Verdict, reason: str) -> Provisioned:
        try:
            row = await self.line.unit(unit.mac)
        except Refused:  # the store is away: the state is not known here
            return Provisioned(verdict, reason, unit.section("unknown"))
        return Provisioned(verdict, reason, unit.section(row.state if row else "untouched"))

    def flasher(
        self, rom: dict[str, Any], log: LogSink, progress: ProgressSink, slot: int
    ) -> EspFlasher:
        """Back into the ROM loader on the port and settings the ROM phase used."""

        def on_progress(p: FlashProgress) -> None:
            progress(p.stage, p.done_bytes, p.total_bytes)

        return EspFlasher(
            str(rom["endpoint"]),
            chip=self.profile.model.product.chip,
            baud=int(rom.get("baud_setting", 921600)),
            log=log,
            progress=on_progress,
            stub=bool(rom.get("stub", True)),
            label=f"slot{slot}",
        )

    def derive(self, mac: str, unique_id: bytes | None) -> str:
        scheme = self.profile.model.serial
        if scheme.source == "mac":
            chip_id = bytes.fromhex(mac.replace(":", ""))
        else:
            if unique_id is None:
                raise Refused("serial: OPTIONAL_UNIQUE_ID could not be read")
            chip_id = unique_id
        return derive_serial(
            self.profile.secret, chip_id, prefix=scheme.prefix, digits=scheme.digits
        )

    async def _app_phase(
        self,
        unit: UnitContext,
        dut: TestFirmwareClient,
        slot: int,
        unique_id: bytes | None,
        tested: Verdict,
    ) -> None:
        """Identity, key, certificate and proof, through the test firmware."""
        mac = unit.mac
        row = await self.line.unit(mac)
        if row is not None and at_least(row.state, "written"):
            raise Refused(f"unit {mac} is already {row.state}; it is finished from the ROM loader")
        serial = self.derive(mac, unique_id)
        unit.serial = serial
        await self._advance(unit, "tested")
        # Line-wide, before anything is signed or burned: the serial (another unit may hold
        # it), then the issuance (another station may be provisioning this unit).
        await self.line.claim_serial(mac, serial)
        await self.line.claim_issuance(
            mac,
            station=self.station,
            lot=self.lot or "",
            panel_id=unit.panel_id,
            tested=tested.value,
        )
        await self.point(unit, "serial-claimed")

        pub, new = await dut.prov_key()
        await self.point(unit, "device-key")
        # The challenge is answered before anything is issued: a device that cannot sign
        # with the key it reports gets no certificate. The same answer is checked again
        # below against the key in the certificate.
        challenge = secrets.token_bytes(32)
        signature = await dut.prov_sign(challenge)
        if not _verifies(pub, signature, challenge):
            await self._act(unit, "proof", "outcome", "failed", {"why": "signature"})
            raise Refused(
                "proof: the device's answer to the challenge does not verify with the key "
                "it reports; no certificate issued",
                Verdict.FAIL,
            )
        cert_row = await self.line.certificate(mac)
        if cert_row is not None:
            if not cert_row.pem:
                raise Refused(
                    f"unit {mac} has certificate {cert_row.fingerprint} on the line, recorded "
                    "without the certificate itself; it cannot be written to the unit"
                )
            if bytes.fromhex(cert_row.public_key) != pub:
                raise Refused(
                    f"unit {mac} already has certificate {cert_row.fingerprint} for another "
                    f"key (the device reports a {'new' if new else 'different'} key); one unit, "
                    "one identity: revoke that certificate before re-provisioning"
                )
        else:
            cert_row = await self._issue(unit, dut, pub)
        unit.cert = cert_row
        await self._advance(unit, "certified")
        await self._prove(unit, dut, cert_row, slot, challenge, signature)
        await self._advance(unit, "proven")
        await self.point(unit, "proven")

    def subject(self, serial: str, mac: str) -> x509.Name:
        p = self.profile.model
        return subject_for(self.profile.template, serial=serial, mac=mac, product=p.product.name)

    async def _issue(
        self, unit: UnitContext, dut: TestFirmwareClient, pub: bytes
    ) -> CertificateRow:
        assert unit.serial is not None
        ca = self.profile.ca
        if ca is None:
            raise Refused("no CA is open")
        subject = self.subject(unit.serial, unit.mac)
        csr_der = await dut.prov_csr(subject_text(subject))
        try:
            csr = check_csr(csr_der, subject, expected_public_key=pub)
        except CsrRejected as exc:
            raise Refused(f"CSR rejected: {exc}", Verdict.FAIL) from None
        # The serial number and validity start are chosen before the intent is recorded:
        # a re-run after a power loss between signing and recording issues the same
        # certificate (serial, subject, key, validity) again, not a second identity.
        intent = await self._pending_issue(unit)
        async with self.critical.section(f"{unit.mac}:cert.issue"):
            if intent is None:
                number = new_cert_serial()
                issued_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
                await self._act(
                    unit,
                    "cert.issue",
                    "intent",
                    "planned",
                    {
                        "serial": unit.serial,
                        "cert_serial": f"{number:x}",
                        "not_before": issued_at.isoformat(),
                        "csr_sha256": hashlib.sha256(csr_der).hexdigest(),
                        "ca": ca.backend,
                    },
                )
            else:
                number, issued_at = intent
            await self.point(unit, "cert-intent")
            try:
                async with self._issue_lock:
                    # The store lets the CA sign, or refuses (and audits why), now.
                    await self.line.authorize_issue(
                        unit.mac,
                        station=self.station,
                        lot=self.lot or "",
                        panel_id=unit.panel_id,
                        policy=self._policy(),
                    )
                    cert = await asyncio.to_thread(
                        ca.issue,
                        csr,
                        subject,
                        self.profile.template,
                        serial_number=number,
                        now=issued_at,
                    )
            except (CaUnavailable, Refused) as exc:
                await self._act(unit, "cert.issue", "outcome", "failed", {"error": str(exc)})
                raise
            await self.point(unit, "cert-signed")
            row = CertificateRow(
                fingerprint=fingerprint(cert),
                chip_id=unit.mac,
                serial=unit.serial,
                cert_serial=f"{cert.serial_number:x}",
                issuer=cert.issuer.rfc4514_string(),
                not_after=cert.not_valid_after_utc.isoformat(),
                station=self.station,
                operator=self.operator,
                issued_at=now_iso(),
                pem=cert.public_bytes(Encoding.PEM).decode(),
                public_key=pub.hex(),
            )
            await self.line.record_certificate(row)
            await self._act(
                unit,
                "cert.issue",
                "outcome",
                "done",
                {
                    "serial": unit.serial,
                    "fingerprint": row.fingerprint,
                    "cert_serial": row.cert_serial,
                    "station": self.station,
                    "operator": self.operator,
                },
            )
        self._write_public(f"certs/{unit.serial}.pem", row.pem.encode())
        return row

    async def _pending_issue(self, unit: UnitContext) -> tuple[int, dt.datetime] | None:
        """An issuance whose intent was recorded but whose outcome was not (the station
        stopped in between): its serial number and start, to issue the same again."""
        acts = await self.journal.call(self.journal.acts, unit.mac)
        pending = None
        for a in acts:
            if a.act != "cert.issue":
                continue
            if a.kind == "intent":
                pending = a.detail
            elif a.status == "done":
                pending = None
        if pending is None:
            return None
        return int(pending["cert_serial"], 16), dt.datetime.fromisoformat(pending["not_before"])

    async def _prove(
        self,
        unit: UnitContext,
        dut: TestFirmwareClient,
        cert_row: CertificateRow,
        slot: int,
        challenge: bytes,
        signature: bytes,
    ) -> None:
        """The device's answer to this run's challenge verifies with the key in the issued
        certificate, and the ids the device, the certificate and the label give agree.
        No proof, no lock."""
        cert = x509.load_pem_x509_certificate(cert_row.pem.encode())
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        if not _verifies(public_key_bytes(key), signature, challenge):
            await self._act(unit, "proof", "outcome", "failed", {"why": "signature"})
            raise Refused(
                "proof: the device's answer to the challenge does not verify with the key "
                "in its certificate",
                Verdict.FAIL,
            ) from None
        info = await dut.info()
        problems = []
        if info.mac != unit.mac:
            problems.append(f"the device says MAC {info.mac}, the unit is {unit.mac}")
        subject_serial = _attr(cert.subject, NameOID.SERIAL_NUMBER)
        if subject_serial != unit.serial:
            problems.append(f"certificate serialNumber {subject_serial} != serial {unit.serial}")
        if public_key_bytes(key).hex() != cert_row.public_key:
            problems.append("the certificate's key is not the device's key")
        label = unit.label
        if label is not None and normalise_serial(label) != unit.serial:
            problems.append(f"the label reads {label}, the unit's serial is {unit.serial}")
        if problems:
            await self._act(unit, "proof", "outcome", "failed", {"why": "; ".join(problems)})
            raise Refused("proof: " + "; ".join(problems), Verdict.FAIL)
        await self._act(
            unit,
            "proof",
            "outcome",
            "done",
            {"fingerprint": cert_row.fingerprint, "label": label is not None},
        )

    # -- before the tests, in the ROM loader: finish or recognise a unit -------------------

    async def in_rom_before_tests(
        self,
        flasher: EspFlasher,
        panel_id: str,
        slot: int,
        emit: Callable[[Event], None],
        log: LogSink | None = None,
    ) -> tuple[Verdict, str, dict[str, Any]] | None:
        """None: test the unit as usual. Otherwise the slot's verdict, reason and record
        section, without testing: a locked unit is recognised; a unit whose production
        firmware is written (its test firmware is gone) is finished from here."""
        info = flasher.info
        if info.mac is None:
            return await self._recognise_locked(info.security, panel_id, slot, emit)
        try:
            row = await self.line.unit(info.mac)
        except Refused as exc:
            return Verdict.ERROR, str(exc), {"state": "unknown"}
        if row is None or row.state == "new":
            if info.security.secure_boot or info.security.flash_encryption:
                return (
                    Verdict.ERROR,
                    f"unit {info.mac} has security eFuses burned but the line store has no "
                    "record of its provisioning; it is not re-tested",
                    {"state": "unknown"},
                )
            return None
        if state_of(row.state) not in FACTORY:
            return (
                Verdict.ERROR,
                f"unit {info.mac} is {row.state} on the line; it left the factory and is not "
                "tested or provisioned again",
                {"state": row.state},
            )
        if not at_least(row.state, "written"):
            return None
        unit = self._unit(info.mac, panel_id, slot, emit, log or (lambda line: None))
        unit.serial = row.serial
        if row.state == "locked":
            statuses = await efuse_plan.inspect(self.profile.plan, EfuseSession(flasher))
            todo = [s.step.id for s in statuses if s.state != "done"]
            if not todo:
                unit.cert = await self.line.certificate(info.mac)
                return Verdict.PASS, "already provisioned and locked", unit.section("locked")
        try:
            state = await self.finish_in_rom(flasher, unit)
        except Refused as exc:
            return exc.verdict, str(exc), unit.section(row.state)
        return (
            Verdict.PASS,
            "provisioning finished (resumed in the ROM loader)",
            unit.section(state),
        )

    async def _recognise_locked(
        self, security: Any, panel_id: str, slot: int, emit: Callable[[Event], None]
    ) -> tuple[Verdict, str, dict[str, Any]]:
        """Secure Download Mode: the MAC cannot be read. The last fuse of every plan is the
        download lock, burned only after all others read back as burned; the flags the ROM
        still reports must match this profile's plan. A unit whose power went between that
        last burn and its record is found in the journal by where it was (this fixture and
        slot, its last act that burn's intent) and its record completed."""
        plan = self.profile.model.security
        want_sb = bool(plan.secure_boot.keys)
        want_fe = plan.flash_encryption.key == "host"
        problems = []
        if plan.download != "secure":
            problems.append("this profile does not use Secure Download Mode")
        if bool(security.secure_boot) != want_sb:
            problems.append(f"secure boot is {'on' if security.secure_boot else 'off'}")
        if want_fe and not security.flash_encryption:
            problems.append("flash encryption is off")
        section = {"state": "locked" if not problems else "unknown", "recognised_by": "ROM flags"}
        if problems:
            return (
                Verdict.ERROR,
                "the unit is in Secure Download Mode but does not match this profile: "
                + "; ".join(problems),
                section,
            )
        fixture = panel_id.rsplit("-", 2)[0]
        candidates = await self.journal.call(self.journal.unfinished_final_burns, fixture, slot)
        pending = []
        for mac, act in candidates:
            row = await self.line.unit(mac)
            if row is not None and row.state == "locking":
                pending.append((mac, act))
        if len(pending) == 1:
            mac, act = pending[0]
            unit = self._unit(mac, panel_id, slot, emit, lambda line: None)
            await self._act(
                unit,
                act,
                "outcome",
                "already",
                {"detail": "found in Secure Download Mode after the power went; burned"},
            )
            state = await self._advance(unit, "locked")
            row = await self.line.unit(mac)
            unit.serial = row.serial if row else None
            unit.cert = await self.line.certificate(mac)
            # The MAC the journal knows travels with the section to the record's unit
            # identity (flashing.py moves it there): without it the line database could
            # not file this record under any unit.
            section = {**unit.section(state), "recognised_by": "ROM flags and journal", "mac": mac}
        else:
            # Flags that match our plan prove nothing: another line's units match them too.
            # Without this station's own record of that last burn here, it is not ours.
            return (
                Verdict.ERROR,
                "locked elsewhere or unknown: the unit is in Secure Download Mode (its MAC is "
                f"unreadable) and this station's journal has {len(pending) or 'no'} unfinished "
                f"final burn{'s' if len(pending) != 1 else ''} at fixture {fixture} slot "
                f"{slot}; nothing was touched",
                {"state": "unknown", "recognised_by": "none"},
            )
        return (
            Verdict.PASS,
            "already provisioned and locked (Secure Download Mode; the MAC is unreadable, "
            "secure boot and flash encryption as planned); not re-tested",
            section,
        )

    # -- the ROM phase: serial eFuse, partitions, firmware, lock-down ----------------------

    async def finish_in_rom(self, flasher: EspFlasher, unit: UnitContext) -> str:
        """From a connected ROM loader to a locked unit. Returns the final state."""
        mac = unit.mac
        if unit.cert is None:
            unit.cert = await self.line.certificate(mac)
        row = await self.line.unit(mac)
        if unit.cert is None or row is None or row.serial is None:
            raise Refused(f"unit {mac}: no certificate on the line; it must be tested first")
        if not unit.cert.pem:
            raise Refused(f"unit {mac}: its certificate is on the line without the PEM")
        if not at_least(row.state, "proven"):
            raise Refused(f"unit {mac} has no recorded proof of possession; no proof, no lock")
        if row.claimed_by != self.station:
            # Its journal (intents, images as written, the sealed key) is at that station.
            raise Refused(
                f"unit {mac} is claimed for provisioning by station {row.claimed_by}; it is "
                "finished there, not here: nothing was burned or written"
            )
        unit.serial = row.serial
        efuses = EfuseSession(flasher)
        await self._burn_serial(unit, efuses)
        await self._advance(unit, "serial")
        await self._write_partitions(unit, flasher)
        await self._check_identity(unit, flasher, efuses)
        cut = await self._interrupted_burns(unit)
        statuses = await efuse_plan.inspect(self.profile.plan, efuses, interrupted=cut)
        await self._journal_agrees_with_chip(unit, statuses)
        fe_key = await self._write_firmware(unit, flasher, efuses, statuses)
        sealed = await self._plan_dev_key_seal(unit, flasher, fe_key)
        await self._advance(unit, "written")
        await self.point(unit, "written")
        await self._advance(unit, "locking")
        seal_it = None if sealed is None else lambda: self._seal_dev_key(unit, flasher, sealed)
        await self._lock(unit, efuses, fe_key, cut, seal_it)
        fe_key = None
        state = await self._advance(unit, "locked")
        await self.point(unit, "locked")
        return state

    async def _burn_serial(self, unit: UnitContext, efuses: EfuseSession) -> None:
        assert unit.serial is not None
        want = UsrData(unit.serial, self.profile.model.product.id)
        raw = await efuses.read(USR_BLOCK)
        if not isinstance(raw, bytes):
            raise Refused(f"{USR_BLOCK} is not readable")
        try:
            have = decode_usr_data(raw)
        except UsrDataCorrupt as exc:
            raise Refused(f"{USR_BLOCK} holds something that is not an ate serial: {exc}") from None
        if have is None:
            detail = {"serial": unit.serial, "product_id": want.product_id, "block": USR_BLOCK}
            async with self.critical.section(f"{unit.mac}:serial.burn"):
                await self._burn_serial_block(unit, efuses, want, detail)
        elif have != want:
            raise Refused(
                f"the unit carries serial {have.serial} (product {have.product_id}) in its "
                f"eFuses; this profile derives {want.serial} (product {want.product_id})"
            )
        field_ = await efuses.field(USR_BLOCK)
        if field_.writeable:
            async with self.critical.section(f"{unit.mac}:serial.protect"):
                await self._act(unit, "serial.protect", "intent", "planned", {"block": USR_BLOCK})
                await efuses.write_protect([USR_BLOCK])
                await self._act(unit, "serial.protect", "outcome", "done", {"block": USR_BLOCK})
            await self.point(unit, "serial-protected")

    async def _burn_serial_block(
        self, unit: UnitContext, efuses: EfuseSession, want: UsrData, detail: dict[str, Any]
    ) -> None:
        """Intent, burn, read back, outcome: one critical section."""
        await self._act(unit, "serial.burn", "intent", "planned", detail)
        await self.point(unit, "serial-intent")
        try:
            await efuses.burn_block_data(USR_BLOCK, encode_usr_data(want))
        except EfuseRefused as exc:
            await self._act(unit, "serial.burn", "outcome", "failed", {"error": str(exc)})
            raise Refused(f"serial: {exc}") from None
        got = decode_usr_data(_as_bytes(await efuses.read(USR_BLOCK)))
        status = "done" if got == want else "failed"
        await self._act(unit, "serial.burn", "outcome", status, detail)
        if got != want:
            raise Refused(f"serial: {USR_BLOCK} reads back {got}, not {want}")
        await self.point(unit, "serial-burned")

    def _partition_images(self, unit: UnitContext) -> list[tuple[str, int, bytes]]:
        assert unit.cert is not None and unit.serial is not None
        p = self.profile.model
        parts = p.partitions
        cloud = p.cloud
        secure_cert = build_secure_cert(
            self.profile.chain_pem(), unit.cert.pem.encode(), size=parts.esp_secure_cert.size
        )
        nvs = build_nvs(
            parts.nvs_namespace,
            [
                NvsEntry("serial", unit.serial),
                NvsEntry("product", p.product.name),
                NvsEntry("cloud_ep", cloud.endpoint),
                NvsEntry("cert_fp", unit.cert.fingerprint.removeprefix("sha256:")[:32]),
            ],
            size=parts.fctry.size,
        )
        return [
            ("esp_secure_cert", parts.esp_secure_cert.offset, secure_cert),
            ("fctry", parts.fctry.offset, nvs),
        ]

    async def _write_partitions(self, unit: UnitContext, flasher: EspFlasher) -> None:
        for name, offset, image in self._partition_images(unit):
            if not await flasher.image_present(offset, image):
                await flasher.write([(offset, image)])
                await self.point(unit, f"partition-{name}")
            back = await flasher.read(offset, len(image))
            if back != image:
                raise Refused(f"partition {name} at {offset:#x} does not read back as written")
            # What the firmware's esp_secure_cert_mgr will parse, parsed by Espressif's tool.
            assert unit.cert is not None
            if name == "esp_secure_cert" and (
                read_secure_cert(back).get("dev_cert", b"").strip()
                != unit.cert.pem.encode().strip()
            ):
                raise Refused("esp_secure_cert does not hold the unit's certificate after writing")

    async def _check_identity(
        self, unit: UnitContext, flasher: EspFlasher, efuses: EfuseSession
    ) -> None:
        """Before any lock-down fuse: eFuse serial, the line's serial, certificate subject and
        the chip's MAC must all name the same unit."""
        assert unit.cert is not None
        usr = decode_usr_data(_as_bytes(await efuses.read(USR_BLOCK)))
        cert = x509.load_pem_x509_certificate(unit.cert.pem.encode())
        problems = []
        if usr is None or usr.serial != unit.serial:
            problems.append(f"eFuse serial {usr.serial if usr else None} != {unit.serial}")
        if _attr(cert.subject, NameOID.SERIAL_NUMBER) != unit.serial:
            problems.append("certificate subject serialNumber differs")
        if flasher.info.mac != unit.mac:
            problems.append(f"ROM reports MAC {flasher.info.mac}, the line store {unit.mac}")
        if problems:
            raise Refused("identity check before lock: " + "; ".join(problems))

    async def _write_firmware(
        self,
        unit: UnitContext,
        flasher: EspFlasher,
        efuses: EfuseSession,
        statuses: list[efuse_plan.StepStatus],
    ) -> bytes | None:
        """The production release, encrypted with a fresh key when the station injects the
        flash-encryption key and has not burned it yet. Returns that key (kept only until
        the plan has burned it)."""
        release = self.profile.release
        fe = next((s for s in statuses if s.step.id == "fe.key"), None)
        fe_todo = fe is not None and fe.state == "todo"
        fe_done = fe is not None and fe.state == "done"
        key: bytes | None = None
        images = [(img.offset, img.data, img.role) for img in release.images]
        fe_cut = any(
            s.observed.get("interrupted")
            for s in statuses
            if s.step.action == "burn_key" and s.step.digest is None
        )
        if fe_cut:
            # The power went inside the key's burn: the images on flash were encrypted with
            # the key now on the chip; while it is still readable, it finishes its own burn.
            key = await efuse_plan.interrupted_key(self.profile.plan, efuses)
            fe_done = key is None
        elif fe_todo:
            key = os.urandom(efuse_plan.fe_key_bytes(self.profile.plan))
        if key is not None:
            encrypted = dict(
                await asyncio.to_thread(quietly, unit.log, encrypt_for_flash, release, key)
            )
            images = [(off, encrypted[off], role) for off, _, role in images]
        elif fe_done:
            # The key is in the chip and gone from everywhere else: what was written with
            # it can only be checked against the MD5s recorded when it was written.
            for off, _data, role in images:
                known = await self.journal.call(self.journal.flash_image, unit.mac, off)
                if known is None or await flasher.md5(off, known[0]) != known[1]:
                    raise Refused(
                        f"production {role} at {off:#x} is not what was written before the "
                        "flash-encryption key was burned; the unit cannot be finished"
                    )
            return None
        for off, data, role in images:
            if not await flasher.image_present(off, data):
                await flasher.write([(off, data)])
                await self.point(unit, f"firmware-{role}")
            md5 = hashlib.md5(data).hexdigest()
            await self.journal.call(
                self.journal.record_flash_image, unit.mac, off, len(data), md5, role
            )
        return key

    async def _plan_dev_key_seal(
        self, unit: UnitContext, flasher: EspFlasher, fe_key: bytes | None
    ) -> bytes | None:
        """The dev_key record as the production app must find it under the station's
        flash-encryption key, None when the plan burns no such key.

        While the key is in memory, the record is still plain (the test firmware wrote
        it; it is sealed only after the key is burned): it must hold the certified key,
        and its ciphertext is recorded (intent) before the key is burned, so that a power
        cut after the burn, which takes the key with it, can still be finished. The
        ciphertext is no secret: only the chip's read-protected key opens it, and it is
        what the chip's flash holds afterwards. Once the key is burned the recorded
        ciphertext is the only one."""
        if not any(s.id == "fe.key" for s in self.profile.plan.steps):
            return None
        offset, _size = self.profile.layout["dev_key"]
        if fe_key is None:
            sealed = None
            for a in await self.journal.call(self.journal.acts, unit.mac):
                if a.act == "dev_key.seal" and a.kind == "intent":
                    sealed = bytes.fromhex(str(a.detail["ciphertext"]))
            if sealed is None:
                raise Refused(
                    "the flash-encryption key is burned but no sealed dev_key record was "
                    "recorded for this unit; its device key cannot be made readable to the "
                    "production app: resolve by hand"
                )
            return sealed
        plain = await flasher.read(offset, devkey_seal.SEAL_BYTES)
        assert unit.cert is not None
        if devkey_seal.record_public_key(plain) != bytes.fromhex(unit.cert.public_key):
            raise Refused(
                f"dev_key at {offset:#x} does not hold the certified device key in plain "
                "text; it cannot be sealed for the production app: nothing was burned"
            )
        sealed = await asyncio.to_thread(quietly, unit.log, devkey_seal.seal, plain, offset, fe_key)
        await self._act(
            unit,
            "dev_key.seal",
            "intent",
            "planned",
            {"offset": offset, "ciphertext": sealed.hex()},
        )
        return sealed

    async def _seal_dev_key(self, unit: UnitContext, flasher: EspFlasher, sealed: bytes) -> None:
        """Write the sealed record over the plain one: the key that opens it is burned
        now (so no power cut can lose it) and the ROM loader still reads back."""
        offset, _size = self.profile.layout["dev_key"]
        if await flasher.read(offset, len(sealed)) == sealed:
            return
        await flasher.write([(offset, sealed)], pre_encrypted=True)
        ok = await flasher.read(offset, len(sealed)) == sealed
        await self._act(
            unit, "dev_key.seal", "outcome", "done" if ok else "failed", {"offset": offset}
        )
        if not ok:
            raise Refused(f"dev_key at {offset:#x} does not read back sealed after writing")
        await self.point(unit, "dev-key-sealed")

    async def _journal_agrees_with_chip(
        self, unit: UnitContext, statuses: list[efuse_plan.StepStatus]
    ) -> None:
        """A burn the journal records as done must read back as done: when the two
        disagree, the chip is not the one the journal describes (swapped, tampered, or a
        torn record) and no act may be done again on either's word. A person decides."""
        recorded: dict[str, str] = {}
        for a in await self.journal.call(self.journal.acts, unit.mac):
            if a.act.startswith("efuse:") and a.kind == "outcome":
                recorded[a.act.removeprefix("efuse:")] = a.status
        for s in statuses:
            if recorded.get(s.step.id) in ("done", "already") and s.state != "done":
                raise Refused(
                    f"conflict: the journal records eFuse step {s.step.id} as burned on unit "
                    f"{unit.mac}, but the chip reads it {s.state} ({s.detail}); nothing more is "
                    "burned or written: resolve by hand"
                )

    async def _interrupted_burns(self, unit: UnitContext) -> frozenset[str]:
        """Plan steps this station began on this unit and saw no end of (the intent is its
        last act, or the outcome failed): only such a half-burned key block is finished;
        any other is someone else's and a conflict."""
        last: dict[str, tuple[str, str]] = {}
        for a in await self.journal.call(self.journal.acts, unit.mac):
            if a.act.startswith("efuse:"):
                last[a.act.removeprefix("efuse:")] = (a.kind, a.status)
        return frozenset(
            step for step, (kind, status) in last.items() if kind == "intent" or status == "failed"
        )

    async def _lock(
        self,
        unit: UnitContext,
        efuses: EfuseSession,
        fe_key: bytes | None,
        interrupted: frozenset[str],
        before_download: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        journal = _Journal(self, unit)
        try:
            await efuse_plan.execute(
                self.profile.plan,
                efuses,
                journal,
                fe_key=fe_key,
                interrupted=interrupted,
                before_download=before_download,
            )
        except efuse_plan.PlanConflict as exc:
            raise Refused(f"eFuse plan: {exc}") from None
        except EfuseRefused as exc:
            raise Refused(f"eFuse plan: {exc}") from None
        finally:
            journal.leave()

    def _write_public(self, rel: str, data: bytes) -> None:
        if self.out_dir is None:
            return
        from ate.records.unit_record import write_bytes_atomic

        write_bytes_atomic(self.out_dir / rel, data)


class _Journal:
    """The eFuse plan's intent/outcome, into the journal and the event stream, with the
    power-cut seam on both sides of every burn."""

    def __init__(self, owner: Provisioner, unit: UnitContext) -> None:
        self.owner = owner
        self.unit = unit
        self.open: list[str] = []  # critical sections entered, not yet left
        self.pending: dict[str, set[str]] = {}  # section -> its steps still without outcome

    async def intent(self, batch: Sequence[tuple[efuse_plan.BurnStep, dict[str, object]]]) -> None:
        # One burn is one irreversible act, however many steps it carries: one critical
        # section, entered before the first intent, left at the last outcome.
        key = f"{self.unit.mac}:efuse:" + "+".join(step.id for step, _ in batch)
        await self.owner.critical.enter(key)  # left at the outcomes (or by _lock's finally)
        self.open.append(key)
        self.pending[key] = {step.id for step, _ in batch}
        for step, before in batch:
            await self.owner._act(
                self.unit, f"efuse:{step.id}", "intent", "planned", {"before": _plain(before)}
            )
            await self.owner.point(self.unit, f"efuse-intent:{step.id}")

    async def outcome(
        self, step: efuse_plan.BurnStep, status: str, after: dict[str, object], detail: str
    ) -> None:
        await self.owner.point(self.unit, f"efuse-burned:{step.id}")
        await self.owner._act(
            self.unit,
            f"efuse:{step.id}",
            "outcome",
            "done" if status == "burned" else status,
            {"after": _plain(after), "detail": detail},
        )
        for key, waiting in list(self.pending.items()):
            waiting.discard(step.id)
            if not waiting:
                del self.pending[key]
                self.leave(key)

    def leave(self, key: str | None = None) -> None:
        """Leave the act `key` (every open one when None)."""
        for k in [key] if key is not None else list(self.open):
            if k in self.open:
                self.open.remove(k)
                self.owner.critical.leave(k)


def quietly(log: LogSink, fn: Callable[..., T], *args: Any) -> T:
    """Run an espsecure-based call with its console output in `log` (call it on a worker
    thread: esptool's logger is routed per thread)."""
    with captured(SlotCapture("espsecure", log)):
        return fn(*args)


def _verifies(point: bytes, signature: bytes, challenge: bytes) -> bool:
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        key.verify(signature, PROOF_PREFIX + challenge, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def subject_text(name: x509.Name) -> str:
    """The subject as the test firmware's prov.csr takes it (PROTOCOL.md)."""
    short = {
        NameOID.COUNTRY_NAME: "C",
        NameOID.ORGANIZATION_NAME: "O",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
        NameOID.COMMON_NAME: "CN",
        NameOID.SERIAL_NUMBER: "serialNumber",
    }
    return ",".join(f"{short[a.oid]}={a.value!s}" for a in name)


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attrs = name.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else None


def _as_bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise Refused(f"{USR_BLOCK} is not readable")
    return value


def _plain(values: dict[str, object]) -> dict[str, object]:
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in values.items()}
