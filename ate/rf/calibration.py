"""A golden board's path-loss calibration: per slot and channel, the loss between the
slot's antenna and the golden board's, measured by `ate rf golden-check` with a
known-good reference unit; with its date, expiry, the golden board's MAC, the fixture's
name and the calibration before it (to see drift).

Owns the file (model, atomic write, load) and the rules a panel applies before it lets
an RF step run (`problem`). Imports ate.config and ate.model only.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field

from ate.config.common import Strict
from ate.config.loader import load_model

DEFAULT_VALID_DAYS = 7
DEFAULT_TOLERANCE_DB = 2.0
# The loss a path between two antennas in one shield box can have: never a gain, and no
# more than a +30 dBm sender heard at the -120 dBm floor. A file outside it (hand-edited,
# corrupt, a broken measurement) would shift every RSSI judged against it.
PATH_LOSS_DB: tuple[float, float] = (0.0, 150.0)
# Channels as calibration keys (ate.model.radio.channel_key): wifi6, ble37.
PathLoss = dict[int, dict[str, Annotated[float, Field(ge=PATH_LOSS_DB[0], le=PATH_LOSS_DB[1])]]]


class Previous(Strict):
    """The calibration this one replaced: what drift is measured against."""

    date: dt.datetime
    path_loss_db: PathLoss


class Calibration(Strict):
    calibration: int = Field(1, description="file format version")
    fixture: str
    golden: str = Field(description="the golden_board resource name")
    golden_mac: str = Field(pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
    date: dt.datetime
    expires: dt.datetime
    tolerance_db: float = Field(DEFAULT_TOLERANCE_DB, gt=0, le=20)
    reference_tx_dbm: float = Field(description="the reference unit's known tx power")
    path_loss_db: PathLoss = Field(description="slot -> channel (wifi6, ble37) -> dB")
    previous: Previous | None = None

    def path_loss(self, slot: int, channel: str) -> float | None:
        return self.path_loss_db.get(slot, {}).get(channel)

    def drifted(self) -> list[tuple[int, str, float]]:
        """(slot, channel, change in dB) beyond the tolerance against the previous one."""
        if self.previous is None:
            return []
        out = []
        for slot, losses in sorted(self.path_loss_db.items()):
            before = self.previous.path_loss_db.get(slot, {})
            for channel, loss in sorted(losses.items()):
                if channel in before and abs(loss - before[channel]) > self.tolerance_db:
                    out.append((slot, channel, loss - before[channel]))
        return out

    def problem(self, *, fixture: str, golden_mac: str, now: dt.datetime) -> str | None:
        """Why RF steps must not run on this calibration, or None."""
        if self.fixture != fixture:
            return f"it is for fixture {self.fixture!r}, not {fixture!r}"
        if self.golden_mac != golden_mac:
            return (
                f"it was made with golden board {self.golden_mac}, but {golden_mac} is on "
                "the port now"
            )
        if now >= self.expires:
            return f"it expired on {self.expires.isoformat(timespec='seconds')}"
        if drift := self.drifted():
            return "it drifted from the one before: " + describe_drift(drift, self.tolerance_db)
        return None


def describe_drift(drift: list[tuple[int, str, float]], tolerance_db: float) -> str:
    shown = ", ".join(f"slot {s} {ch} {d:+.1f} dB" for s, ch, d in drift)
    return f"{shown} (tolerance ±{tolerance_db:g} dB)"


def load(path: Path) -> Calibration:
    """The calibration file at `path` (InputError naming file and line if it is bad)."""
    return load_model(path, Calibration)


def new(
    *,
    fixture: str,
    golden: str,
    golden_mac: str,
    reference_tx_dbm: float,
    path_loss_db: Mapping[int, Mapping[str, float]],
    previous: Calibration | None,
    now: dt.datetime,
    valid_days: int = DEFAULT_VALID_DAYS,
    tolerance_db: float = DEFAULT_TOLERANCE_DB,
) -> Calibration:
    return Calibration(
        fixture=fixture,
        golden=golden,
        golden_mac=golden_mac,
        date=now,
        expires=now + dt.timedelta(days=valid_days),
        tolerance_db=tolerance_db,
        reference_tx_dbm=reference_tx_dbm,
        path_loss_db={s: dict(v) for s, v in path_loss_db.items()},
        previous=(
            Previous(date=previous.date, path_loss_db=previous.path_loss_db)
            if previous is not None
            else None
        ),
    )


def save(cal: Calibration, path: Path) -> None:
    """Write atomically (temp file, fsync, rename): a panel never reads half a file."""
    data = cal.model_dump(mode="json", exclude_none=True)
    text = "# ate rf golden-check: path loss, slot -> channel -> dB\n" + yaml.safe_dump(
        data, sort_keys=False
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
