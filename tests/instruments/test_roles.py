"""Which instrument a role gives a slot: the fixture file's, else the fixture MCU's
(`supply` always; `dmm` and `mux` only together), and never the wrong protocol."""

from __future__ import annotations

import pytest

from ate.instruments.base import DMM, MUX, SHIELD, SUPPLY, Dmm, InstrumentError, PowerSupply
from ate.instruments.registry import Instruments, bound
from ate.instruments.scpi import ScpiLink


class OneChannel:
    """An opened instrument that gives every slot one object (what the registry holds)."""

    def __init__(self, obj: object) -> None:
        self.obj = obj
        self.closed = 0

    def for_slot(self, slot: int) -> object:
        return self.obj

    async def aclose(self) -> None:
        self.closed += 1


def test_roles_not_named_fall_back_as_documented() -> None:
    meter = OneChannel(object())
    only_dmm = Instruments({DMM: meter})
    assert only_dmm.has(DMM) and only_dmm.has(SUPPLY)
    assert not only_dmm.has(MUX)  # an MCU mux routes to no SCPI DMM
    assert not only_dmm.has(SHIELD)
    none = Instruments({})
    assert none.has(DMM) and none.has(MUX) and none.has(SUPPLY) and not none.has(SHIELD)
    with pytest.raises(InstrumentError, match=r"no instrument for role 'shield'; .* names: dmm"):
        only_dmm.for_slot(SHIELD, 1, None)
    with pytest.raises(InstrumentError, match="no fixture MCU"):
        none.for_slot(SUPPLY, 1, None)


def test_a_role_whose_driver_is_not_the_protocol_is_an_error() -> None:
    with pytest.raises(InstrumentError, match=r"role 'supply' .* is not a PowerSupply"):
        bound(object(), SUPPLY, PowerSupply)
    with pytest.raises(InstrumentError, match="is not a Dmm"):
        bound(ScpiLink, DMM, Dmm)


async def test_one_session_named_by_two_roles_closes_once() -> None:
    shared = OneChannel(object())
    insts = Instruments({DMM: shared, MUX: shared})
    await insts.aclose()
    assert shared.closed == 1
