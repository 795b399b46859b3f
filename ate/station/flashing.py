"""A slot's ROM-loader phase: identify the chip through esptool and put the sequence's
test firmware in place (or find it already there), for the scheduler's prepare hook.

With a provisioner, a unit is first looked up: a locked unit is recognised, and a unit
whose provisioning had passed the point of re-testing is finished right here."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ate.config.fixture import FlashingSpec
from ate.config.loader import LoadedSequence
from ate.drivers.esp import EspFlasher, FlashError, FlashProgress
from ate.drivers.esp.efuse import EfuseSession
from ate.drivers.esp.flasher import check_images
from ate.model.results import UnitIdentity
from ate.scheduler.slot import Admit, BringUpFailed, Prepare, Prepared, RomAccess

# The line's word on a unit before it is tested: None, or its verdict without testing.

if TYPE_CHECKING:
    from ate.provision.flow import Provisioner


def prepare_test_firmware(
    sequence: LoadedSequence,
    image: bytes,
    flashing: FlashingSpec,
    endpoint: Callable[[], str],
    label: str,
    provisioner: Provisioner | None = None,
    admit: Admit | None = None,
) -> Prepare:
    """The prepare hook for one slot. `endpoint` resolves the port when the phase starts,
    so an adapter re-plugged between panels is found under its new name."""
    fw = sequence.model.test_firmware

    async def prepare(rom: RomAccess) -> Prepared:
        def on_progress(p: FlashProgress) -> None:
            rom.progress(p.stage, p.done_bytes, p.total_bytes)

        started = time.monotonic()
        record: dict[str, Any] = {}
        port = endpoint()
        try:
            flasher = EspFlasher(
                port,
                chip=sequence.model.chip,
                baud=flashing.baud,
                log=rom.log,
                progress=on_progress,
                stub=flashing.stub,
                label=label,
            )
            async with flasher:
                info = flasher.info
                record = {
                    "endpoint": port,
                    "baud_setting": flashing.baud,
                    "chip": info.chip,
                    "description": info.description,
                    "mac": info.mac,
                    "flash_size": info.flash_size,
                    "stub": info.stub,
                    "baud": info.baud,
                    "secure_download": info.security.secure_download,
                    "flash_encryption": info.security.flash_encryption,
                    "secure_boot": info.security.secure_boot,
                }
                if provisioner is not None:
                    done = await provisioner.in_rom_before_tests(
                        flasher, rom.panel_id, rom.slot, rom.emit, rom.log
                    )
                    if done is not None:
                        verdict, reason, section = done
                        # In Secure Download Mode the MAC is unreadable; a unit recognised
                        # from the journal comes back with it.
                        mac = info.mac or section.pop("mac", None)
                        unit = UnitIdentity(mac=mac, chip=info.chip) if mac else None
                        return Prepared(
                            unit,
                            record,
                            finished=(verdict, reason),
                            sections={"provisioning": section},
                        )
                if admit is not None and info.mac is not None:
                    refused = await admit(info.mac)
                    if refused is not None:
                        unit = UnitIdentity(mac=info.mac, chip=info.chip)
                        return Prepared(unit, record, finished=refused)
                by_uid = provisioner is not None and (
                    provisioner.profile.model.serial.source == "optional_unique_id"
                )
                if by_uid:  # the serial is derived from it after the tests
                    uid = await EfuseSession(flasher).read("OPTIONAL_UNIQUE_ID")
                    if isinstance(uid, bytes):
                        record["optional_unique_id"] = uid.hex()
                # Refuse a plan that cannot fit before touching the flash at all.
                check_images([(fw.offset, image)], info.flash_size)
                if fw.flash == "if_changed" and await flasher.image_present(fw.offset, image):
                    action, seconds = "already present (MD5 matches)", 0.0
                else:
                    (written,) = await flasher.write(
                        [(fw.offset, image)], compress=flashing.compress
                    )
                    action, seconds = "written and verified by MD5", written.seconds
        except FlashError as exc:
            raise BringUpFailed(str(exc)) from None
        if info.mac is None:  # Secure Download Mode hides the MAC: no identity, no test
            raise BringUpFailed(
                "flash: the chip is in Secure Download Mode; its MAC cannot "
                "be read, so the unit cannot be identified"
            )
        record["test_firmware"] = {
            "offset": fw.offset,
            "size": len(image),
            "sha256": sequence.firmware_sha256,
            "action": action,
            "write_s": round(seconds, 3),
            "phase_s": round(time.monotonic() - started, 3),
        }
        return Prepared(UnitIdentity(mac=info.mac, chip=info.chip), record)

    return prepare
