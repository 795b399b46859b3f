"""The `cfx` MES driver on the real RabbitMQ: check-ins answered by a test MES (allow,
refuse with a reason, never answer: not tested), and the CFX messages a panel run through
one running daemon publishes, read by a real AMQP 1.0 receiver."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.config.station import StationMes
from ate.mes.cfx import VALIDATED, CfxGate, _admission
from ate.mes.gate import UnitFacts
from ate.model.verdict import Verdict
from tests.line.cfx_peers import URL, CfxListener, MesPeer, unique
from tests.station.conftest import running, wait_status, write_station

FAULTY = {"slots": 2, "sim_slots": {2: {"faults": {"stuck_gpio": [{"pin": 5, "level": 0}]}}}}


def _mes(requests: str, handle: str, **kw: Any) -> StationMes:
    return StationMes(driver="cfx", url=URL, requests=requests, handle=handle, **kw)


async def test_check_in_allowed_refused_and_unanswered() -> None:
    requests = f"/queue/{unique('cfx.test.requests')}"

    def policy(doc: dict[str, Any]) -> tuple[str, str]:
        unit = doc["MessageBody"]["PrimaryIdentifier"]
        return {
            "aa:00": ("allow", "OK"),
            "aa:01": ("refuse", "unit is on hold (NCR 4711)"),
        }.get(unit, ("silent", ""))

    with MesPeer(requests, policy) as mes:
        gate = CfxGate(_mes(requests, unique("ate.t"), timeout=1.0), "t")
        try:
            allowed = await gate.check_in(UnitFacts("aa:00", "t"))
            refused = await gate.check_in(UnitFacts("aa:01", "t"))
            unanswered = await gate.check_in(UnitFacts("aa:02", "t"))
        finally:
            await gate.aclose()
    assert allowed.allowed and allowed.reason == "OK"
    assert not refused.allowed and refused.verdict == Verdict.ERROR
    assert "unit is on hold (NCR 4711)" in refused.reason
    assert not unanswered.allowed and unanswered.verdict == Verdict.ERROR
    assert "did not answer" in unanswered.reason and "not tested" in unanswered.reason
    # the requests were CFX envelopes with a reply address and a correlation
    assert len(mes.requests) == 3
    msg, doc = mes.requests[0]
    assert doc["MessageName"] == "CFX.InformationSystem.UnitValidation.ValidateUnitsRequest"
    assert set(doc) == {
        "MessageName",
        "Version",
        "TimeStamp",
        "UniqueID",
        "Source",
        "Target",
        "RequestID",
        "MessageBody",
    }
    assert msg.reply_to == f"/queue/{gate.handle}.replies"
    assert msg.correlation_id == doc["RequestID"]
    assert doc["MessageBody"]["Units"][0]["UnitIdentifier"] == "aa:00"


async def test_no_broker_means_not_tested() -> None:
    """The broker away: the check-in times out and says so; never a silent pass."""
    cfg = StationMes(driver="cfx", url="amqp://guest:guest@127.0.0.1:1", timeout=0.5)
    gate = CfxGate(cfg, "t")
    try:
        a = await gate.check_in(UnitFacts("aa:00", "t"))
    finally:
        await gate.aclose()
    assert not a.allowed and a.verdict == Verdict.ERROR
    assert "not connected" in a.reason and "guest:guest" not in a.reason


def _flashing_station(tmp: Path, fixtures: list[tuple[str, dict[str, Any]]], **kw: Any) -> Path:
    """A station whose slots go through the ROM phase (where a unit checks in): the test
    firmware is preflashed, so `if_changed` finds it by MD5 and writes nothing."""
    path = write_station(tmp, fixtures, **kw)
    doc = yaml.safe_load(path.read_text())
    seq = tmp / doc["sequence"]
    s = yaml.safe_load(seq.read_text())
    s["test_firmware"]["flash"] = "if_changed"
    seq.write_text(yaml.safe_dump(s, sort_keys=False))
    return path


async def test_a_panel_through_the_daemon_publishes_cfx(tmp_path: Path) -> None:
    requests = f"/queue/{unique('cfx.test.requests')}"
    key = unique("cfx")
    address = f"/exchange/amq.topic/{key}"
    handle = unique("ate.st1")
    mes_cfg = {
        "driver": "cfx",
        "url": URL,
        "address": address,
        "requests": requests,
        "handle": handle,
        "target": "test.mes",
    }
    path = _flashing_station(tmp_path, [("fx1", dict(FAULTY))], mes=mes_cfg)
    with CfxListener(address) as cfx, MesPeer(requests, lambda d: ("allow", "OK")) as mes:
        async with running(path) as station:
            await wait_status(station, lambda st: st.fixtures["fx1"].panels >= 1)
            done = await asyncio.to_thread(cfx.wait_for, "CFX.Production.WorkCompleted")
    fs = station.status.fixtures["fx1"]
    assert fs.last_verdicts == {1: Verdict.PASS, 2: Verdict.FAIL}
    macs = {d["MessageBody"]["PrimaryIdentifier"] for _, d in mes.requests}
    assert len(macs) == 2  # each unit checked in before it was tested
    names = cfx.names()
    first = names.index("CFX.Production.WorkStarted")
    assert names[first:].count("CFX.Production.UnitsArrived") == 2
    assert names.index("CFX.Production.TestAndInspection.UnitsTested") < names.index(
        "CFX.Production.WorkCompleted"
    )
    docs = {d["MessageName"]: d for _, d in cfx.messages}
    for d in docs.values():
        assert d["Source"] == handle and d["Target"] == "test.mes" and d["Version"]
    arrived = {
        u["UnitIdentifier"]
        for _, d in cfx.messages
        if d["MessageName"] == "CFX.Production.UnitsArrived"
        for u in d["MessageBody"]["Units"]
    }
    assert arrived == macs
    tested = docs["CFX.Production.TestAndInspection.UnitsTested"]["MessageBody"]
    results = {u["UnitPositionNumber"]: u for u in tested["TestedUnits"]}
    assert results[1]["OverallResult"] == "Passed" and results[2]["OverallResult"] == "Failed"
    assert {u["UnitIdentifier"] for u in results.values()} == macs
    assert any(
        t["TestName"] == "gpio_loopback" and t["Result"] == "Failed" for t in results[2]["Tests"]
    )
    body = done[0]["MessageBody"]
    assert body["Result"] == "Failed" and body["UnitCount"] == 2
    assert body["TransactionID"] == tested["TransactionID"]
    assert (
        docs["CFX.Production.WorkStarted"]["MessageBody"]["TransactionID"] == body["TransactionID"]
    )


async def test_a_refused_unit_is_not_tested(tmp_path: Path) -> None:
    requests = f"/queue/{unique('cfx.test.requests')}"
    mes_cfg = {"driver": "cfx", "url": URL, "requests": requests, "handle": unique("ate.st1")}
    path = _flashing_station(tmp_path, [("fx1", {"slots": 2})], mes=mes_cfg)
    refuse = ("refuse", "wrong route: unit belongs to line 3")
    with MesPeer(requests, lambda d: refuse):
        async with running(path) as station:
            await wait_status(station, lambda st: st.fixtures["fx1"].panels >= 1)
    fs = station.status.fixtures["fx1"]
    assert fs.last_verdicts == {1: Verdict.ERROR, 2: Verdict.ERROR}
    assert all("wrong route: unit belongs to line 3" in r for r in fs.last_reasons.values())


async def test_broker_away_units_untested_through_the_daemon(tmp_path: Path) -> None:
    """An MES that cannot be reached: every unit ERROR with the reason, the station runs
    on (the panel ends, the fixture waits for the next)."""
    mes_cfg = {"driver": "cfx", "url": "amqp://guest:guest@127.0.0.1:1", "timeout": "300ms"}
    path = _flashing_station(tmp_path, [("fx1", {"slots": 2})], mes=mes_cfg)
    async with running(path) as station:
        await wait_status(station, lambda st: st.fixtures["fx1"].panels >= 1)
        fs = station.status.fixtures["fx1"]
        assert fs.online
    assert fs.last_verdicts == {1: Verdict.ERROR, 2: Verdict.ERROR}
    for reason in fs.last_reasons.values():
        assert "MES did not answer the check-in" in reason and "not connected" in reason
        assert "guest:guest" not in reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


def _shaped(value: Any) -> st.SearchStrategy[Any]:
    """Answers that look like a ValidateUnitsResponse, with any part replaced."""
    return st.fixed_dictionaries(
        {"MessageName": st.just(VALIDATED) | json_values, "MessageBody": value}
    )


@settings(max_examples=300, derandomize=True)
@given(
    json_values
    | _shaped(json_values)
    | _shaped(st.fixed_dictionaries({"Result": json_values, "PrimaryResult": json_values}))
)
def test_a_hostile_mes_answer_never_admits_a_unit(reply: Any) -> None:
    """Whatever an MES (or something posing as one) answers, only the exact shape of a
    successful validation lets a unit be tested, and nothing raises."""
    admission = _admission(reply)
    exact = (
        isinstance(reply, dict)
        and reply.get("MessageName") == VALIDATED
        and isinstance(reply.get("MessageBody"), dict)
        and isinstance(reply["MessageBody"].get("Result"), dict)
        and isinstance(reply["MessageBody"].get("PrimaryResult"), dict)
        and reply["MessageBody"]["Result"].get("Result") == "Success"
        and reply["MessageBody"]["PrimaryResult"].get("Result") == "Passed"
    )
    assert admission.allowed == exact
    if not exact:
        assert admission.verdict == Verdict.ERROR and admission.reason


def test_only_success_and_passed_admit() -> None:
    ok = {"Result": {"Result": "Success"}, "PrimaryResult": {"Result": "Passed", "Message": "go"}}
    assert _admission({"MessageName": VALIDATED, "MessageBody": ok}).allowed
    for body in (
        {**ok, "Result": "Success"},  # a string where CFX has an object
        {**ok, "PrimaryResult": ["Passed"]},
        {"Result": {"Result": "Success"}, "PrimaryResult": {"Result": "Failed"}},
    ):
        assert not _admission({"MessageName": VALIDATED, "MessageBody": body}).allowed
