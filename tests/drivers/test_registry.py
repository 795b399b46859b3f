"""Fixture controller drivers by name: an unknown name lists the registered ones, a
driver's options are checked against its settings at their line, and a driver that
needs a port says so; all as one line with exit 2 from `ate validate`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.drivers import registry
from tests.ate_cli import run_ate

REPO = Path(__file__).resolve().parents[2]


def validate(path: Path, *extra_path: Path) -> subprocess.CompletedProcess[str]:
    return run_ate("validate", path, extra_path=extra_path)


def fixture(tmp: Path, controller: dict[str, Any]) -> Path:
    doc = {
        "fixture": "f1",
        "controller": controller,
        "slots": [{"slot": 1, "port": "rfc2217://127.0.0.1:4001", "power": 1, "current_sense": 1}],
    }
    path = tmp / "f1.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_built_in_drivers_are_registered() -> None:
    assert {"sim", "line", "dtr_rts", "gpiod"} <= set(registry.names())
    assert registry.get("dtr_rts").settings is not None


@pytest.mark.parametrize(
    ("controller", "words"),
    [
        ({"driver": "teleport"}, "controller driver 'teleport' is not registered; registered: "),
        ({"driver": "line"}, "controller driver 'line' (a controller MCU"),
        ({"driver": "dtr_rts", "options": {"reset_s": 5}}, "reset_s"),
        ({"driver": "dtr_rts", "options": {"colour": "red"}}, "unknown field 'colour'"),
        (
            {"driver": "gpiod", "options": {"slots": {1: {"power": 1, "en": 2, "io0": 3}}}},
            "controller.options: missing required field 'clamp'",
        ),
    ],
    ids=["unknown", "no-port", "range", "unknown-option", "missing"],
)
def test_driver_mistakes_are_one_line(
    tmp_path: Path, controller: dict[str, Any], words: str
) -> None:
    done = validate(fixture(tmp_path, controller))
    assert done.returncode == 2, done.stdout
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and words in line, line
    assert line.startswith(f"{tmp_path / 'f1.yaml'}:")
    if controller["driver"] == "teleport":
        assert all(name in line for name in ("dtr_rts", "gpiod", "line", "sim"))


def test_a_good_dtr_rts_fixture_validates(tmp_path: Path) -> None:
    done = validate(fixture(tmp_path, {"driver": "dtr_rts", "options": {"reset_s": 0.2}}))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", ["usb-dtr-rts.yaml", "pi-gpiod.yaml"])
def test_the_example_fixtures_validate(name: str) -> None:
    done = validate(REPO / "fixtures" / name)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OK {REPO / 'fixtures' / name}"), done.stdout


def test_the_fixture_schema_still_describes_the_driver() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "ate.cli.main", "schema", "fixture"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "dtr_rts" in done.stdout and "gpiod" in done.stdout


def test_a_package_registers_its_own_driver(tmp_path: Path) -> None:
    # A line's driver package, installed the way pip leaves one (a dist-info with its
    # entry points) on the path: one good driver, one whose module is missing.
    site = tmp_path / "site"
    info = site / "line_drivers-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: line-drivers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[ate.fixture_drivers]\nbench_psu = line_drivers:DRIVER\nbroken = no_such_module:DRIVER\n"
    )
    (site / "line_drivers.py").write_text(
        "from ate.drivers.registry import Driver\n"
        "async def _open(ctx):\n    raise NotImplementedError\n"
        "DRIVER = Driver('bench_psu', 'a bench supply per slot', _open)\n"
    )
    assert validate(fixture(tmp_path, {"driver": "bench_psu"}), site).returncode == 0
    done = validate(fixture(tmp_path, {"driver": "teleport"}), site)
    assert done.returncode == 2 and "bench_psu" in done.stderr, done.stderr
    done = validate(fixture(tmp_path, {"driver": "broken"}), site)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert "'broken' is registered but cannot be loaded: No module named 'no_such_module'" in line
