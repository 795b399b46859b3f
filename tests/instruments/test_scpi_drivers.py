"""The SCPI drivers against pyvisa-sim YAML instruments and against the socket twins
(pyvisa-py on TCPIP::127.0.0.1::PORT::SOCKET): commands, channels, *IDN? checks, and
every reply that is not a plain number refused as a reading."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ate.instruments import scpi_drivers
from ate.instruments.base import (
    Dmm,
    InstrumentError,
    InstrumentMismatch,
    PowerSupply,
    Reading,
    RelayMux,
    ShieldBox,
)
from ate.instruments.registry import InstrumentContext, InstrumentDriver, OpenInstrument
from ate.instruments.scpi import OVERFLOW, parse_number
from ate.instruments.twins.scpi_twin import DmmTwin, MuxTwin, PsuTwin, ScpiTwin, ShieldBoxTwin

HERE = Path(__file__).resolve().parent
SIM = "sim_instruments.yaml@sim"


async def open_driver(driver: InstrumentDriver, **settings: Any) -> OpenInstrument:
    model = driver.settings.model_validate(settings)
    return await driver.open(InstrumentContext("role", model, HERE))


@pytest.fixture
async def served() -> AsyncIterator[list[ScpiTwin]]:
    twins: list[ScpiTwin] = []
    yield twins
    for twin in twins:
        await twin.aclose()


async def serve(twins: list[ScpiTwin], twin: ScpiTwin) -> str:
    await twin.serve()
    twins.append(twin)
    return twin.resource


# ---- through pyvisa-sim -----------------------------------------------------------------


async def test_psu_on_pyvisa_sim_addresses_its_channel() -> None:
    psu = await open_driver(
        scpi_drivers.PSU,
        resource="TCPIP::psu.sim::5025::SOCKET",
        idn=r"E36313A",
        backend=SIM,
        channels={1: 2, 2: 3},
    )
    try:
        out = psu.for_slot(1)
        assert isinstance(out, PowerSupply)
        await out.set_voltage(3.3)
        await out.set_current_limit(0.5)
        await out.output(True)
        assert await out.measure_voltage() == Reading(3.2995, "V")
        assert await out.measure_current(4) == Reading(0.0421, "A")
        with pytest.raises(InstrumentError, match="overflow"):
            await psu.for_slot(2).measure_current()  # type: ignore[attr-defined]
        with pytest.raises(InstrumentError, match="no channel for slot 3"):
            psu.for_slot(3)
    finally:
        await psu.aclose()


async def test_dmm_mux_shield_on_pyvisa_sim() -> None:
    dmm = await open_driver(
        scpi_drivers.DMM, resource="TCPIP::dmm.sim::5025::SOCKET", idn="MODEL 2000", backend=SIM
    )
    mux = await open_driver(
        scpi_drivers.MUX,
        resource="TCPIP::mux.sim::5025::SOCKET",
        idn="34980A",
        backend=SIM,
        routes={1: {"3v3": "1101"}},
    )
    box = await open_driver(
        scpi_drivers.SHIELD_BOX,
        resource="TCPIP::shield.sim::5025::SOCKET",
        idn="SHIELD-BOX",
        backend=SIM,
    )
    try:
        meter, relays, shield = dmm.for_slot(1), mux.for_slot(1), box.for_slot(4)
        assert isinstance(meter, Dmm) and isinstance(relays, RelayMux)
        assert isinstance(shield, ShieldBox)
        await relays.select("3v3")
        assert await meter.measure_volts_dc() == Reading(3.3012, "V")
        assert await meter.measure_amps_dc() == Reading(-0.00125, "A")
        await relays.open_all()
        with pytest.raises(InstrumentError, match="no route 'vbat' for slot 1"):
            await relays.select("vbat")
        await shield.close()
        assert await shield.closed() is True
    finally:
        for inst in (dmm, mux, box):
            await inst.aclose()


async def test_nan_and_not_a_number_marker_from_pyvisa_sim_are_errors() -> None:
    dmm = await open_driver(
        scpi_drivers.DMM,
        resource="TCPIP::dmmnan.sim::5025::SOCKET",
        idn="MODEL 2000",
        backend=SIM,
    )
    try:
        meter = dmm.for_slot(1)
        assert isinstance(meter, Dmm)
        with pytest.raises(InstrumentError, match="'NAN', not a number"):
            await meter.measure_volts_dc()
        with pytest.raises(InstrumentError, match="overflow / not-a-number marker"):
            await meter.measure_amps_dc()
    finally:
        await dmm.aclose()


async def test_a_command_the_instrument_refuses_is_an_error() -> None:
    psu = await open_driver(
        scpi_drivers.PSU, resource="TCPIP::refuses.sim::5025::SOCKET", idn="E363", backend=SIM
    )
    try:
        out = psu.for_slot(1)
        assert isinstance(out, PowerSupply)
        with pytest.raises(InstrumentError, match=r"VOLT 99 refused: -222,'Data out of range'"):
            await out.set_voltage(99)
    finally:
        await psu.aclose()


async def test_idn_mismatch_on_pyvisa_sim_is_one_line() -> None:
    with pytest.raises(InstrumentMismatch) as caught:
        await open_driver(
            scpi_drivers.DMM, resource="TCPIP::psu.sim::5025::SOCKET", idn="MODEL 2000", backend=SIM
        )
    text = str(caught.value)
    assert "\n" not in text
    assert "TCPIP::psu.sim::5025::SOCKET answers *IDN? with 'Keysight" in text
    assert "expects /MODEL 2000/" in text


# ---- through pyvisa-py on the socket twins ------------------------------------------------


async def test_psu_twin_current_follows_its_load(served: list[ScpiTwin]) -> None:
    twin = PsuTwin(outputs=2)
    twin.channels[2].load = lambda volts: volts / 50.0
    psu = await open_driver(
        scpi_drivers.PSU, resource=await serve(served, twin), idn="SIM-PSU", channels={1: 2}
    )
    try:
        out = psu.for_slot(1)
        assert isinstance(out, PowerSupply)
        await out.set_voltage(5.0)
        await out.set_current_limit(0.05)
        assert (await out.measure_current()).value == 0.0  # output off
        await out.output(True)
        assert twin.channels[2].on and not twin.channels[1].on
        assert math.isclose((await out.measure_current(3)).value, 0.05)  # held at the limit
        assert math.isclose((await out.measure_voltage()).value, 2.5)  # ... voltage sags
        await out.set_current_limit(1.0)
        assert math.isclose((await out.measure_current()).value, 0.1)
        assert "OUTP ON,(@2)" in twin.received
        for bad in (math.nan, math.inf, -1.0):
            with pytest.raises(InstrumentError, match="a setpoint is a finite number"):
                await out.set_voltage(bad)
        with pytest.raises(InstrumentError, match="at least one sample"):
            await out.measure_current(0)
        assert not any("nan" in line.lower() or "inf" in line.lower() for line in twin.received)
    finally:
        await psu.aclose()


async def test_dmm_reads_the_rail_the_mux_closed(served: list[ScpiTwin]) -> None:
    mux_twin = MuxTwin(rails={101: 3.301, 102: 1.799, 201: 3.297})
    dmm_twin = DmmTwin(volts=mux_twin.level)
    mux = await open_driver(
        scpi_drivers.MUX,
        resource=await serve(served, mux_twin),
        idn="SIM-MUX",
        routes={1: {"3v3": "101", "1v8": "102"}, 2: {"3v3": "201"}},
    )
    dmm = await open_driver(scpi_drivers.DMM, resource=await serve(served, dmm_twin), idn="SIM-DMM")
    try:
        meter = dmm.for_slot(2)
        assert isinstance(meter, Dmm)
        for slot, rail, relay, want in (
            (1, "3v3", 101, 3.301),
            (1, "1v8", 102, 1.799),
            (2, "3v3", 201, 3.297),
        ):
            relays = mux.for_slot(slot)
            assert isinstance(relays, RelayMux)
            await relays.select(rail)
            assert mux_twin.closed == {relay}  # the last selection's relays opened first
            assert (await meter.measure_volts_dc()).value == pytest.approx(want)
        await relays.open_all()
        assert mux_twin.closed == set()
        # Nothing closed: the meter's input is open and it overflows, which is no reading.
        with pytest.raises(InstrumentError, match="overflow"):
            await meter.measure_volts_dc()
    finally:
        await mux.aclose()
        await dmm.aclose()


async def test_shield_box_twin(served: list[ScpiTwin]) -> None:
    twin = ShieldBoxTwin()
    box = await open_driver(
        scpi_drivers.SHIELD_BOX, resource=await serve(served, twin), idn="SIM-SHIELD"
    )
    try:
        shield = box.for_slot(1)
        assert isinstance(shield, ShieldBox)
        assert await shield.closed() is False
        await shield.close()
        assert twin.door_closed and await shield.closed() is True
        twin.replies["DOOR:STAT?"] = "MOVING"
        with pytest.raises(InstrumentError, match="known closed only on CLOSED"):
            await shield.closed()
    finally:
        await box.aclose()


HOSTILE = [
    "NAN",
    "nan",
    "9.9E37",
    "+9.90000000E+37",
    "-9.9E37",
    "9.91E37",
    "INF",
    "1e999",
    "garbage",
    "",
    "3.3 V",
    "+3.3E+00,+1.0E+00",
    "0x1F",
    "1_000",
    "\uff13.\uff13",  # fullwidth digits: float() would take them
]


@pytest.mark.parametrize("reply", HOSTILE)
async def test_hostile_reply_from_the_twin_is_an_error(served: list[ScpiTwin], reply: str) -> None:
    twin = DmmTwin(volts=lambda: 3.3)
    twin.replies["MEAS:VOLT:DC?"] = reply
    dmm = await open_driver(scpi_drivers.DMM, resource=await serve(served, twin), idn="SIM-DMM")
    try:
        meter = dmm.for_slot(1)
        assert isinstance(meter, Dmm)
        with pytest.raises(InstrumentError):
            await meter.measure_volts_dc()
    finally:
        await dmm.aclose()


async def test_idn_mismatch_on_the_twin_is_one_line(served: list[ScpiTwin]) -> None:
    resource = await serve(served, DmmTwin(idn="RIGOL TECHNOLOGIES,DM3068,DM3O000001,01.01"))
    with pytest.raises(InstrumentMismatch, match=r"answers \*IDN\? with 'RIGOL") as caught:
        await open_driver(scpi_drivers.DMM, resource=resource, idn="KEITHLEY.*MODEL 2000")
    assert "\n" not in str(caught.value)


async def test_a_silent_instrument_times_out_into_an_error(served: list[ScpiTwin]) -> None:
    twin = DmmTwin()
    twin.silent.add("MEAS:VOLT:DC?")
    dmm = await open_driver(
        scpi_drivers.DMM, resource=await serve(served, twin), idn="SIM-DMM", timeout=0.2
    )
    try:
        meter = dmm.for_slot(1)
        assert isinstance(meter, Dmm)
        with pytest.raises(InstrumentError, match=r"MEAS:VOLT:DC\?"):
            await meter.measure_volts_dc()
    finally:
        await dmm.aclose()


async def test_a_late_reply_is_never_taken_for_the_next_reading(served: list[ScpiTwin]) -> None:
    readings = iter([1.0, 2.0, 3.0])
    twin = DmmTwin(volts=lambda: next(readings))
    dmm = await open_driver(
        scpi_drivers.DMM, resource=await serve(served, twin), idn="SIM-DMM", timeout=0.3
    )
    try:
        meter = dmm.for_slot(1)
        assert isinstance(meter, Dmm)
        twin.delays["MEAS:VOLT:DC?"] = 0.5  # answers 1.0, but after the driver gave up
        with pytest.raises(InstrumentError, match=r"MEAS:VOLT:DC\?"):
            await meter.measure_volts_dc()
        del twin.delays["MEAS:VOLT:DC?"]
        # The late 1.0 is still on its way: the next reading must be its own (2.0).
        assert (await meter.measure_volts_dc()).value == 2.0
        assert twin.received[-3:] == ["MEAS:VOLT:DC?", "*IDN?", "MEAS:VOLT:DC?"]
    finally:
        await dmm.aclose()


async def test_nothing_listening_is_an_error_not_a_mismatch(served: list[ScpiTwin]) -> None:
    twin = DmmTwin()
    resource = await serve(served, twin)
    await twin.aclose()
    served.clear()
    with pytest.raises(InstrumentError, match=r"does not answer \*IDN\?: .*refused") as caught:
        await open_driver(scpi_drivers.DMM, resource=resource, idn="SIM-DMM", timeout=0.5)
    assert not isinstance(caught.value, InstrumentMismatch)


# ---- the parser alone -------------------------------------------------------------------


@given(st.text(max_size=80))
def test_parse_number_gives_a_finite_in_range_value_or_refuses(text: str) -> None:
    try:
        value = parse_number(text, "x")
    except InstrumentError:
        return
    assert math.isfinite(value) and abs(value) < OVERFLOW
    assert text.strip()[:1] in set("+-.0123456789")


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30))
def test_parse_number_reads_what_an_instrument_prints(value: float) -> None:
    assert parse_number(f"{value:+.9E}", "x") == pytest.approx(value, rel=1e-8, abs=1e-300)
