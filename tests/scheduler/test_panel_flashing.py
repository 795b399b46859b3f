"""The ROM-loader phase in a real panel: real esptool flashes the test firmware into four
simulated units in parallel over their ptys, each boots it, and the steps run."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from ate.config.loader import load_sequence
from ate.model.events import DutLog, Event, FlashProgress, SlotPhase
from ate.model.verdict import Verdict
from tests.scheduler.conftest import S3_SEQUENCE, Bench, write_sequence

IMAGE = load_sequence(S3_SEQUENCE).firmware_path.read_bytes()


def _actions(result: Any) -> dict[int, str]:
    return {s: r.extra["rom"]["test_firmware"]["action"] for s, r in result.slots.items()}


async def test_four_units_flashed_in_parallel_then_tested(make_bench: Any) -> None:
    bench: Bench = make_bench()
    progress: dict[int, list[FlashProgress]] = {}
    flash_phase: dict[int, list[float]] = {}  # when each slot entered and left "flash"

    def watch(event: Event) -> None:
        if isinstance(event, FlashProgress):
            progress.setdefault(event.slot, []).append(event)
        elif isinstance(event, SlotPhase) and (
            event.phase == "flash" or len(flash_phase.get(event.slot, ())) == 1
        ):
            flash_phase.setdefault(event.slot, []).append(time.monotonic())

    result = await bench.run(subscribers=(watch,))
    assert {r.verdict for r in result.slots.values()} == {Verdict.PASS}
    assert set(_actions(result).values()) == {"written and verified by MD5"}
    for slot, r in result.slots.items():
        rom = r.extra["rom"]
        assert rom["chip"] == "esp32s3" and rom["mac"] == r.unit.mac  # type: ignore[union-attr]
        assert rom["test_firmware"]["sha256"] == hashlib.sha256(IMAGE).hexdigest()
        flash = bench.twin.sim.server(slot).rom.loader.flash  # type: ignore[union-attr]
        assert flash.read(0x10000, len(IMAGE)) == IMAGE
        assert progress[slot][-1].done == progress[slot][-1].total == len(IMAGE)
    # The four ROM phases (connect, stub, write, verify) ran at the same time.
    assert max(t[0] for t in flash_phase.values()) < min(t[1] for t in flash_phase.values())
    esptool_lines = [e for e in bench.events if isinstance(e, DutLog) and e.source == "esptool"]
    assert {e.slot for e in esptool_lines} == {1, 2, 3, 4}
    for slot in (1, 2, 3, 4):  # each slot's esptool output names only its own port
        port = bench.twin.endpoints[slot]
        own = [e.line for e in esptool_lines if e.slot == slot and "/dev/pts/" in e.line]
        assert own and all(port in line for line in own)


async def test_second_panel_finds_the_image_in_place(make_bench: Any) -> None:
    bench: Bench = make_bench(slots=2)
    first = await bench.run()
    assert set(_actions(first).values()) == {"written and verified by MD5"}
    second = await bench.run()
    assert set(_actions(second).values()) == {"already present (MD5 matches)"}
    assert {r.verdict for r in second.slots.values()} == {Verdict.PASS}


async def test_a_unit_whose_image_rotted_is_rewritten(make_bench: Any) -> None:
    bench: Bench = make_bench(slots=2)
    await bench.run()
    flash = bench.twin.sim.server(2).rom.loader.flash  # type: ignore[union-attr]
    bench.twin.run(_erase_sector(flash, 0x18000))
    second = await bench.run()
    assert _actions(second) == {
        1: "already present (MD5 matches)",
        2: "written and verified by MD5",
    }
    assert second.slots[2].verdict is Verdict.PASS


async def _erase_sector(flash: Any, offset: int) -> None:
    flash.erase(offset, 0x1000)


async def test_flash_never_needs_units_that_come_with_the_firmware(
    make_bench: Any, tmp_path: Any
) -> None:
    def never(doc: dict[str, Any]) -> None:
        doc["test_firmware"]["flash"] = "never"

    seq = load_sequence(write_sequence(tmp_path, never))
    blank: Bench = make_bench(name="blank", slots=1)
    result = await blank.run(seq)
    assert result.slots[1].verdict is Verdict.ERROR
    assert "no READY" in result.slots[1].reason
    logged = [e.line for e in blank.events if isinstance(e, DutLog)]
    assert any("invalid magic byte (0xffffffff)" in line for line in logged)

    preflashed: Bench = make_bench(name="preflashed", slots=1, preflash=str(seq.firmware_path))
    result = await preflashed.run(seq)
    assert result.slots[1].verdict is Verdict.PASS
    assert "rom" not in result.slots[1].extra  # no ROM-loader phase at all


async def test_locked_units_fail_with_the_reason_and_others_carry_on(make_bench: Any) -> None:
    """A unit in Secure Download Mode and one with download mode disabled (a previous
    station's lock-down) each fail alone, with a reason an operator can act on."""
    bench: Bench = make_bench(
        sim_slots={
            2: {"efuses": {"ENABLE_SECURITY_DOWNLOAD": 1}},
            3: {"efuses": {"DIS_DOWNLOAD_MODE": 1}},
        }
    )
    result = await bench.run()
    assert result.slots[2].verdict is Verdict.ERROR
    assert "Secure Download Mode" in result.slots[2].reason
    assert result.slots[3].verdict is Verdict.ERROR
    assert result.slots[3].reason.startswith("flash: ")
    assert "download mode" in result.slots[3].reason.lower()
    for slot in (2, 3):
        flash = bench.twin.sim.server(slot).rom.loader.flash  # type: ignore[union-attr]
        assert flash.written_sectors == 0
    assert result.slots[1].verdict is result.slots[4].verdict is Verdict.PASS


async def test_an_image_that_does_not_fit_is_refused_before_writing(
    make_bench: Any, tmp_path: Any
) -> None:
    def at_the_end(doc: dict[str, Any]) -> None:
        doc["test_firmware"]["offset"] = 8 * 1024 * 1024 - 0x8000  # 32 KiB left

    bench: Bench = make_bench(slots=1)
    result = await bench.run(write_sequence(tmp_path, at_the_end))
    assert result.slots[1].verdict is Verdict.ERROR
    assert result.slots[1].reason.startswith("flash: ")
    assert "past the end of the 8192 KiB flash; nothing was written" in result.slots[1].reason
    flash = bench.twin.sim.server(1).rom.loader.flash  # type: ignore[union-attr]
    assert flash.written_sectors == 0


async def test_esp32c3_panel_uses_the_c3_profile(tmp_path: Any) -> None:
    """Chip specifics live in per-chip descriptions: the same flow flashes and tests C3s."""
    import shutil

    import yaml

    from ate.config.loader import load_fixture
    from ate.sim.fixture_twin import SimFixtureThread
    from tests.scheduler.conftest import REPO

    path = tmp_path / "c3.yaml"
    (tmp_path / "sim").mkdir()
    shutil.copy(REPO / "fixtures" / "sim" / "board-c3-devkit.yaml", tmp_path / "sim")
    path.write_text(
        yaml.safe_dump(
            {
                "fixture": "c3-duo",
                "controller": {"driver": "sim"},
                "slots": [
                    {"slot": n, "port": "sim", "power": n, "current_sense": n} for n in (1, 2)
                ],
                "resources": {"dmm": {"kind": "dmm"}, "golden": {"kind": "golden_board"}},
                "simulation": {"board": "sim/board-c3-devkit.yaml", "seed": 11},
            }
        )
    )
    fixture = load_fixture(path)
    with SimFixtureThread(fixture.model, fixture.base_dir) as twin:
        result = await Bench(fixture, twin).run(REPO / "sequences" / "c3-devkit-functional.yaml")
    for r in result.slots.values():
        assert r.verdict is Verdict.PASS, r.reason
        assert r.extra["rom"]["chip"] == "esp32c3"
        assert r.extra["rom"]["description"].startswith("ESP32-C3")
