"""A slot log replayed as a simulated DUT (ate.sim.replay): a panel on a simulated fixture
writes its slot logs; a new fixture whose slots replay them gives the same verdicts and
measurements per step, on real ptys and through the real station wiring. An edited log
changes the verdict; a request the log never saw is ERROR."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.config.errors import InputError
from ate.config.loader import load_fixture, load_sequence
from ate.model.results import SlotResult
from ate.model.verdict import Verdict
from ate.records.slot_log import SlotLogWriter
from ate.scheduler.panel import PanelResult
from ate.sim.fixture_check import check_simulation
from ate.sim.fixture_twin import SimFixture, SimFixtureThread
from ate.sim.replay import ReplayBoard, load_slot_log
from tests.ate_cli import run_ate
from tests.scheduler.conftest import S3_SEQUENCE, Bench, write_fixture, write_sequence


@dataclass
class Run:
    result: PanelResult
    logs: dict[int, Path]  # slot -> its slot log
    boards: dict[int, Any]  # slot -> the simulated unit that answered


async def run_panel(
    folder: Path,
    sim_slots: dict[int, dict[str, Any]],
    *,
    seed: int = 7,
    sequence: Path = S3_SEQUENCE,
) -> Run:
    """One panel of a 2-slot simulated fixture written to `folder`, its logs kept."""
    fixture = load_fixture(write_fixture(_made(folder), slots=2, sim_slots=sim_slots, seed=seed))
    check_simulation(fixture)  # what `ate run` checks first
    writer = SlotLogWriter(folder / "out")
    with SimFixtureThread(fixture.model, fixture.base_dir) as twin:
        result = await Bench(fixture, twin).run(load_sequence(sequence), subscribers=(writer,))
        boards = {n: twin.board(n) for n in (1, 2)}
    writer.close()
    logs = {n: next((folder / "out" / "logs").glob(f"*-slot{n}.jsonl")) for n in (1, 2)}
    return Run(result, logs, boards)


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def story(slot: SlotResult) -> list[tuple[Any, ...]]:
    """What must replay exactly: every step's verdict and reason, every measurement."""
    return [
        (
            s.name,
            s.verdict,
            s.reason,
            s.retries,
            [(m.name, m.value, m.unit, m.verdict, m.attempt) for m in s.measurements],
        )
        for s in slot.steps
    ]


def replay_slots(folder: Path, logs: dict[int, Path]) -> dict[int, dict[str, Any]]:
    """Each slot log copied beside the new fixture, named relative to it."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = {}
    for slot, log in logs.items():
        shutil.copy(log, folder / f"field-slot{slot}.jsonl")
        plan[slot] = {"replay": f"field-slot{slot}.jsonl"}
    return plan


FAULTS = {
    "stuck_gpio": ({"stuck_gpio": [{"pin": 5, "level": 0}]}, Verdict.FAIL, "gpio_loopback"),
    "nan_rssi": ({"hostile": {"mode": "nan"}}, Verdict.ERROR, "rf_golden"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_field_failure_replays_to_the_same_verdicts_and_measurements(
    tmp_path: Path, fault: str
) -> None:
    faults, verdict, failing_step = FAULTS[fault]
    field = await run_panel(tmp_path / "field", {2: {"faults": faults}})
    good, bad = field.result.slots[1], field.result.slots[2]
    assert good.verdict is Verdict.PASS, good.reason
    assert bad.verdict is verdict and bad.reason.startswith(f"{failing_step}: "), bad.reason

    # Another seed: a simulated unit of this fixture would be another unit altogether.
    lab = tmp_path / "lab"
    replayed = await run_panel(lab, replay_slots(lab, field.logs), seed=99)
    for n in (1, 2):
        board = replayed.boards[n]
        assert isinstance(board, ReplayBoard) and board.replayed > 0
        original, again = field.result.slots[n], replayed.result.slots[n]
        assert again.verdict is original.verdict, again.reason
        assert again.reason == original.reason
        assert again.unit == original.unit  # the logged MAC, chip and firmware
        assert story(again) == story(original)
    # The replay writes a slot log of its own that replays again (a regression case
    # stays one when it is re-recorded).
    assert load_slot_log(replayed.logs[2]).mac == load_slot_log(field.logs[2]).mac


def _edit(log: Path, out: Path, change: Any) -> None:
    records = [json.loads(line) for line in log.read_text().splitlines()]
    edited = [change(r) for r in records]
    out.write_text("".join(json.dumps(r) + "\n" for r in edited))


async def test_an_edited_reading_changes_the_verdict(tmp_path: Path) -> None:
    field = await run_panel(tmp_path / "field", {})
    assert field.result.slots[1].verdict is Verdict.PASS
    lab = tmp_path / "lab"
    plan = replay_slots(lab, field.logs)
    edited_rf = edited_rail = 0

    def weaker_radio(record: dict[str, Any]) -> dict[str, Any]:
        nonlocal edited_rf
        line = record.get("line", "")
        if record["event"] == "dut_rx" and record.get("command") == "rf.golden":
            fields = dict(f.split("=", 1) for f in line.split()[2:])
            fields["rssi"] = "-80.0"  # the field unit's weak radio, wanted -65 .. -35 dBm
            record["line"] = " ".join(line.split()[:2] + [f"{k}={v}" for k, v in fields.items()])
            edited_rf += 1
        return record

    def low_rail(record: dict[str, Any]) -> dict[str, Any]:
        nonlocal edited_rail
        if record["event"] == "measurement" and record["name"] == "rail.3v3":
            record["value"] = 3.05  # wanted 3.2 .. 3.4 V
            edited_rail += 1
        return record

    _edit(field.logs[1], lab / "field-slot1.jsonl", weaker_radio)
    _edit(field.logs[2], lab / "field-slot2.jsonl", low_rail)
    assert edited_rf == 1 and edited_rail == 1
    replayed = await run_panel(lab, plan, seed=99)
    radio, rail = replayed.result.slots[1], replayed.result.slots[2]
    assert radio.verdict is Verdict.FAIL
    assert radio.reason == "rf_golden: rf.ch6.rssi = -80 dBm, wanted -65 .. -35 dBm"
    assert rail.verdict is Verdict.FAIL
    assert rail.reason == "rail_3v3: rail.3v3 = 3.05 V, wanted 3.2 .. 3.4 V"
    # Nothing else moved: every other step is as the field run had it.
    for n, changed in ((1, "rf_golden"), (2, "rail_3v3")):
        before = [s for s in story(field.result.slots[n]) if s[0] != changed]
        after = [s for s in story(replayed.result.slots[n]) if s[0] != changed]
        assert after == before


async def test_a_request_the_log_never_saw_is_error(tmp_path: Path) -> None:
    field = await run_panel(tmp_path / "field", {})
    assert field.result.slots[1].verdict is Verdict.PASS

    def ask_more(doc: dict[str, Any]) -> None:
        for step in doc["steps"]:
            if step["name"] == "vref_divider":
                step["samples"] = 32  # the same command, other arguments
        doc["steps"].append(
            {"name": "strap_pin", "type": "gpio_read", "pin": 9, "expect": 1, "pull": "up"}
        )

    sequence = write_sequence(tmp_path, ask_more)
    lab = tmp_path / "lab"
    replayed = await run_panel(lab, replay_slots(lab, {1: field.logs[1]}), sequence=sequence)
    unit = replayed.result.slots[1]
    assert unit.verdict is Verdict.ERROR
    steps = {s.name: s for s in unit.steps}
    for name, asked in (("vref_divider", "adc.read 3 samples=32"), ("strap_pin", "gpio.mode 9")):
        assert steps[name].verdict is Verdict.ERROR
        assert steps[name].reason.startswith(
            f"{asked.split()[0]}: EUNKNOWN replay: field-slot1.jsonl never saw {asked}"
        ), steps[name].reason
    # what the log did see still answers as it did
    assert all(
        s.verdict is Verdict.PASS
        for n, s in steps.items()
        if n not in {"vref_divider", "strap_pin"}
    )


# ---- bad input: one line naming the file and line, exit 2 ----------------------------


def _fixture_with_replay(tmp_path: Path, replay: str) -> Path:
    return write_fixture(tmp_path, slots=2, sim_slots={2: {"replay": replay}})


def test_a_missing_slot_log_is_named_at_its_fixture_line(tmp_path: Path) -> None:
    path = _fixture_with_replay(tmp_path, "logs/gone-slot2.jsonl")
    done = run_ate("validate", path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    doc_line = next(
        i for i, text in enumerate(path.read_text().splitlines(), 1) if "gone-slot2" in text
    )
    assert line.startswith(f"{path}:{doc_line}:")
    assert "simulation.slots.2.replay 'logs/gone-slot2.jsonl'" in line and "no such file" in line


@pytest.mark.parametrize(
    ("content", "line_no", "says"),
    [
        ('{"event": "slot_start", "slot": 2}\nnot json\n', 2, "not a JSON line"),
        ('{"panel": "p", "event": "panel_start"}\n', 1, "a record without its slot"),
        (
            '{"event": "slot_start", "slot": 2}\n{"event": "unit", "slot": 2}\n',
            None,
            "no test-protocol",
        ),
        (yaml.safe_dump({"fixture": "x"}), 1, "not a JSON line"),
    ],
    ids=["garbage-line", "panel-log", "no-exchange", "yaml"],
)
def test_a_file_that_is_not_a_slot_log_is_named_at_its_line(
    tmp_path: Path, content: str, line_no: int | None, says: str
) -> None:
    (tmp_path / "field.jsonl").write_text(content)
    path = _fixture_with_replay(tmp_path, "field.jsonl")
    where = f"{tmp_path / 'field.jsonl'}" + (f":{line_no}:" if line_no else ":")
    with pytest.raises(InputError) as caught:
        SimFixture(load_fixture(path).model, tmp_path)  # the simulator refuses it too
    assert str(caught.value).startswith(where) and says in str(caught.value)
    done = run_ate("run", "-f", path, "-s", S3_SEQUENCE, "--out", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert where in line and says in line


def test_a_replayed_slot_takes_no_faults(tmp_path: Path) -> None:
    path = write_fixture(
        tmp_path, slots=2, sim_slots={2: {"replay": "x.jsonl", "faults": {"no_ready": True}}}
    )
    done = run_ate("validate", path)
    assert done.returncode == 2
    assert "a replayed unit answers from its log" in done.stderr


async def test_a_hostile_endless_line_stays_out_of_the_log_and_replays(tmp_path: Path) -> None:
    def short(doc: dict[str, Any]) -> None:
        doc["steps"] = [s for s in doc["steps"] if s["name"] in ("boot_pin", "rf_golden")]
        doc["defaults"]["retries"] = 0

    sequence = write_sequence(tmp_path, short)
    hostile = {"hostile": {"mode": "endless_line", "after": 2}}  # 1 MiB, no newline
    field = await run_panel(tmp_path / "field", {2: {"faults": hostile}}, sequence=sequence)
    bad = field.result.slots[2]
    assert bad.verdict is Verdict.ERROR and "no reply to" in bad.reason, bad.reason
    log = field.logs[2].read_bytes()
    assert len(log) < 64 * 1024  # 1 MiB a request went by; not into the log
    assert max(len(line) for line in log.splitlines()) < 4096
    lab = tmp_path / "lab"
    replayed = await run_panel(lab, replay_slots(lab, field.logs), sequence=sequence)
    for n in (1, 2):
        assert story(replayed.result.slots[n]) == story(field.result.slots[n])
