"""`ate station` with a profile that registers units with AWS IoT: a provisioned panel's
locked unit is queued after the panel and the station's own worker registers it with
moto's IoT (server mode on 127.0.0.1) while the station keeps running."""

from __future__ import annotations

import asyncio
from pathlib import Path

import boto3
import pytest
import yaml

from ate.sim.devkit import make_dev_profile
from ate.sim.fixture_twin import SimFixtureThread
from tests.moto_iot import free_port, start_moto
from tests.station.conftest import WAIT_S, running, wait_status
from tests.station.prov_station import station_files, twin_fixture


async def test_the_station_registers_its_locked_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIALIFETEST0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "life-test-secret")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    kit = make_dev_profile(tmp_path / "kit" / "devkit")
    doc = yaml.safe_load(kit.profile.read_text())
    doc["cloud"].update(registration="aws_iot", region="eu-west-1", endpoint_url=url, policy="p1")
    kit.profile.write_text(yaml.safe_dump(doc, sort_keys=False))
    fix = twin_fixture(tmp_path)
    server = start_moto(port)
    try:
        iot = boto3.client("iot", region_name="eu-west-1", endpoint_url=url)
        iot.create_policy(policyName="p1", policyDocument='{"Statement": []}')
        with SimFixtureThread(fix.model, fix.base_dir, transport="socket") as twin:
            path = station_files(tmp_path, twin, kit)
            monkeypatch.chdir(tmp_path)
            async with running(path) as station:
                await wait_status(station, lambda st: st.fixtures["hw1"].panels == 1)
                assert station._running is not None and station._running.cloud is not None
                worker = station._running.cloud
                async with asyncio.timeout(WAIT_S):
                    [reg] = await worker.wait_for(
                        lambda regs: len(regs) == 1 and regs[0].status == "registered"
                    )
        things = iot.list_things()["things"]
        assert [t["thingName"] for t in things] == [reg.thing_name]
        assert reg.thing_name == f"{doc['product']['name']}-{reg.serial}"
        principals = iot.list_thing_principals(thingName=reg.thing_name)["principals"]
        assert len(principals) == 1 and principals[0].endswith(reg.certificate_id or "-")
    finally:
        server.stop()
