"""The golden board: a known-good board running the same test firmware in role golden,
on its own port, that the host drives as the other end of every RF exchange.

Owns opening it (role check), and the per-panel set of golden boards with their
calibrations that RF steps reach through StepContext.rf. Imports ate.drivers and
ate.rf.calibration only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ate.drivers.dut import TestFirmwareClient
from ate.drivers.line_client import DeviceError, LineClient, reply_field
from ate.model.radio import RfMode, channel_key
from ate.protocol.fields import as_mac, as_text
from ate.rf.calibration import Calibration


class NotGolden(Exception):
    """The board on a golden board's port is not in role golden (or does not say)."""


class GoldenBoard:
    """A golden board's test firmware, role checked. Create with `await GoldenBoard.open`."""

    def __init__(self, name: str, firmware: TestFirmwareClient, mac: str) -> None:
        self.name = name  # the fixture's resource name
        self.firmware = firmware
        self.mac = mac

    @classmethod
    async def open(
        cls, name: str, endpoint: str, baud: int = 115200, *, timeout: float = 0.5
    ) -> GoldenBoard:
        line = await LineClient.open(endpoint, baud, name=f"golden {name}")
        try:
            firmware = TestFirmwareClient(line, timeout=timeout)
            return await cls.attach(name, firmware)
        except BaseException:
            await line.close()
            raise

    @classmethod
    async def attach(cls, name: str, firmware: TestFirmwareClient) -> GoldenBoard:
        """Check the board on `firmware` is a golden board: `info` must say role=golden
        (a DUT's test firmware there would be provisioned or judged as the reference)."""
        info = await firmware.call("info")
        role = info.get("role")
        if role != "golden":
            raise NotGolden(
                f"golden board {name!r}: the board on its port says "
                + (f"role={role}" if role is not None else "no role (firmware too old)")
                + "; set it with `rf.role golden` on that board"
            )
        mac = reply_field(info, "mac", as_mac, "info")
        reply_field(info, "fw", as_text, "info")
        return cls(name, firmware, mac)

    async def close(self) -> None:
        await self.firmware.line.close()


@dataclass(frozen=True)
class GoldenLink:
    """One golden board and the calibration the panel checked for it (None only in the
    golden check, which measures what a calibration corrects)."""

    board: GoldenBoard
    calibration: Calibration | None

    def path_loss_db(self, slot: int, mode: RfMode, channel: int) -> float:
        cal = self.calibration
        loss = cal.path_loss(slot, channel_key(mode, channel)) if cal is not None else None
        if loss is None:
            raise DeviceError(
                f"golden board {self.board.name}",
                "ECAL",
                f"its calibration has no path loss for slot {slot}, {mode} channel {channel}; "
                "run ate rf golden-check with that channel",
            )
        return loss


class RfBoards:
    """The golden boards of one panel by resource name, and which one an RF step without
    `golden:` uses."""

    def __init__(self, links: Mapping[str, GoldenLink], default: str | None) -> None:
        self.links = dict(links)
        self.default = default

    def link(self, name: str | None) -> GoldenLink:
        key = name or self.default
        if key is None or key not in self.links:
            raise DeviceError(
                "golden board", "ENODEV", f"{key or 'no default'}: not opened for this panel"
            )
        return self.links[key]

    async def close(self) -> None:
        for link in self.links.values():
            await link.board.close()
