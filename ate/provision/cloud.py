"""Per-lot cloud outputs, rebuilt from the line store after each panel and written atomically:
the CA bundle and the subject fields a JITR/JITP template reads, or a bulk-registration
manifest (newline-delimited JSON, one locked unit a line); and, with registration
`aws_iot`, each locked unit put on the station's cloud-registration queue.

May import ate.store.api's rows, ate.provision.profile, ate.provision.cloud_queue and
ate.records (atomic writes).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Protocol

from ate.provision.cloud_queue import CloudQueue, Unit
from ate.provision.profile import LoadedProfile
from ate.records.unit_record import write_bytes_atomic, write_json_atomic
from ate.store.api import CertificateRow, ProvUnit


class LotRecords(Protocol):
    """A lot's units and certificates as the line store holds them (blocking reads;
    ate.station.line.LineDb)."""

    def units_now(self, lot: str | None) -> list[ProvUnit]: ...

    def certificates_now(self, lot: str | None) -> list[CertificateRow]: ...


# The certificate subject fields a JITP template can take parameters from.
_JITP_PARAMETERS = {
    "common_name": "AWS::IoT::Certificate::CommonName",
    "serial": "AWS::IoT::Certificate::SerialNumber",
    "organization": "AWS::IoT::Certificate::Organization",
    "organizational_unit": "AWS::IoT::Certificate::OrganizationalUnit",
    "country": "AWS::IoT::Certificate::Country",
}


def lot_dir(out_dir: Path, lot: str) -> Path:
    return out_dir / "cloud" / re.sub(r"[^A-Za-z0-9_.-]", "_", lot)


def thing_name(profile: LoadedProfile, serial: str, mac: str) -> str:
    return profile.model.cloud.thing_name.format(
        serial=serial, mac=mac.replace(":", ""), product=profile.model.product.name
    )


def write_cloud_outputs(
    profile: LoadedProfile, records: LotRecords, out_dir: Path, lot: str
) -> list[Path]:
    """Write (again) this lot's outputs; returns the files written."""
    kind = profile.model.cloud.output
    if kind == "none":
        return []
    folder = lot_dir(out_dir, lot)
    written: list[Path] = []
    if kind in ("jitr", "jitp"):
        bundle = folder / "ca-bundle.pem"
        write_bytes_atomic(bundle, profile.chain_pem())
        written.append(bundle)
        cert = profile.model.certificate
        fields = {
            "subject": {
                "CommonName": cert.common_name,
                "SerialNumber": "{serial}",
                "Organization": cert.organization,
                "OrganizationalUnit": cert.organizational_unit,
                "Country": cert.country,
            },
            "template_parameters": {
                k: v
                for k, v in _JITP_PARAMETERS.items()
                if k in ("common_name", "serial") or getattr(cert, k, None)
            },
            "thing_name": profile.model.cloud.thing_name,
            "mode": kind,
        }
        path = folder / f"{kind}-subject-fields.json"
        write_json_atomic(path, fields)
        written.append(path)
        return written
    locked = {u.chip_id: u for u in records.units_now(lot) if u.state == "locked"}
    lines = []
    for row in records.certificates_now(lot):
        if row.chip_id not in locked or not row.pem:
            continue
        lines.append(
            json.dumps(
                {
                    "ThingName": thing_name(profile, row.serial, row.chip_id),
                    "SerialNumber": row.serial,
                    "CertificatePem": row.pem,
                },
                sort_keys=False,
            )
        )
    path = folder / "bulk-registration.ndjson"
    write_bytes_atomic(path, "".join(line + "\n" for line in lines).encode())
    written.append(path)
    return written


def queue_locked_units(
    profile: LoadedProfile, records: LotRecords, queue: CloudQueue, lot: str | None
) -> int:
    """Put this lot's locked units on the registration queue; how many were new to it (a
    unit already queued or registered is left as it is)."""
    locked = {u.chip_id for u in records.units_now(lot) if u.state == "locked"}
    added = 0
    for row in records.certificates_now(lot):
        if row.chip_id in locked and row.pem:
            unit = Unit(
                row.chip_id,
                row.serial,
                thing_name(profile, row.serial, row.chip_id),
                row.fingerprint,
                row.pem,
            )
            added += queue.enqueue(unit)
    return added
