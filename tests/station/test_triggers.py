"""What starts a panel: the controller's start button, the operator (manual); and the
station file checked by `ate validate` and described by `ate schema station`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ate.cli.validate_cmd import schema
from tests.station.conftest import running, wait_status, write_station

REPO = Path(__file__).resolve().parents[2]


async def test_button_and_manual_triggers(tmp_path: Path) -> None:
    path = write_station(
        tmp_path,
        [("fb", {"slots": 1, "trigger": "button"}), ("fm", {"slots": 1, "trigger": "manual"})],
    )
    async with running(path) as station:
        await wait_status(
            station, lambda st: all(f.state == "waiting" for f in st.fixtures.values())
        )
        # The clamps are closed, yet nothing starts without the button or the operator.
        assert station.status.fixtures["fb"].panels == 0
        station.twins["fb"].press_button()
        await wait_status(station, lambda st: st.fixtures["fb"].panels == 1)
        assert station.status.fixtures["fm"].panels == 0
        assert not station.request_start("fb")  # not a manual fixture
        assert station.request_start("fm")
        await wait_status(station, lambda st: st.fixtures["fm"].panels == 1)
        station.twins["fb"].press_button()
        await wait_status(station, lambda st: st.fixtures["fb"].panels == 2)


def test_validate_and_schema(tmp_path: Path) -> None:
    path = write_station(tmp_path, [("fx1", {"slots": 1})])
    ok = subprocess.run(
        [sys.executable, "-m", "ate.cli.main", "validate", str(path)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"OK {path} (station st1, 1 fixture")
    path.write_text(path.read_text().replace("fx1.yaml", "fx9.yaml"))
    bad = subprocess.run(
        [sys.executable, "-m", "ate.cli.main", "validate", str(path)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert bad.returncode == 2
    line = bad.stderr.strip()
    assert line.startswith(f"{path}:3:") and "fixture file 'fx9.yaml' not found" in line
    s = schema("station")
    assert s["title"] == "ate station"
    assert set(s["properties"]["fixtures"]["items"]["$ref"].split("/")[-1:]) == {"StationFixture"}
    trig = s["$defs"]["StationFixture"]["properties"]["trigger"]
    assert trig["enum"] == ["clamp", "button", "manual"]
    # A duration string or seconds; the 0..5 s bound is enforced when the file loads.
    assert "0 to 5 s" in s["properties"]["debounce"]["description"]


def test_shipped_sim_station_file_loads() -> None:
    from ate.config.loader import load_station

    st = load_station(REPO / "fixtures" / "sim-station.yaml")
    assert [f.model.controller.driver for f in st.fixtures] == ["sim"]
    assert st.triggers == ("clamp",) and st.profile is None
    assert 0 < st.model.debounce <= 5 and st.model.min_free_bytes == 200_000_000
