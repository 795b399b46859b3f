"""Whatever a receiver reports, an RF step's verdict holds: an impossible count or RSSI
is ERROR and nothing in that reply is judged; a PASS needs every limit met on the
corrected value; a missing reading under a limit never passes."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from ate.config.sequence import WifiTxStep
from ate.drivers.dut import RxCount
from ate.model.events import Event
from ate.model.radio import RSSI_MAX_DBM, RSSI_MIN_DBM
from ate.model.verdict import Verdict, worst
from ate.sequence.context import StepContext, StepFailed
from ate.sequence.rf_steps import _judge

STEP = WifiTxStep.model_validate(
    {
        "name": "tx",
        "type": "wifi_tx",
        "channel": 6,
        "packets": 50,
        "rssi": {"low": 16, "high": 24, "unit": "dBm"},
        "freq_offset": {"low": -20, "high": 20, "unit": "ppm"},
        "per": {"high": 10, "unit": "%"},
    }
)

rssi = st.one_of(st.none(), st.floats(-200, 100, allow_nan=False), st.sampled_from([-120.0, 30.0]))
cfo = st.one_of(st.none(), st.floats(-100, 100, allow_nan=False), st.sampled_from([2e4, -1e5]))


def judged(count: RxCount, loss: float) -> tuple[Verdict, StepContext]:
    events: list[Event] = []
    ctx = StepContext("p", 1, None, None, events.append)
    ctx.begin("tx")
    try:
        _judge(ctx, STEP, "wifi_tx", count, loss)
    except StepFailed:
        return Verdict.FAIL, ctx
    return worst(*(m.verdict for m in ctx.measurements)), ctx


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 200), rssi, cfo, st.floats(0, 80, allow_nan=False))
def test_the_verdict_follows_the_reading(
    frames: int, rx: float | None, offset: float | None, loss: float
) -> None:
    # As the client passes them on (it refuses an rssi with no frame, a cfo with fewer
    # than 3: EPROTO): the fields the protocol gives for this many frames.
    rx = rx if frames >= 1 else None
    offset = offset if frames >= 3 else None
    verdict, ctx = judged(RxCount(frames, rx, offset), loss)
    impossible = (
        frames > STEP.packets
        or (rx is not None and not RSSI_MIN_DBM <= rx <= RSSI_MAX_DBM)
        or (rx is not None and round(rx + loss, 2) > 40.0)  # corrected beyond any RF power
        or (offset is not None and abs(offset) > 10_000)  # no crystal is that far off
    )
    if impossible:
        assert verdict is Verdict.ERROR
        assert len(ctx.measurements) == 1  # the impossible field alone, never judged
        return
    per = 100.0 * (STEP.packets - frames) / STEP.packets
    good = (
        per <= 10
        and rx is not None
        and 16 <= round(rx + loss, 2) <= 24
        and offset is not None
        and -20 <= offset <= 20
    )
    assert (verdict is Verdict.PASS) == good, (verdict, ctx.failure)
    if rx is not None:
        by_name = {m.name: m.value for m in ctx.measurements}
        assert math.isclose(float(by_name["rf.wifi_tx.ch6.rssi"]), rx + loss, abs_tol=0.006)
        assert by_name["rf.wifi_tx.ch6.rssi_raw"] == rx
