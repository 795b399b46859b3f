"""Power loss at every step boundary and in the middle of every step, including each
eFuse burn: re-running the panel finishes every unit with one identity, one certificate
and the full lock-down, never burns twice, and never leaves a PASS that is not locked.

Between steps the station's own seam cuts (the unit's power and the station's work on
it); inside steps the simulated unit loses power in the middle of a command (an eFuse
program operation, a flash block, a test-firmware request). A few cuts kill the whole
station process (`ATE_FAILPOINT`), the rest run in-process for speed."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from prov_bench import ProvBench
from prov_helpers import device_key_scalar, locked_fuses_ok, station_state, usr_serial

from ate.model.verdict import Verdict
from ate.pki.csr import public_key_bytes

PLAN_STEPS = (
    "fe.key",
    "fe.crypt_cnt",
    "fe.lockdown",
    "fe.dis_jtag",
    "fe.wp",
    "sb.digest0",
    "sb.en",
    "sb.wp_rd_dis",
    "sb.revoke1",
    "sb.revoke2",
    "jtag.soft_dis",
    "dl.secure",
)
# Every point between two acts a unit passes on its way to locked, in order.
POINTS = (
    "serial-claimed",
    "device-key",
    "cert-intent",
    "cert-signed",
    "proven",
    "serial-intent",
    "serial-burned",
    "serial-protected",
    "partition-esp_secure_cert",
    "partition-fctry",
    "firmware-bootloader",
    "firmware-partition_table",
    "firmware-app",
    "written",
    # The lock-down is one espefuse batch (intent for each step, one burn, outcome for
    # each), then the download-mode fuse alone.
    *(f"efuse-intent:{step}" for step in PLAN_STEPS[:-1]),
    *(f"efuse-burned:{step}" for step in PLAN_STEPS[:-1]),
    # The device key record sealed under the burned flash-encryption key, while the ROM
    # loader still reads flash back.
    "dev-key-sealed",
    f"efuse-intent:{PLAN_STEPS[-1]}",
    f"efuse-burned:{PLAN_STEPS[-1]}",
    "locked",
)
SLOTS = 4
CHUNKS = [POINTS[i : i + SLOTS] for i in range(0, len(POINTS), SLOTS)]


def mac_of(bench: ProvBench, slot: int) -> str:
    return bench.efuses(slot).mac.hex(":")


def device_public_key(bench: ProvBench, slot: int) -> bytes:
    # As the production app reads it: through the flash-encryption engine.
    d = device_key_scalar(bench, slot)
    assert d is not None, "the device has no key its app can read"
    return public_key_bytes(ec.derive_private_key(d, ec.SECP256R1()).public_key())


def assert_finished(
    bench: ProvBench,
    slot: int,
    result: Any,
    first: Any = None,
    locked_before: set[int] | frozenset[int] = frozenset(),
) -> None:
    """One identity, one certificate (for the key the device holds), the full lock-down
    on the chip, and no act done twice. A unit already locked by the `first` run is in
    Secure Download Mode now and cannot prove it is ours: ERROR, untouched."""
    r = result.slots[slot]
    if slot in locked_before or (first is not None and first.slots[slot].verdict is Verdict.PASS):
        assert r.verdict is Verdict.ERROR, f"slot {slot}: {r.reason}"
        assert r.reason.startswith("locked elsewhere or unknown: "), r.reason
    else:
        assert r.verdict is Verdict.PASS, f"slot {slot}: {r.reason}"
    mac = mac_of(bench, slot)
    with station_state(bench.state_dir) as (store, journal):
        unit = store.prov_unit(mac)
        assert unit is not None and unit.state == "locked"
        cert = store.certificate(mac)
        assert cert is not None and cert.serial == unit.serial
        assert [c.chip_id for c in store.certificates()].count(mac) == 1
        done = Counter(
            a.act for a in journal.acts(mac) if a.kind == "outcome" and a.status == "done"
        )
    twice = {act: n for act, n in done.items() if n > 1 and act != "proof"}
    assert not twice, f"slot {slot}: done more than once: {twice}"
    assert done["cert.issue"] == 1
    assert usr_serial(bench, slot) == unit.serial
    pem = x509.load_pem_x509_certificate(cert.pem.encode())
    key = pem.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert public_key_bytes(key) == device_public_key(bench, slot)
    assert public_key_bytes(key).hex() == cert.public_key
    locked_fuses_ok(bench, slot)


def no_false_pass(bench: ProvBench, result: Any) -> None:
    for slot, r in result.slots.items():
        if r.verdict is Verdict.PASS:
            locked_fuses_ok(bench, slot)


async def test_points_are_every_point_a_unit_passes(make_prov_bench: Any) -> None:
    """The list above is what the flow really does (so the matrix covers all of it)."""
    bench = make_prov_bench(slots=1)
    seen: list[str] = []

    async def record(chip_id: str, point: str) -> None:
        seen.append(point)

    result = await bench.run(checkpoint=record)
    assert result.slots[1].verdict is Verdict.PASS, result.slots[1].reason
    assert tuple(seen) == POINTS


@pytest.mark.parametrize("points", CHUNKS, ids=[c[0] for c in CHUNKS])
async def test_power_cut_between_acts_then_rerun_finishes(
    make_prov_bench: Any, points: tuple[str, ...]
) -> None:
    bench = make_prov_bench(slots=SLOTS)
    power_cut, cut = bench.cuts_at(dict(enumerate(points, 1)))
    first = await bench.run(checkpoint=power_cut)
    assert cut == set(range(1, len(points) + 1))
    for slot in cut:
        assert first.slots[slot].verdict is not Verdict.PASS
    no_false_pass(bench, first)
    second = await bench.run()
    # A cut after the very last act leaves a locked unit with its record complete in
    # the journal: in Secure Download Mode it cannot show which unit it is, so it is
    # treated like any locked unit (ERROR, untouched), never a PASS on its flags alone.
    done_before = {slot for slot, point in enumerate(points, 1) if point == "locked"}
    for slot in range(1, SLOTS + 1):
        assert_finished(bench, slot, second, first, done_before)


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-applied"])
@pytest.mark.parametrize("command", ["prov.key", "prov.csr", "prov.sign"])
async def test_power_cut_inside_a_device_request(
    make_prov_bench: Any, command: str, applied: bool
) -> None:
    bench = make_prov_bench(slots=1)
    fired = bench.twin.arm_power_cut(1, "command", command=command, applied=applied)
    first = await bench.run()
    assert fired.is_set()
    assert first.slots[1].verdict is Verdict.ERROR
    second = await bench.run()
    assert_finished(bench, 1, second)


async def _cut_nth_inside(bench: ProvBench, at: str, start: int, applied: bool) -> bool:
    """Cut slot n at the (start + n - 1)th `at` operation; rerun; check. False when no
    slot's cut fired (the flow has fewer such operations)."""
    fired = {
        slot: bench.twin.arm_power_cut(slot, at, nth=start + slot - 1, applied=applied)
        for slot in range(1, SLOTS + 1)
    }
    first = await bench.run()
    no_false_pass(bench, first)
    any_fired = any(ev.is_set() for ev in fired.values())
    second = await bench.run()
    for slot in range(1, SLOTS + 1):
        assert_finished(bench, slot, second, first)
    return any_fired


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-applied"])
async def test_power_cut_inside_every_efuse_burn(make_prov_bench: Any, applied: bool) -> None:
    start = 1
    while True:
        bench = make_prov_bench(slots=SLOTS, seed=100 + start)
        if not await _cut_nth_inside(bench, "efuse-burn", start, applied):
            break
        start += SLOTS
    # The serial's data and its write protection, the lock-down batch (the key block, the
    # digest block, BLOCK0 and BLOCK0's postponed lock bits), the download fuse: seven
    # program operations, each cut (before and after it lands) in some slot.
    assert start > 5


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-applied"])
async def test_power_cut_inside_flash_writes(make_prov_bench: Any, applied: bool) -> None:
    for start in (1, 1 + SLOTS):
        bench = make_prov_bench(slots=SLOTS, seed=200 + start)
        assert await _cut_nth_inside(bench, "flash-write", start, applied)
