"""`ate run` with a profile that registers units with AWS IoT: the panel's locked unit is
put on the station's queue (<state>/cloud.db), never sent from the panel itself; the
queue's worker then registers it with moto's IoT in server mode on 127.0.0.1, under the
profile's thing-name template."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import boto3
import pytest
import yaml
from prov_bench import write_fixture

from ate.cli.main import main
from ate.provision.cloud_iot import AwsIotRegistrar
from ate.provision.cloud_queue import QUEUE_FILE, CloudQueue, CloudWorker, Registration
from ate.sim.devkit import DevKit, make_dev_profile
from tests.moto_iot import free_port, start_moto

REPO = Path(__file__).resolve().parents[2]


def test_a_locked_unit_is_queued_then_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIALIFETEST0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "life-test-secret")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    kit = make_dev_profile(tmp_path / "kit", cloud="none")
    doc = yaml.safe_load(kit.profile.read_text())
    doc["cloud"].update(
        registration="aws_iot", region="eu-west-1", endpoint_url=url, policy="ate-device"
    )
    kit.profile.write_text(yaml.safe_dump(doc, sort_keys=False))
    seq = yaml.safe_load((REPO / "sequences" / "minimal.yaml").read_text())
    seq["test_firmware"]["path"] = str(
        (REPO / "sequences" / seq["test_firmware"]["path"]).resolve()
    )
    sequence = tmp_path / "seq.yaml"
    sequence.write_text(yaml.safe_dump(seq))
    state = tmp_path / "st"
    args = ["run", "-f", str(write_fixture(tmp_path, slots=1)), "-s", str(sequence)]
    args += ["--profile", str(kit.profile), "--state", str(state), "--out", str(tmp_path / "out")]
    assert main([*args, "--no-live"]) == 0, capsys.readouterr().err  # the cloud is down

    queue = CloudQueue(state / QUEUE_FILE)
    [queued] = queue.registrations()
    assert queued.status == "pending" and queued.attempts == 0
    assert queued.thing_name == f"{doc['product']['name']}-{queued.serial}"

    server = start_moto(port)
    try:
        iot = boto3.client("iot", region_name="eu-west-1", endpoint_url=url)
        iot.create_policy(policyName="ate-device", policyDocument='{"Statement": []}')
        worker = CloudWorker(
            queue, AwsIotRegistrar(region="eu-west-1", policy="ate-device", endpoint_url=url)
        )

        async def drain() -> list[Registration]:
            task = asyncio.create_task(worker.run())
            try:
                return await asyncio.wait_for(
                    worker.wait_for(lambda regs: all(r.status == "registered" for r in regs)), 20
                )
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        [done] = asyncio.run(drain())
        principals = iot.list_thing_principals(thingName=done.thing_name)["principals"]
        assert principals == [f"arn:aws:iot:eu-west-1:123456789012:cert/{done.certificate_id}"]
    finally:
        queue.close()
        server.stop()


@pytest.mark.parametrize(
    ("cloud", "wanted"),
    [
        (
            {"registration": "aws_iot", "policy": "p"},
            "cloud.registration 'aws_iot' needs cloud.region",
        ),
        ({"registration": "aws_iot", "region": "eu-west-1"}, "needs cloud.policy"),
        ({"registration": "azure"}, "registration"),
        (
            {
                "registration": "aws_iot",
                "region": "eu-west-1",
                "policy": "p",
                "endpoint_url": "ftp://x",
            },
            "endpoint_url",
        ),
    ],
)
def test_a_bad_cloud_section_is_one_line_exit_2(
    dev_kit: DevKit, cloud: dict[str, str], wanted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load(dev_kit.profile.read_text())
    doc["cloud"].update(cloud)
    path = dev_kit.profile.with_name(
        f"cloud-{hashlib.sha256(str(cloud).encode()).hexdigest()[:12]}.yaml"
    )
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["validate", str(path)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"{path}:") and wanted in line
