"""`ate plan` reads a unit and burns nothing; the per-lot cloud outputs for JITP and bulk
registration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from prov_bench import write_fixture

from ate.cli.main import main
from ate.sim.devkit import make_dev_profile
from ate.sim.rom.chips import get_profile
from ate.sim.rom.efuses import EfuseBank


def test_plan_prints_every_step_to_burn_and_burns_nothing(
    tmp_path: Path, dev_kit: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = write_fixture(tmp_path, slots=1)
    code = main(
        ["plan", "--profile", str(dev_kit.profile), "--fixture", str(fixture), "--unit", "1"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "serial AS3-" in out and "to burn" in out
    for step in ("fe.key", "sb.digest0", "sb.en", "dl.secure"):
        assert step in out
    assert out.strip().endswith("nothing was burned (ate plan only reads)")
    bank = EfuseBank(get_profile("esp32s3"), path=tmp_path / "units" / "slot1" / "efuse.bin")
    for fuse in ("SECURE_BOOT_EN", "ENABLE_SECURITY_DOWNLOAD", "SPI_BOOT_CRYPT_CNT"):
        assert not bank.field(fuse), fuse
    assert not any(bank._block_words(3))  # BLOCK_USR_DATA still blank


def test_plan_for_a_slot_the_fixture_lacks_is_bad_input(
    tmp_path: Path, dev_kit: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = write_fixture(tmp_path, slots=1)
    code = main(
        ["plan", "--profile", str(dev_kit.profile), "--fixture", str(fixture), "--unit", "7"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no slot 7" in err and len(err.splitlines()) == 1


def test_jitp_outputs_the_ca_bundle_and_the_subject_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = make_dev_profile(tmp_path / "kit", cloud="jitp")
    fixture = write_fixture(tmp_path, slots=1)
    seq = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "sequences" / "minimal.yaml").read_text()
    )
    seq["test_firmware"]["path"] = str(
        (Path(__file__).resolve().parents[2] / "sequences" / seq["test_firmware"]["path"]).resolve()
    )
    sequence = tmp_path / "seq.yaml"
    sequence.write_text(yaml.safe_dump(seq))
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "-f",
            str(fixture),
            "-s",
            str(sequence),
            "--profile",
            str(kit.profile),
            "--state",
            str(tmp_path / "st"),
            "--out",
            str(out),
            "--lot",
            "L 7",
            "--no-live",
        ]
    )
    assert code == 0, capsys.readouterr().err
    lot = out / "cloud" / "L_7"
    bundle = (lot / "ca-bundle.pem").read_text()
    assert bundle.count("BEGIN CERTIFICATE") == 2  # issuing CA and root
    fields = json.loads((lot / "jitp-subject-fields.json").read_text())
    assert fields["subject"]["CommonName"] == "{product}-{serial}"
    assert fields["template_parameters"]["serial"] == "AWS::IoT::Certificate::SerialNumber"
    assert not (lot / "bulk-registration.ndjson").exists()
