"""A station's provisioning set-up for a run: the profile with its CA, the ledger in the
station's state folder, the gate on the files the tests ran under, and the per-lot
outputs written after each panel.

May import ate.provision, ate.config and ate.records.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ate.config.loader import LoadedSequence
from ate.provision import failpoints
from ate.provision.cloud import queue_locked_units, write_cloud_outputs
from ate.provision.cloud_queue import QUEUE_FILE, CloudQueue
from ate.provision.flow import Checkpoint, Gate, LineClaims, Provisioner
from ate.provision.ledger import Ledger
from ate.provision.profile import LoadedProfile, open_profile
from ate.records.unit_record import write_bytes_atomic

LEDGER_FILE = "ledger.sqlite"


def default_lot() -> str:
    return "lot-" + dt.datetime.now(dt.UTC).strftime("%Y%m%d")


@dataclass
class StationProvisioning:
    profile: LoadedProfile
    ledger: Ledger
    provisioner: Provisioner
    out_dir: Path
    lot: str
    # The cloud-registration queue (profile cloud.registration: aws_iot), else None.
    cloud: CloudQueue | None = None

    def after_panel(self) -> list[Path]:
        """The CA chain and this lot's cloud outputs, rebuilt from the ledger; the lot's
        locked units queued for cloud registration (a local insert, never the cloud)."""
        chain = self.out_dir / "certs" / "chain.pem"
        write_bytes_atomic(chain, self.profile.chain_pem())
        if self.cloud is not None:
            queue_locked_units(self.profile, self.ledger, self.cloud, self.lot)
        return [chain, *write_cloud_outputs(self.profile, self.ledger, self.out_dir, self.lot)]

    def close(self) -> None:
        if self.cloud is not None:
            self.cloud.close()
        self.ledger.close()
        self.profile.close()


def open_provisioning(
    profile_path: Path,
    sequence: LoadedSequence,
    *,
    state_dir: Path,
    out_dir: Path,
    station: str,
    operator: str,
    lot: str | None = None,
    labels: dict[int, str] | None = None,
    require_label: bool = False,
    checkpoint: Checkpoint | None = None,
    line: LineClaims | None = None,
) -> StationProvisioning:
    """InputError for a bad profile, CaNotReady when the CA cannot sign, LedgerError for
    an unusable ledger: all before the first panel."""
    profile = open_profile(profile_path, sequence_chip=sequence.model.chip)
    try:
        ledger = Ledger(state_dir / LEDGER_FILE)
    except BaseException:
        profile.close()
        raise
    gate = Gate(
        {
            sequence.path.resolve(): sequence.sha256,
            profile.path.resolve(): profile.sha256,
            profile.release.path.resolve(): profile.release.sha256,
        }
    )
    lot = lot or default_lot()
    provisioner = Provisioner(
        profile,
        ledger,
        station=station,
        operator=operator,
        gate=gate,
        lot=lot,
        out_dir=out_dir,
        checkpoint=checkpoint or failpoints.from_env(),
        labels=labels,
        require_label=require_label,
        line=line,
    )
    cloud = None
    if profile.model.cloud.registration != "none":
        cloud = CloudQueue(state_dir / QUEUE_FILE)
    return StationProvisioning(profile, ledger, provisioner, out_dir, lot, cloud)
