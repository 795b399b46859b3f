"""A station's provisioning set-up for a run: the profile with its CA, the journal in the
station's spool file, the line store (the configured line database, else the station's
local store file: always exactly one owner of serials, certificates and states), the gate
on the files the tests ran under, and the per-lot outputs written after each panel.

May import ate.provision, ate.config, ate.records, ate.store.spool, ate.station.line and
ate.cli.store_cmds (the default store URL).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ate.config.loader import LoadedSequence
from ate.provision import failpoints
from ate.provision.cloud import queue_locked_units, write_cloud_outputs
from ate.provision.cloud_queue import QUEUE_FILE, CloudQueue
from ate.provision.flow import Checkpoint, Gate, Provisioner
from ate.provision.journal import Journal, JournalError
from ate.provision.profile import LoadedProfile, open_profile
from ate.records.unit_record import write_bytes_atomic
from ate.station.line import LineDb
from ate.store.spool import default_spool_path

OLD_LEDGER_FILE = "ledger.sqlite"  # an older ate's station ledger: refused, never read


def local_store_url(state_dir: Path) -> str:
    """The store a station without a line database keeps in its state folder ($ATE_DB
    when set): its line store, and its records database."""
    from ate.cli.store_cmds import default_db_url

    return default_db_url(state_dir)


def default_lot() -> str:
    return "lot-" + dt.datetime.now(dt.UTC).strftime("%Y%m%d")


@dataclass
class StationProvisioning:
    profile: LoadedProfile
    journal: Journal
    line: LineDb
    provisioner: Provisioner
    out_dir: Path
    lot: str
    # The cloud-registration queue (profile cloud.registration: aws_iot), else None.
    cloud: CloudQueue | None = None
    owns_line: bool = False  # opened here (no line database was given): closed here

    def after_panel(self) -> list[Path]:
        """The CA chain and this lot's cloud outputs, rebuilt from the line store; the
        lot's locked units queued for cloud registration (a local insert, never the cloud)."""
        chain = self.out_dir / "certs" / "chain.pem"
        write_bytes_atomic(chain, self.profile.chain_pem())
        if self.cloud is not None:
            queue_locked_units(self.profile, self.line, self.cloud, self.lot)
        return [chain, *write_cloud_outputs(self.profile, self.line, self.out_dir, self.lot)]

    def close(self) -> None:
        if self.cloud is not None:
            self.cloud.close()
        self.journal.close()
        if self.owns_line:
            self.line.close()
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
    line: LineDb | None = None,
) -> StationProvisioning:
    """InputError for a bad profile, CaNotReady when the CA cannot sign, JournalError for
    an unusable journal (or an older ate's ledger in `state_dir`): all before the first
    panel. Without `line`, the station's local
    store file (in `state_dir`) is its line store."""
    old = state_dir / OLD_LEDGER_FILE
    if old.exists():
        # Its units' serials, certificates and half-done acts are nowhere else: ignoring it
        # would re-issue identities and lose what a power-loss recovery needs.
        raise JournalError(
            f"{old} is a provisioning ledger of an older ate; this ate keeps identities in "
            "the line store and acts in the spool's journal: finish its units with the older "
            "ate, then move the file aside"
        )
    profile = open_profile(profile_path, sequence_chip=sequence.model.chip)
    try:
        journal = Journal(default_spool_path(state_dir))
    except BaseException:
        profile.close()
        raise
    owns_line = line is None
    if line is None:
        line = LineDb(local_store_url(state_dir))
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
        journal,
        line=line,
        station=station,
        operator=operator,
        gate=gate,
        lot=lot,
        out_dir=out_dir,
        checkpoint=checkpoint or failpoints.from_env(),
        labels=labels,
        require_label=require_label,
    )
    cloud = None
    if profile.model.cloud.registration != "none":
        cloud = CloudQueue(state_dir / QUEUE_FILE)
    return StationProvisioning(
        profile, journal, line, provisioner, out_dir, lot, cloud, owns_line=owns_line
    )
