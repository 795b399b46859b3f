"""The golden check writes a calibration; a panel refuses RF steps on one that is
missing, expired, made with another golden board or for another fixture, or drifted."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.cli.main import main
from ate.rf import calibration
from ate.rf.calibration import Calibration
from ate.station.runner import RfRefused
from tests.rf.conftest import WIFI_TX, RfBench, rf_sequence


async def test_the_golden_check_writes_a_calibration(make_rf_bench: Any, tmp_path: Path) -> None:
    bench: RfBench = make_rf_bench(calibrated=False)
    cal = await bench.calibrate(rf_sequence(tmp_path))
    golden = bench.twin.sim.golden_board("golden")
    assert golden is not None
    assert (cal.fixture, cal.golden, cal.golden_mac) == ("rf4", "golden", golden.mac)
    assert cal.expires - cal.date == dt.timedelta(days=calibration.DEFAULT_VALID_DAYS)
    assert sorted(cal.path_loss_db) == [1, 2, 3, 4]
    for losses in cal.path_loss_db.values():
        assert set(losses) == {"wifi6", "ble37"}
        # the twin's 40 dB (+0.05 dB a channel), seen through each unit's +-1 dB PA spread
        assert all(37.0 < v < 45.0 for v in losses.values()), losses
    on_disk = calibration.load(bench.calibration_path)
    assert on_disk == cal
    assert not list(bench.calibration_path.parent.glob(".*.tmp"))  # written atomically


async def test_no_calibration_refuses_the_panel(make_rf_bench: Any, tmp_path: Path) -> None:
    bench: RfBench = make_rf_bench(calibrated=False)
    with pytest.raises(
        RfRefused,
        match=r"golden board 'golden': calibration .*/golden-cal.yaml: no such file; run ate "
        r"rf golden-check --fixture ",
    ):
        await bench.run(rf_sequence(tmp_path, [WIFI_TX]))


def _edit(bench: RfBench, **changes: Any) -> None:
    cal = calibration.load(bench.calibration_path)
    calibration.save(cal.model_copy(update=changes), bench.calibration_path)


REFUSED: list[tuple[dict[str, Any], str]] = [
    (
        {"expires": dt.datetime(2020, 1, 8, tzinfo=dt.UTC)},
        r"refused: it expired on 2020-01-08T00:00:00\+00:00",
    ),
    (
        {"golden_mac": "24:0a:c4:de:ad:00"},
        r"refused: it was made with golden board 24:0a:c4:de:ad:00, but .* is on the port",
    ),
    ({"fixture": "other-fixture"}, r"refused: it is for fixture 'other-fixture', not 'rf4'"),
]


@pytest.mark.parametrize(("change", "reason"), REFUSED, ids=["expired", "golden", "fixture"])
async def test_a_wrong_calibration_refuses_the_panel(
    make_rf_bench: Any, tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    bench: RfBench = make_rf_bench()
    _edit(bench, **change)
    with pytest.raises(RfRefused, match=reason):
        await bench.run(rf_sequence(tmp_path, [WIFI_TX]))


@pytest.mark.parametrize("loss", ["-3.0", "1.0e6", ".nan", ".inf", "'40 dB'"])
async def test_a_path_loss_no_shield_box_can_have_refuses_the_panel(
    make_rf_bench: Any, tmp_path: Path, loss: str
) -> None:
    """A hand-edited or corrupt calibration would shift every RSSI judged against it (a
    huge loss lifts a dead antenna into the limits): refused before any RF step, naming
    the file and line, never used."""
    bench: RfBench = make_rf_bench()
    path = bench.calibration_path
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("wifi6:"))
    lines[at] = lines[at].split(":")[0] + f": {loss}"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RfRefused, match=rf"golden-cal.yaml:{at + 1}:"):
        await bench.run(rf_sequence(tmp_path, [WIFI_TX]))


async def test_golden_check_writes_no_calibration_from_an_impossible_path_loss(
    make_rf_bench: Any, tmp_path: Path
) -> None:
    # A reference power given wrong by 200 dB makes every "loss" a gain: no slot passes.
    bench: RfBench = make_rf_bench(calibrated=False)
    result = await bench.golden_check(rf_sequence(tmp_path, [WIFI_TX]), reference_dbm=-180.0)
    assert result.calibration is None
    assert set(result.failed_slots) == {s.slot for s in bench.fixture.model.slots}
    assert all("is outside 0..150 dB" in why for why in result.failed_slots.values())


async def test_a_drifted_slot_is_named_and_refused_until_a_second_check_agrees(
    make_rf_bench: Any, tmp_path: Path, clean_calibration: Calibration
) -> None:
    # A cable in slot 3 went bad: 6 dB more loss than when the fixture was calibrated.
    bench: RfBench = make_rf_bench(rf={"slots": {3: 46.0}})
    seq = rf_sequence(tmp_path, [WIFI_TX])
    first = await bench.golden_check(seq, previous=clean_calibration)
    assert first.calibration is not None
    assert [(s, ch) for s, ch, _ in first.drift] == [(3, "ble37"), (3, "wifi6")]
    assert all(5.0 < d < 7.0 for _, _, d in first.drift)
    calibration.save(first.calibration, bench.calibration_path)
    with pytest.raises(RfRefused, match=r"drifted from the one before: slot 3 ble37 \+\d\.\d dB"):
        await bench.run(seq)
    second = await bench.golden_check(seq, previous=first.calibration)
    assert second.calibration is not None and second.drift == []
    calibration.save(second.calibration, bench.calibration_path)
    result = await bench.run(seq)
    assert result.slots[3].steps[0].measurements  # measured now, corrected by the new loss


async def test_a_board_not_in_role_golden_refuses_the_panel(
    make_rf_bench: Any, tmp_path: Path
) -> None:
    bench: RfBench = make_rf_bench()
    board = bench.twin.sim.golden_board("golden")
    assert board is not None
    board.role = "dut"  # a DUT's firmware on the golden board's port
    with pytest.raises(RfRefused, match=r"the board on its port says role=dut"):
        await bench.run(rf_sequence(tmp_path, [WIFI_TX]))


def test_golden_check_command_writes_and_reports_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.rf.conftest import image, rf_resources
    from tests.scheduler.conftest import write_fixture

    path = write_fixture(tmp_path, name="cli4", slots=2, resources=rf_resources(), preflash=image())
    seq = rf_sequence(tmp_path, [WIFI_TX])
    args = ["rf", "golden-check", "--fixture", str(path), "--sequence", str(seq.path)]
    assert main([*args, "--channels", "wifi6,ble37"]) == 0
    out = tmp_path / "golden-cal.yaml"
    assert "calibration written to" in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # not secret: readable by the line
    doc = yaml.safe_load(path.read_text())
    doc["simulation"]["rf"] = {"slots": {2: 50.0}}
    path.write_text(yaml.safe_dump(doc))
    assert main([*args, "--channels", "wifi6"]) == 1
    err = capsys.readouterr().err
    assert "drifted from the previous calibration: slot 2 wifi6 +" in err
    assert main([*args, "--channels", "wifi15"]) == 2
    assert "the esp32s3 has no wifi channel 15" in capsys.readouterr().err


def test_ate_run_exits_2_naming_the_missing_calibration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.rf.conftest import image, rf_resources
    from tests.scheduler.conftest import write_fixture

    path = write_fixture(
        tmp_path, name="nocal", slots=1, resources=rf_resources(), preflash=image()
    )
    seq = rf_sequence(tmp_path, [WIFI_TX])
    out = tmp_path / "out"
    assert main(["run", "-f", str(path), "-s", str(seq.path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "golden-cal.yaml: no such file; run ate rf golden-check --fixture" in err
