"""A provisioning station on a one-slot simulated unit, as the station tests run it: the
twin's fixture (its unit kept in a state folder) and a station file whose fixture speaks
to that twin over sockets, provisioning with a development kit."""

from __future__ import annotations

from pathlib import Path

import yaml

from ate.config.loader import LoadedFixture, load_fixture
from ate.sim.devkit import DevKit
from ate.sim.fixture_twin import SimFixtureThread
from tests.scheduler.conftest import REPO


def twin_fixture(tmp: Path) -> LoadedFixture:
    """One simulated S3 unit whose flash and eFuses persist in `tmp`/units."""
    doc = {
        "fixture": "twin",
        "controller": {"driver": "sim"},
        "slots": [{"slot": 1, "port": "sim", "power": 1, "current_sense": 1}],
        "resources": {"dmm": {"kind": "dmm", "capacity": 1}},
        "simulation": {
            "board": str(REPO / "fixtures" / "sim" / "board-s3-devkit.yaml"),
            "seed": 5,
            "state_dir": "units",
        },
    }
    (tmp / "twin.yaml").write_text(yaml.safe_dump(doc))
    return load_fixture(tmp / "twin.yaml")


def station_files(tmp: Path, twin: SimFixtureThread, kit: DevKit) -> Path:
    seq = yaml.safe_load((REPO / "sequences" / "minimal.yaml").read_text())
    seq["test_firmware"]["path"] = str(
        (REPO / "sequences" / seq["test_firmware"]["path"]).resolve()
    )
    (tmp / "seq.yaml").write_text(yaml.safe_dump(seq, sort_keys=False))
    hw = {
        "fixture": "hw1",
        "controller": {"driver": "line", "port": twin.controller_endpoint},
        "slots": [{"slot": 1, "port": twin.endpoints[1], "power": 1, "current_sense": 1}],
        "resources": {"dmm": {"kind": "dmm", "capacity": 1}},
    }
    (tmp / "hw1.yaml").write_text(yaml.safe_dump(hw, sort_keys=False))
    st = {
        "station": "burn1",
        "fixtures": [{"file": "hw1.yaml"}],
        "sequence": "seq.yaml",
        "profile": str(kit.profile),
        "state": "state",
        "outputs": "out",
        "debounce": 0,
        "min_free": 0,
        "lot": "lot1",
    }
    path = tmp / "station.yaml"
    path.write_text(yaml.safe_dump(st, sort_keys=False))
    return path
