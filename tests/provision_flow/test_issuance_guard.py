"""The issuance guard: the CA signs only for a unit the line store shows as claimed by this
station, in this lot, whose tests in this panel PASSed, within the lot's quota and the
station's hourly rate; every refusal is in the station's audit chain. Counted at the CA:
a refused unit never reaches it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from prov_bench import ProvBench
from prov_helpers import usr_serial

from ate.model.verdict import Verdict
from ate.provision.journal import Journal
from ate.scheduler.panel import PanelResult
from ate.scheduler.slot import Provisioned, SlotAccess
from ate.station.line import LineDb
from ate.station.provisioning import StationProvisioning, open_provisioning
from ate.store import open_store
from ate.store.spool import default_spool_path


class CountingCA:
    """The profile's real CA, counting the certificates it signs."""

    def __init__(self, ca: Any) -> None:
        self.ca = ca
        self.signed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ca, name)

    def issue(self, *args: Any, **kwargs: Any) -> Any:
        self.signed += 1
        return self.ca.issue(*args, **kwargs)


def counted(station: StationProvisioning) -> CountingCA:
    ca = CountingCA(station.profile.ca)
    object.__setattr__(station.profile, "ca", ca)  # LoadedProfile is frozen
    return ca


def open_station(
    bench: ProvBench,
    name: str,
    url: str,
    *,
    profile: Path | None = None,
    checkpoint: Any = None,
) -> tuple[StationProvisioning, LineDb]:
    line = LineDb(url)
    station = open_provisioning(
        profile or bench.kit.profile,
        bench.sequence,
        state_dir=bench.tmp / f"state-{name}",
        out_dir=bench.out_dir(),
        station=name,
        operator="op1",
        lot="lot-1",
        checkpoint=checkpoint,
        line=line,
    )
    return station, line


async def run_at(
    bench: ProvBench,
    name: str,
    url: str,
    *,
    profile: Path | None = None,
    checkpoint: Any = None,
    prepare: Callable[[StationProvisioning], None] | None = None,
) -> tuple[PanelResult, CountingCA]:
    """One panel at station `name` on the line store `url`, its CA counted; `prepare`
    sees the station before the panel runs. The station is closed after."""
    station, line = open_station(bench, name, url, profile=profile, checkpoint=checkpoint)
    ca = counted(station)
    try:
        if prepare is not None:
            prepare(station)
        return await bench.run(station=station), ca
    finally:
        station.close()
        line.close()


def profile_with(bench: ProvBench, name: str, issuance: dict[str, int]) -> Path:
    doc = yaml.safe_load(bench.kit.profile.read_text())
    doc["issuance"] = issuance
    path = bench.kit.profile.with_name(f"{name}.yaml")  # next to it: its paths still resolve
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def run_limited(
    bench: ProvBench, tmp_path: Path, issuance: dict[str, int]
) -> tuple[dict[int, Any], CountingCA, str]:
    """One panel at station st1 under a profile with these issuance limits: the slots'
    results, the counted CA and the line store's URL."""
    url = f"sqlite:///{tmp_path / 'line.db'}"
    profile = profile_with(bench, "limited", issuance)
    result, ca = await run_at(bench, "st1", url, profile=profile)
    return dict(result.slots), ca, url


def refusals(url: str, station: str) -> list[str]:
    with open_store(url) as store:
        return [
            str(e.payload["refused"])
            for e in store.audit_entries(station)
            if e.kind == "issue" and "refused" in e.payload
        ]


async def test_a_unit_moved_to_a_second_station_mid_provisioning_gets_no_second_certificate(
    make_prov_bench: Any, tmp_path: Path
) -> None:
    bench: ProvBench = make_prov_bench(slots=1)
    url = f"sqlite:///{tmp_path / 'line.db'}"

    cut_after_signing, _ = bench.cuts_at({1: "cert-signed"})
    r1, ca1 = await run_at(bench, "st1", url, checkpoint=cut_after_signing)
    assert r1.slots[1].verdict is not Verdict.PASS
    assert ca1.signed == 1  # signed, never recorded: the station went

    # The operator moves the unit to another station of the line.
    r2, ca2 = await run_at(bench, "st2", url)
    r = r2.slots[1]
    assert r.verdict is Verdict.ERROR, r.reason
    assert "is claimed for provisioning by station st1" in r.reason, r.reason
    assert ca2.signed == 0  # refused before the CA was asked
    assert usr_serial(bench, 1) is None  # nothing burned either
    with open_store(url) as store:
        assert store.certificates() == []
    assert any("claimed for provisioning by station st1" in why for why in refusals(url, "st2"))


async def test_a_signing_over_the_lot_quota_is_refused_and_audited(
    make_prov_bench: Any, tmp_path: Path
) -> None:
    bench: ProvBench = make_prov_bench(slots=4)
    slots, ca, url = await run_limited(bench, tmp_path, {"lot_quota": 2})
    verdicts = sorted(r.verdict.value for r in slots.values())
    assert verdicts == ["ERROR", "ERROR", "PASS", "PASS"], {s: r.reason for s, r in slots.items()}
    assert ca.signed == 2
    for r in slots.values():
        if r.verdict is Verdict.ERROR:
            assert "lot lot-1 has had its quota of 2 certificates signed" in r.reason, r.reason
    why = refusals(url, "st1")
    assert len(why) == 2 and all("quota of 2" in w for w in why)


async def test_the_station_rate_limit_refuses_and_audits(
    make_prov_bench: Any, tmp_path: Path
) -> None:
    bench: ProvBench = make_prov_bench(slots=2)
    slots, ca, url = await run_limited(bench, tmp_path, {"per_station_per_hour": 1})
    verdicts = sorted(r.verdict.value for r in slots.values())
    assert verdicts == ["ERROR", "PASS"], {s: r.reason for s, r in slots.items()}
    assert ca.signed == 1
    (refused,) = [r for r in slots.values() if r.verdict is Verdict.ERROR]
    assert "its limit is 1 an hour" in refused.reason, refused.reason
    assert [w for w in refusals(url, "st1") if "limit is 1 an hour" in w]


async def test_a_unit_whose_tests_did_not_pass_is_never_signed_even_called_directly(
    make_prov_bench: Any, tmp_path: Path
) -> None:
    """The flow called for a unit whose tests FAILed (a caller that skips the slot's own
    check): the store has that verdict on record and the CA is never asked."""
    bench: ProvBench = make_prov_bench(slots=1)
    url = f"sqlite:///{tmp_path / 'line.db'}"

    def call_directly_with_a_fail(station: StationProvisioning) -> None:
        flow = station.provisioner
        direct = flow.after_tests

        async def called_directly(access: SlotAccess, label: str | None = None) -> Provisioned:
            return await direct(dataclasses.replace(access, tested=Verdict.FAIL), label)

        object.__setattr__(flow, "after_tests", called_directly)

    result, ca = await run_at(bench, "st1", url, prepare=call_directly_with_a_fail)
    r = result.slots[1]
    assert r.verdict is Verdict.ERROR, r.reason
    assert "tests in panel" in r.reason and "ended FAIL, not PASS" in r.reason, r.reason
    assert ca.signed == 0
    assert usr_serial(bench, 1) is None
    assert any("ended FAIL, not PASS" in w for w in refusals(url, "st1"))


async def test_a_unit_moved_after_its_firmware_is_written_is_not_burned_elsewhere(
    make_prov_bench: Any, tmp_path: Path
) -> None:
    """Past the certificate the unit is finished from the ROM loader; another station has
    none of its journal and finishes nothing: no fuse burned there, nothing written."""
    bench: ProvBench = make_prov_bench(slots=1)
    url = f"sqlite:///{tmp_path / 'line.db'}"

    cut_when_written, _ = bench.cuts_at({1: "written"})
    await run_at(bench, "st1", url, checkpoint=cut_when_written)
    assert not bench.efuse(1, "SECURE_BOOT_EN")
    r2, _ = await run_at(bench, "st2", url)
    r = r2.slots[1]
    assert r.verdict is Verdict.ERROR, r.reason
    assert "claimed for provisioning by station st1; it is finished there" in r.reason
    assert not bench.efuse(1, "SECURE_BOOT_EN") and not bench.efuse(1, "DIS_PAD_JTAG")
    journal = Journal(default_spool_path(bench.tmp / "state-st2"))
    try:
        assert journal.acts(bench.efuses(1).mac.hex(":")) == []
    finally:
        journal.close()
