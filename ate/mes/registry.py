"""MES drivers by the name the station file gives (`mes: {driver: ...}`).

May import ate.mes and ate.config; a driver's own library is imported when it is chosen.
"""

from __future__ import annotations

from collections.abc import Callable

from ate.config.station import StationMes
from ate.mes.gate import MesGate
from ate.mes.linedb import LineDbGate

# (settings, station name, the line database's gate, a dropped-message counter) -> gate
Factory = Callable[[StationMes, str, LineDbGate, Callable[[], None] | None], MesGate]


def _linedb(cfg: StationMes, station: str, linedb: LineDbGate, on_drop: object) -> MesGate:
    return linedb


def _cfx(
    cfg: StationMes, station: str, linedb: LineDbGate, on_drop: Callable[[], None] | None
) -> MesGate:
    from ate.mes.cfx import CfxGate

    return CfxGate(cfg, station, on_drop=on_drop)


DRIVERS: dict[str, Factory] = {"linedb": _linedb, "cfx": _cfx}


def open_gate(
    cfg: StationMes,
    station: str,
    linedb: LineDbGate,
    on_drop: Callable[[], None] | None = None,
) -> MesGate:
    return DRIVERS[cfg.driver](cfg, station, linedb, on_drop)
