"""The fault library of `ate nightly`: every fault the simulators can make, as data.

Owns `Outcome` (the verdict classes a fault may produce), `SlotFault` (one unit's
defect: a board knob, a hostile firmware, wire trouble, a power cut) and `PanelFault`
(what befalls the whole panel: the clamp opened, the station killed, the line database
away), and the library the draw picks from. Each fault declares the classes it must
produce, first the one it is designed for, and `stop`: the stage that must stop the unit
("test": never provisioned at all; "provision": never locked). The knobs are written for
the embedded board (fixtures/sim/board-s3-devkit.yaml) and the embedded sequence. Imports
only the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class Outcome(StrEnum):
    """A verdict class in the confusion matrix."""

    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    ABORTED = "ABORTED"
    RECOVERED = "PASS after recovery"  # not PASS at first, PASS after the rerun


Stop = Literal["test", "provision"]
CutAt = Literal["efuse-burn", "flash-write", "command"]


@dataclass(frozen=True)
class PowerCut:
    """The unit loses power at the nth `at` (nth drawn in [first, last]); with `applied`
    the interrupted act takes effect first. `command` names the request for "command"."""

    at: CutAt
    first: int
    last: int
    applied: bool
    command: str | None = None


@dataclass(frozen=True)
class SlotFault:
    name: str
    family: str  # board, transport, hostile, provision, power
    expect: tuple[Outcome, ...]  # allowed classes; the first is the designed one
    what: str
    faults: Mapping[str, Any] = field(default_factory=dict)  # simulation.slots.N.faults
    cut: PowerCut | None = None
    stop: Stop | None = None  # None: a good unit (or one that must recover)

    @property
    def is_defect(self) -> bool:
        return self.stop is not None


PanelKind = Literal["clamp_opened", "station_killed", "line_db_away"]


@dataclass(frozen=True)
class PanelFault:
    name: PanelKind
    what: str
    first: int = 1  # the trigger: the nth step started / provisioning checkpoint
    last: int = 1


GOOD = SlotFault("good", "good", (Outcome.PASS,), "a good unit")

_E = (Outcome.ERROR,)
_F = (Outcome.FAIL,)


def _hostile(mode: str, what: str, **extra: Any) -> SlotFault:
    return SlotFault(
        f"hostile_{mode}", "hostile", _E, what, {"hostile": {"mode": mode, **extra}}, stop="test"
    )


SLOT_FAULTS: tuple[SlotFault, ...] = (
    # Manufacturing defects the sequence measures: the unit is bad, the verdict FAIL.
    SlotFault("stuck_gpio", "board", _F, "GPIO5 stuck low (loopback 4-5)",
              {"stuck_gpio": [{"pin": 5, "level": 0}]}, stop="test"),
    SlotFault("shorted_gpio", "board", _F, "GPIO4 shorted to GPIO6",
              {"shorted_gpio": [[4, 6]]}, stop="test"),
    SlotFault("missing_i2c", "board", _F, "humidity sensor 0x44 absent",
              {"missing_i2c": [0x44]}, stop="test"),
    SlotFault("wrong_spi_flash", "board", _F, "external flash answers another JEDEC id",
              {"jedec_id": 0x12C220}, stop="test"),
    SlotFault("over_current", "board", _F, "2.5x current when active",
              {"over_current": {"mode": "active", "factor": 2.5}}, stop="test"),
    SlotFault("rail_low", "board", _F, "3.3 V rail at 3.0 V", {"rail_v": {"3v3": 3.0}},
              stop="test"),
    # Units that cannot be measured: ERROR (retest), never a judgement.
    SlotFault("no_flash", "board", _E, "the module's SPI flash is not attached",
              {"no_flash": True}, stop="test"),
    SlotFault("no_ready", "board", _E, "boots, never says READY", {"no_ready": True},
              stop="test"),
    SlotFault("hang", "board", _E, "firmware hangs after 20 requests", {"hang_after": 20},
              stop="test"),
    # Wire trouble on a good unit: the host's resend covers it, or the slot is ERROR.
    SlotFault("garbage_lines", "transport", (Outcome.PASS,),
              "random bytes as lines of their own before replies",
              {"garbage": {"probability": 0.3, "max_bytes": 32}}),
    SlotFault("garbled_replies", "transport", (Outcome.PASS, Outcome.ERROR),
              "random bytes inside reply lines (the host resends)",
              {"garbage": {"probability": 0.05, "mid_line": True}}),
    SlotFault("dropped_replies", "transport", (Outcome.PASS, Outcome.ERROR),
              "reply lines lost (the host resends)", {"drop_reply": {"probability": 0.05}}),
    SlotFault("port_vanishes", "transport", _E, "the USB-serial adapter pulled mid-sequence",
              {"port_vanishes_after": 15}, stop="test"),
    # A lying, flooding or rebooting firmware: ERROR for its slot alone.
    _hostile("wrong_id", "answers with request ids never sent"),
    _hostile("unsolicited", "sends replies to requests never made"),
    _hostile("endless_line", "a 1 MiB line with no end"),
    _hostile("nan", "RF readings of nan"),
    _hostile("impossible", "a packet error rate of 130 %"),
    _hostile("reboot", "reboots by itself mid-sequence"),
    _hostile("clone_mac", "claims another unit's MAC", mac="24:0a:c4:00:00:01"),
    SlotFault("hostile_log_flood", "hostile", (Outcome.PASS, Outcome.ERROR),
              "500 log lines before every reply (still honest)",
              {"hostile": {"mode": "log_flood"}}),
    # The device lies while being provisioned: a bad unit (FAIL), never locked.
    SlotFault("prov_p384_csr", "provision", _F, "the CSR carries another (P-384) key",
              {"prov_key_type": "p384"}, stop="provision"),
    SlotFault("prov_subject", "provision", _F, "the CSR names another subject",
              {"prov_subject_tamper": True}, stop="provision"),
    SlotFault("prov_bad_signature", "provision", _F, "signs with another key than it reports",
              {"prov_bad_signature": True}, stop="provision"),
    # Power cuts on a good unit: not PASS at first, PASS (and locked) after the rerun.
    SlotFault("cut_in_efuse_burn", "power", (Outcome.RECOVERED,),
              "power lost inside an eFuse program operation (it took)",
              cut=PowerCut("efuse-burn", 1, 12, applied=True)),
    SlotFault("cut_before_efuse_burn", "power", (Outcome.RECOVERED,),
              "power lost as an eFuse program operation starts (it did not take)",
              cut=PowerCut("efuse-burn", 1, 12, applied=False)),
    SlotFault("cut_in_flash_write", "power", (Outcome.RECOVERED,),
              "power lost inside a flash write", cut=PowerCut("flash-write", 1, 4, applied=True)),
    SlotFault("cut_in_prov_sign", "power", (Outcome.RECOVERED,),
              "power lost while the device signs its proof",
              cut=PowerCut("command", 1, 1, applied=True, command="prov.sign")),
    SlotFault("cut_in_prov_key", "power", (Outcome.RECOVERED,),
              "power lost while the device makes its key",
              cut=PowerCut("command", 1, 1, applied=False, command="prov.key")),
)  # fmt: skip

PANEL_FAULTS: tuple[PanelFault, ...] = (
    PanelFault("clamp_opened", "the operator opens the clamp mid-panel", 1, 40),
    PanelFault("station_killed", "the station process dies mid-provisioning, then reruns", 1, 60),
    PanelFault("line_db_away", "the line database is unreachable for the whole panel"),
)

LIBRARY: dict[str, SlotFault] = {f.name: f for f in (GOOD, *SLOT_FAULTS)}
PANEL_LIBRARY: dict[str, PanelFault] = {f.name: f for f in PANEL_FAULTS}
