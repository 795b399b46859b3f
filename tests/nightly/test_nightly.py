"""`ate nightly`: the seeded fault matrix runs the station's own code on simulated
fixtures and holds every invariant; a regression (a sequence that lost its check) is a
false PASS it reports with the command that replays it; panels draw the same from the seed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ate.cli.main import main
from ate.config.loader import load_sequence
from ate.nightly.bench import NightlyBench, default_fixture
from ate.nightly.draw import PanelDraw, SlotDraw, draw_panel
from ate.nightly.faults import LIBRARY, PANEL_FAULTS, SLOT_FAULTS, Outcome
from ate.nightly.invariants import FALSE_PASS, TOUCHED, UNEXPECTED, check_audit, check_panel
from ate.nightly.report import NightlyResult, write_html
from ate.sim.devkit import DevKit, make_dev_profile

REPO = Path(__file__).resolve().parents[2]
SEQUENCE = REPO / "sequences" / "s3-devkit-functional.yaml"
BOARD = REPO / "fixtures" / "sim" / "board-s3-devkit.yaml"
# Seed 170's first three panels draw every family (board, transport, hostile, provision,
# power) and two panel faults (the line database away, the clamp opened mid-panel).
SEED = 170


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevKit]:
    yield make_dev_profile(tmp_path_factory.mktemp("nightly-kit") / "devkit")


def test_a_small_matrix_holds_every_invariant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draws = [draw_panel(SEED, i, 4) for i in range(3)]
    families = {s.fault.family for d in draws for s in d.slots}
    assert families == {"good", "board", "transport", "hostile", "provision", "power"}
    assert {d.panel_fault.name for d in draws if d.panel_fault} == {"line_db_away", "clamp_opened"}

    code = main(["nightly", "--panels", "3", "--seed", str(SEED), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "12 units" in out and "0 violations" in out
    suite = ET.parse(tmp_path / "nightly.xml").getroot()
    cases = suite.findall("testcase")
    assert len(cases) == 12 + 6  # one per unit, one per invariant
    assert suite.get("failures") == "0" and not suite.findall(".//failure")
    for d in draws:  # every unit's fault and class is a test case
        for s in d.slots:
            assert any(f"panel{d.index}.slot{s.slot}.{s.fault.name} -> " in c.get("name", "")
                       for c in cases)  # fmt: skip
    page = (tmp_path / "nightly.html").read_text()
    assert "no violation" in page and "Injected fault by verdict" in page
    # Every unit left a record, on disk and in the line database.
    assert len(list((tmp_path / "out" / "records").glob("*.json"))) >= 12


def test_a_sequence_that_lost_its_check_is_a_false_pass(tmp_path: Path, kit: DevKit) -> None:
    """The regression nightly exists for: someone drops the GPIO loopback step. The unit
    with a stuck pin now PASSes (and is locked): a false PASS, reported with its replay."""
    doc = yaml.safe_load(SEQUENCE.read_text())
    doc["steps"] = [s for s in doc["steps"] if s["name"] != "gpio_loopback"]
    doc["test_firmware"]["path"] = str((SEQUENCE.parent / doc["test_firmware"]["path"]).resolve())
    path = tmp_path / "lost-check.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def two_slot_bench(where: str, sequence: Path) -> NightlyBench:
        fixture = default_fixture(BOARD, slots=2)
        return NightlyBench(
            tmp_path / where, load_sequence(sequence), kit.profile, fixture, BOARD.parent,
            lot="regression",
        )  # fmt: skip

    bench = two_slot_bench("work", path)
    draw = PanelDraw(5, 9, 4242, (SlotDraw(1, LIBRARY["stuck_gpio"]), SlotDraw(2, LIBRARY["good"])))
    run = bench.run(draw)
    violations = check_panel(run)
    assert {(v.invariant, v.slot) for v in violations} == {
        (FALSE_PASS, 1),
        (TOUCHED, 1),  # provisioned and locked although it should have failed its test
        (UNEXPECTED, 1),
    }
    stuck = run.outcomes[0]
    assert stuck.outcome is Outcome.PASS and stuck.locked and stuck.efuses_changed
    assert run.outcomes[1].outcome is Outcome.PASS
    assert check_audit(bench.db_url, "nightly") == []

    # The same panel with the sequence intact: the stuck pin FAILs, nothing is violated.
    intact = two_slot_bench("work2", SEQUENCE)
    run2 = intact.run(draw)
    assert check_panel(run2) == []
    assert run2.outcomes[0].outcome is Outcome.FAIL and not run2.outcomes[0].efuses_changed

    report = NightlyResult(5, [run], violations)
    write_html(report, tmp_path / "page.html")
    assert "ate nightly --seed 5 --panel 9" in (tmp_path / "page.html").read_text()


def test_panels_draw_the_same_from_the_seed_alone() -> None:
    first = [draw_panel(11, i, 4) for i in range(40)]
    assert [draw_panel(11, i, 4) for i in reversed(range(40))][::-1] == first
    assert draw_panel(11, 7, 4) == first[7]  # a replay of panel 7 draws what the run drew
    assert draw_panel(12, 7, 4) != first[7]
    drawn = {s.fault.name for d in first for s in d.slots}
    assert "good" in drawn and len(drawn) > len(SLOT_FAULTS) // 2
    for d in first:
        for s in d.slots:
            if s.fault.cut:
                assert s.nth is not None and s.fault.cut.first <= s.nth <= s.fault.cut.last
    assert {d.panel_fault.name for d in first if d.panel_fault} <= {p.name for p in PANEL_FAULTS}


def test_every_fault_declares_what_it_must_produce() -> None:
    for fault in SLOT_FAULTS:
        assert fault.expect, fault.name
        if fault.is_defect:  # a defect may never be allowed to pass
            assert Outcome.PASS not in fault.expect and Outcome.RECOVERED not in fault.expect
        if fault.cut:
            assert fault.expect == (Outcome.RECOVERED,) and not fault.is_defect


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["nightly", "--fixture", str(REPO / "fixtures" / "usb-dtr-rts.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "usb-dtr-rts.yaml" in err[0] and "simulation" in err[0]
    assert main(["nightly", "--panels", "0"]) == 2


def test_a_fixture_of_ones_own_keeps_the_files_it_names(tmp_path: Path, kit: DevKit) -> None:
    """`--fixture F`: the panel's fixture file is written elsewhere, so the board and
    preflash image F names relative to itself must still be found."""
    doc = default_fixture(Path("sim") / BOARD.name, slots=1)
    doc["simulation"]["preflash"] = "../firmware/test_fw/sim/ate_test_fw-esp32s3.bin"
    bench = NightlyBench(tmp_path, load_sequence(SEQUENCE), None, doc, REPO / "fixtures", lot="own")
    fixture = bench.write_fixture(PanelDraw(1, 3, 99, (SlotDraw(1, LIBRARY["good"]),)))
    sim = fixture.model.simulation
    assert sim is not None and sim.preflash is not None
    assert (fixture.base_dir / sim.preflash).resolve() == (
        REPO / "firmware" / "test_fw" / "sim" / "ate_test_fw-esp32s3.bin"
    )
    assert (fixture.base_dir / sim.board).resolve() == BOARD
