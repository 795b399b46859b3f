"""`ate plan --profile P --fixture F --unit SLOT`: connect to one unit in its ROM loader
and print what provisioning would burn into it (its serial, then the eFuse plan step by
step, each as already burned or still to burn), without burning anything."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ate.config.errors import InputError
from ate.config.loader import LoadedFixture, load_fixture
from ate.drivers.esp import EspFlasher, FlashError
from ate.drivers.esp.efuse import EfuseSession
from ate.drivers.line_client import DeviceGone, DeviceTimeout
from ate.drivers.ports import resolve_port
from ate.provision import efuse_plan
from ate.provision.identity import UsrDataCorrupt, decode_usr_data, derive_serial
from ate.provision.profile import LoadedProfile, open_profile
from ate.station.runner import Endpoints, open_controller, simulated_twin

EXIT_OK, EXIT_BAD_INPUT, EXIT_CANNOT_RUN = 0, 2, 3


def run_plan(args: argparse.Namespace) -> int:
    try:
        fixture = load_fixture(args.fixture)
        profile = open_profile(Path(args.profile), open_ca=False)
        spec = next((s for s in fixture.model.slots if s.slot == args.unit), None)
        if spec is None:
            numbers = ", ".join(str(s.slot) for s in fixture.model.slots)
            raise InputError(fixture.path, f"no slot {args.unit}; the fixture's slots: {numbers}")
    except InputError as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        with simulated_twin(fixture, args.transport) as sim:
            text = asyncio.run(_plan(fixture, profile, args.unit, sim))
    except (FlashError, DeviceGone, DeviceTimeout, OSError) as exc:
        print(f"ate: cannot read the unit in slot {args.unit}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    print(text)
    return EXIT_OK


async def _plan(
    fixture: LoadedFixture, profile: LoadedProfile, slot: int, sim: Endpoints | None
) -> str:
    spec = next(s for s in fixture.model.slots if s.slot == slot)
    ctrl = await open_controller(fixture, sim)
    try:
        if not await ctrl.present(slot):
            return f"slot {slot}: no board"
        await ctrl.power(slot, True)
        await ctrl.strap(slot, "boot")
        port = resolve_port(spec.port, sim.slots.get(slot) if sim else None)
        flashing = fixture.model.flashing
        flasher = EspFlasher(
            port,
            chip=profile.model.product.chip,
            baud=flashing.baud,
            stub=flashing.stub,
            label=f"slot{slot}",
            log=lambda line: None,  # esptool's chatter is not what `ate plan` shows
        )
        async with flasher:
            return await _describe(flasher, profile, slot)
    finally:
        try:
            await ctrl.power(slot, False)
        finally:
            await ctrl.close()


async def _describe(flasher: EspFlasher, profile: LoadedProfile, slot: int) -> str:
    info = flasher.info
    lines = [f"slot {slot}: {info.description}, profile {profile.name} ({profile.path.name})"]
    if info.mac is None:
        lines.append(
            "the unit is in Secure Download Mode: it is locked and its eFuses cannot be read; "
            "nothing would be burned"
        )
        return "\n".join(lines)
    efuses = EfuseSession(flasher)
    scheme = profile.model.serial
    if scheme.source == "mac":
        chip_id = bytes.fromhex(info.mac.replace(":", ""))
    else:
        uid = await efuses.read("OPTIONAL_UNIQUE_ID")
        chip_id = uid if isinstance(uid, bytes) else b""
    serial = derive_serial(profile.secret, chip_id, prefix=scheme.prefix, digits=scheme.digits)
    raw = await efuses.read("BLOCK_USR_DATA")
    try:
        have = decode_usr_data(raw) if isinstance(raw, bytes) else None
        state = (
            "to burn"
            if have is None
            else "burned"
            if have.serial == serial
            else f"CONFLICT: the unit carries {have.serial}"
        )
    except UsrDataCorrupt as exc:
        state = f"CONFLICT: BLOCK_USR_DATA holds something else ({exc})"
    lines.append(f"MAC {info.mac}; serial {serial} into BLOCK_USR_DATA: {state}")
    statuses = await efuse_plan.inspect(profile.plan, efuses)
    lines.append(efuse_plan.render(statuses))
    for note in profile.plan.notes:
        lines.append(f"note: {note}")
    lines.append("nothing was burned (ate plan only reads)")
    return "\n".join(lines)
