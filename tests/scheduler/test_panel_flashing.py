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
