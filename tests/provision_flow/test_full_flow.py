"""The whole mission on four simulated units in one panel: tested, provisioned and locked
with real esptool/espefuse against the ROM-loader simulator; a failed unit untouched."""

from __future__ import annotations

import json

from cryptography import x509
from prov_helpers import locked_fuses_ok, openssl_verify, secure_cert_of, station_state, usr_serial

from ate.model.verdict import Verdict


async def test_four_units_one_panel_three_locked_faulted_untouched(make_prov_bench) -> None:
    bench = make_prov_bench(
        sim_slots={3: {"faults": {"over_current": {"mode": "idle", "factor": 3}}}}
    )
    result = await bench.run()
    verdicts = {s: r.verdict for s, r in result.slots.items()}
    assert verdicts == {1: Verdict.PASS, 2: Verdict.PASS, 3: Verdict.FAIL, 4: Verdict.PASS}, {
        s: r.reason for s, r in result.slots.items()
    }
    with station_state(bench.state_dir) as (store, _journal):
        serials = set()
        for slot in (1, 2, 4):
            r = result.slots[slot]
            prov = r.extra["provisioning"]
            assert prov["state"] == "locked"
            assert r.unit is not None
            row = store.prov_unit(r.unit.mac)
            assert row is not None and row.state == "locked" and row.serial == prov["serial"]
            # The chip's own truth: serial in BLOCK_USR_DATA, every lock-down fuse burned.
            assert usr_serial(bench, slot) == prov["serial"]
            locked_fuses_ok(bench, slot)
            # esp_secure_cert on flash holds the very certificate the line store recorded.
            cert_pem = secure_cert_of(bench, slot)["dev_cert"]
            cert = x509.load_pem_x509_certificate(cert_pem)
            assert cert.fingerprint(cert.signature_hash_algorithm).hex()  # parses
            assert store.certificate(r.unit.mac).pem.encode().strip() == cert_pem.strip()
            serials.add(prov["serial"])
        assert len(serials) == 3
        # The failed unit: not in the line store, blank BLOCK_USR_DATA, no key on the device.
        failed = result.slots[3]
        assert failed.unit is not None and store.prov_unit(failed.unit.mac) is None
        assert usr_serial(bench, 3) is None
        assert not bench.efuse(3, "SECURE_BOOT_EN")
        assert bench.flash(3).read(0xF000, 4) == b"\xff\xff\xff\xff"
    out = bench.out_dir()
    # Certificate chains verify with openssl, the chain file from the run's outputs.
    for serial in serials:
        proc = openssl_verify(out / "certs" / "chain.pem", out / "certs" / f"{serial}.pem")
        assert proc.returncode == 0 and ": OK" in proc.stdout, proc.stdout + proc.stderr
    manifest = out / "cloud" / "lot-1" / "bulk-registration.ndjson"
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert sorted(x["SerialNumber"] for x in lines) == sorted(serials)
    assert all(x["CertificatePem"].startswith("-----BEGIN CERTIFICATE-----") for x in lines)


async def test_rerun_recognises_locked_units_without_retesting(make_prov_bench) -> None:
    """A locked unit in Secure Download Mode cannot show its MAC, and matching security
    flags prove nothing (another line's units have them too): without a proof of an
    identity this line issued it is ERROR, "locked elsewhere or unknown", never re-tested
    and never touched; a false PASS would ship a stranger's unit as ours."""
    bench = make_prov_bench(slots=2)
    first = await bench.run()
    assert all(r.verdict is Verdict.PASS for r in first.slots.values())
    with station_state(bench.state_dir) as (_store, journal):
        acts_before = {s: len(journal.acts(first.slots[s].unit.mac)) for s in first.slots}
    second = await bench.run()
    for r in second.slots.values():
        assert r.verdict is Verdict.ERROR, r.reason
        assert r.reason.startswith("locked elsewhere or unknown: "), r.reason
        assert r.reason.endswith("nothing was touched")
        assert all(s.verdict is Verdict.SKIPPED for s in r.steps)  # not re-tested
    with station_state(bench.state_dir) as (store, journal):
        for slot in first.slots:
            assert len(journal.acts(first.slots[slot].unit.mac)) == acts_before[slot]
        assert len(store.certificates()) == 2
