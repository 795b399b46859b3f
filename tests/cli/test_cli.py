"""The `ate` command as a user runs it: exit codes, one-line errors, outputs on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.scheduler.conftest import REPO, S3_SEQUENCE, write_fixture, write_sequence

# Each `ate` run here keeps its station state (ledger, spool, records database) in a
# folder of its own, not in the repository.
_STATE = tempfile.mkdtemp(prefix="ate-cli-test-state-")


def ate(
    *args: str | Path, cwd: Path = REPO, timeout: float = 120, columns: int | None = None
) -> subprocess.CompletedProcess[str]:
    width = {} if columns is None else {"COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "ate.cli.main", *map(str, args)],
        env={**os.environ, "ATE_STATE": tempfile.mkdtemp(dir=_STATE), **width},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _records(out: Path) -> dict[int, dict[str, Any]]:
    return {
        (r := json.loads(p.read_text()))["slot"]: r
        for p in sorted((out / "records").glob("*.json"))
    }


def test_demo_shows_three_pass_one_fail_and_writes_everything(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = ate("demo", "--out", out, "--no-live", columns=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("PASS") == 3 and proc.stdout.count("FAIL") == 1
    assert "as designed" in proc.stdout
    # The hint commands survive a narrow terminal whole, one line each, ready to copy.
    db = f"sqlite://{out / 'state' / 'ate.db'}"
    hints = [line.split(":", 1)[1].strip() for line in proc.stdout.splitlines() if "  ate " in line]
    assert len(hints) == 2, proc.stdout
    assert hints[0].startswith("ate unit ") and hints[0].endswith(f" --db {db}")
    assert hints[1] == f"ate report --db {db} -o {out / 'report.html'}"
    records = _records(out)
    assert sorted(records) == [1, 2, 3, 4]
    assert [records[s]["verdict"] for s in (1, 2, 3, 4)] == ["PASS", "PASS", "FAIL", "PASS"]
    bad = records[3]
    assert bad["reason"] == "gpio_loopback: gpio4->gpio5@1 = 0, wanted == 1"
    for key in ("station", "operator", "fixture", "slot", "panel_id", "duration_s"):
        assert key in bad
    assert bad["unit"]["mac"].count(":") == 5
    assert len(bad["sequence"]["sha256"]) == 64
    assert len(bad["sequence"]["test_firmware"]["sha256"]) == 64
    step = bad["steps"][0]
    assert {"name", "type", "verdict", "retries", "duration_s", "measurements"} <= step.keys()
    assert step["measurements"][0].keys() >= {"name", "value", "unit", "limits", "verdict"}
    (junit,) = (out / "junit").glob("*.xml")
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [int(s.get("failures", 0)) > 0 for s in suites] == [False, False, True, False]
    logs = sorted((out / "logs").glob("*-slot*.jsonl"))
    assert len(logs) == 4
    lines = [json.loads(line) for line in logs[2].read_text().splitlines()]
    assert any(e["event"] == "dut" and "ESP-ROM" in e["line"] for e in lines)
    assert lines[-1]["event"] == "slot_end" and lines[-1]["verdict"] == "FAIL"


def test_run_exit_codes(tmp_path: Path) -> None:
    healthy = write_fixture(tmp_path, name="healthy")
    out = tmp_path / "ok"
    proc = ate("run", "-f", healthy, "-s", S3_SEQUENCE, "--out", out, "--no-live")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    faulty = write_fixture(
        tmp_path, name="faulty", sim_slots={4: {"faults": {"missing_i2c": [0x44]}}}
    )
    proc = ate("run", "-f", faulty, "-s", S3_SEQUENCE, "--out", tmp_path / "bad", "--no-live")
    assert proc.returncode == 1
    assert _records(tmp_path / "bad")[4]["verdict"] == "FAIL"


def test_run_without_out_makes_and_prints_a_new_folder(tmp_path: Path) -> None:
    fixture = write_fixture(tmp_path, slots=1)
    proc = ate("run", "-f", fixture, "-s", S3_SEQUENCE, "--no-live", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (made,) = (tmp_path / "ate-out").iterdir()
    assert str(made.relative_to(tmp_path)) in proc.stdout
    assert len(list((made / "records").glob("*.json"))) == 1


def test_two_fixtures_in_one_run(tmp_path: Path) -> None:
    a = write_fixture(tmp_path, name="fa", slots=2, seed=1)
    b = write_fixture(tmp_path, name="fb", slots=2, seed=2)
    out = tmp_path / "two"
    proc = ate("run", "-f", a, "-f", b, "-s", S3_SEQUENCE, "--out", out, "--no-live")
    assert proc.returncode == 0, proc.stderr
    fixtures = [json.loads(p.read_text())["fixture"] for p in (out / "records").glob("*.json")]
    assert sorted(fixtures) == ["fa", "fa", "fb", "fb"]


def _one_clean_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    line = _one_clean_line(ate("run", "-f", tmp_path / "nope.yaml", "-s", S3_SEQUENCE))
    assert "nope.yaml" in line and "no such file" in line

    seq = write_sequence(tmp_path, lambda d: d["steps"][0].update(type="gpio_lop"))
    line = _one_clean_line(ate("run", "-f", write_fixture(tmp_path), "-s", seq))
    assert f"{seq}:" in line and "gpio_lop" in line and "allowed" in line


def test_a_resource_the_fixture_lacks_is_bad_input(tmp_path: Path) -> None:
    fixture = write_fixture(tmp_path, resources={"golden": {"kind": "golden_board"}})
    line = _one_clean_line(ate("run", "-f", fixture, "-s", S3_SEQUENCE))
    assert "dmm" in line and str(S3_SEQUENCE.name) in line


def test_validate_and_schema(tmp_path: Path) -> None:
    proc = ate("validate", S3_SEQUENCE, REPO / "fixtures" / "sim-quad.yaml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("OK") == 3  # two files, and the pair fits together
    proc = ate("schema", "sequence")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert "gpio_loopback" in json.dumps(schema)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"fixture": "x", "slots": []}))
    _one_clean_line(ate("validate", bad))


@pytest.mark.parametrize("text", ["PRIVATE KEY", "factory_secret", "password"])
def test_no_secret_words_in_a_runs_outputs(tmp_path: Path, text: str) -> None:
    out = tmp_path / "scan"
    ate("demo", "--out", out, "--no-live")
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)  # the databases are scanned too
    # The one secret a run keeps: the station's audit signing key, private to the
    # station's user in its state folder; everything else is scanned.
    key = out / "state" / "audit-signing.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.parent.stat().st_mode & 0o777 == 0o700
    files.remove(key)
    for path in files:
        assert text.encode() not in path.read_bytes(), path
