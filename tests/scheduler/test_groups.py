"""Setup, steps and cleanup on simulated units: cleanup always runs (after a FAIL, an
ERROR, a timeout, retries used up, a setup failure, and on clamp open within the abort
deadline), a cleanup failure never hides the main verdict; `needs` and `when` skip with
the reason, and a condition that cannot be evaluated is the step's ERROR."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.config.loader import load_sequence
from ate.model.events import Event, StepStarted
from ate.model.results import SlotResult
from ate.model.verdict import Verdict
from tests.scheduler.conftest import S3_SEQUENCE, write_sequence

STEPS = {
    s["name"]: s for s in yaml.safe_load(S3_SEQUENCE.read_text())["steps"]
}  # the example sequence's steps, to build from


def step(base: str, **changes: Any) -> dict[str, Any]:
    return {**STEPS[base], **changes}


def sequence(tmp: Path, **groups: Any) -> Path:
    def mutate(doc: dict[str, Any]) -> None:
        doc["test_firmware"]["flash"] = "never"
        doc["on_failure"], doc["schedule"] = "stop", "in_order"
        doc.update(groups)

    return write_sequence(tmp, mutate)


def image() -> str:
    doc = yaml.safe_load(S3_SEQUENCE.read_text())
    return str((S3_SEQUENCE.parent / doc["test_firmware"]["path"]).resolve())


def by_name(result: SlotResult) -> dict[str, tuple[Verdict, str]]:
    return {s.name: (s.verdict, s.reason) for s in result.steps}


FAILING_RAIL = step("rail_3v3", limits={"low": 4.0, "high": 4.5, "unit": "V"})
CLEAN = step("boot_pin", name="radio_off")


async def test_cleanup_runs_after_a_fail_and_the_fail_stays(
    tmp_path: Path, make_bench: Callable[..., Any]
) -> None:
    seq = sequence(
        tmp_path,
        setup=[step("boot_pin", name="warm_up")],
        steps=[FAILING_RAIL, step("vref_divider")],
        cleanup=[CLEAN],
    )
    bench = make_bench(slots=1, preflash=image())
    result = (await bench.run(seq)).slots[1]
    steps = by_name(result)
    assert result.verdict is Verdict.FAIL and result.reason.startswith("rail_3v3:")
    assert steps["warm_up"][0] is Verdict.PASS
    assert steps["vref_divider"][0] is Verdict.SKIPPED  # stopped at the first failure
    assert steps["radio_off"][0] is Verdict.PASS  # cleanup ran all the same
    assert [s.name for s in result.steps] == ["warm_up", "rail_3v3", "vref_divider", "radio_off"]


async def test_cleanup_after_a_timeout_and_after_retries(
    tmp_path: Path, make_bench: Callable[..., Any]
) -> None:
    slow = step("current_idle", timeout=0.05, settle=0.5)  # cannot finish in time
    retried = step("rail_3v3", name="rail_retried", retries=2, limits=FAILING_RAIL["limits"])
    seq = sequence(tmp_path, steps=[slow, retried], on_failure="continue", cleanup=[CLEAN])
    bench = make_bench(slots=1, preflash=image())
    result = (await bench.run(seq)).slots[1]
    steps = by_name(result)
    assert steps["current_idle"] == (Verdict.ERROR, "timed out after 0.05 s")
    assert steps["rail_retried"][0] is Verdict.FAIL
    assert next(s for s in result.steps if s.name == "rail_retried").retries == 2
    assert steps["radio_off"][0] is Verdict.PASS
    assert result.verdict is Verdict.ERROR and result.reason.startswith("current_idle:")


async def test_a_failed_setup_skips_the_main_steps_not_cleanup(
    tmp_path: Path, make_bench: Callable[..., Any]
) -> None:
    seq = sequence(tmp_path, setup=[FAILING_RAIL], steps=[step("vref_divider")], cleanup=[CLEAN])
    bench = make_bench(slots=1, preflash=image())
    result = (await bench.run(seq)).slots[1]
    steps = by_name(result)
    assert result.verdict is Verdict.FAIL
    assert steps["vref_divider"] == (Verdict.SKIPPED, "setup failed")
    assert steps["radio_off"][0] is Verdict.PASS


async def test_a_cleanup_failure_is_error_after_a_pass_and_hides_no_fail(
    tmp_path: Path, make_bench: Callable[..., Any]
) -> None:
    bad_cleanup = step("rail_3v3", name="rail_after", limits=FAILING_RAIL["limits"])
    passing = sequence(tmp_path, steps=[step("vref_divider")], cleanup=[bad_cleanup])
    failing = sequence(tmp_path, steps=[FAILING_RAIL], cleanup=[bad_cleanup])
    bench = make_bench(slots=1, preflash=image())
    one = (await bench.run(passing)).slots[1]
    assert one.verdict is Verdict.ERROR and one.reason.startswith("cleanup rail_after:")
    two = (await bench.run(failing)).slots[1]
    assert two.verdict is Verdict.FAIL and two.reason.startswith("rail_3v3:")
    assert by_name(two)["rail_after"][0] is Verdict.FAIL  # recorded all the same


async def test_clamp_open_runs_the_safe_cleanup_within_the_deadline(
    tmp_path: Path, make_bench: Callable[..., Any]
) -> None:
    long = step("current_idle", settle=3.0, timeout=10)
    unsafe = step("vref_divider", name="unsafe_cleanup", on_abort=False)
    seq = sequence(tmp_path, steps=[long], cleanup=[unsafe, CLEAN], abort_deadline=1.5)
    bench = make_bench(slots=1, preflash=image())
    loop = asyncio.get_running_loop()
    started = asyncio.Event()

    def on_event(e: Event) -> None:
        if isinstance(e, StepStarted) and e.name == "current_idle":
            loop.call_soon_threadsafe(started.set)

    run = asyncio.create_task(bench.run(seq, subscribers=(on_event,)))
    await asyncio.wait_for(started.wait(), 30)
    bench.twin.set_clamp(False)
    result = (await asyncio.wait_for(run, 30)).slots[1]
    steps = by_name(result)
    assert result.verdict is Verdict.ABORTED
    assert steps["radio_off"][0] is Verdict.PASS  # safe: ran on the way out
    assert steps["unsafe_cleanup"][0] is Verdict.SKIPPED  # on_abort: false
    assert steps["current_idle"][0] is Verdict.SKIPPED  # cut, never judged


async def test_needs_and_when_skip_with_the_reason(
    tmp_path: Path, make_bench: Callable[..., Any]
) -> None:
    seq = sequence(
        tmp_path,
        on_failure="continue",
        steps=[
            FAILING_RAIL,
            step("vref_divider", needs=["rail_3v3"]),
            step("boot_pin", when='unit.chip == "ESP32-C3"'),
            step("gpio_loopback", when='passed("boot_pin") or value("rail_3v3", "rail.3v3") > 3.0'),
            step("imu_present", when='value("vref_divider", "adc3") > 1'),  # never measured
        ],
    )
    bench = make_bench(slots=1, preflash=image())
    result = (await bench.run(seq)).slots[1]
    steps = by_name(result)
    assert steps["vref_divider"] == (Verdict.SKIPPED, "needs rail_3v3, which is FAIL")
    assert steps["boot_pin"] == (Verdict.SKIPPED, "when 'unit.chip == \"ESP32-C3\"' is false")
    assert steps["gpio_loopback"][0] is Verdict.PASS  # the rail read 3.3 V, above 3.0
    assert steps["imu_present"] == (
        Verdict.ERROR,
        "vref_divider measured no 'adc3' for this unit",
    )
    assert result.verdict is Verdict.ERROR


@pytest.mark.parametrize(
    ("groups", "words", "where"),
    [
        (
            {"steps": [step("vref_divider", needs=["rail_3v3"]), step("rail_3v3")]},
            "needs 'rail_3v3': that step comes later",
            ("steps", 0),
        ),
        (
            {"steps": [step("vref_divider", needs=["vref_divider"])]},
            "needs 'vref_divider': that step comes later (or is this one)",
            ("steps", 0),
        ),
        (
            {"steps": [step("vref_divider", needs=["nothing"])]},
            "needs 'nothing': no step has that name",
            ("steps", 0),
        ),
        (
            {"steps": [step("vref_divider", when="unit.chip ==")]},
            "cannot read 'unit.chip =='",
            ("steps", 0),
        ),
        (
            {"steps": [step("vref_divider", when="__import__('os')")]},
            "unknown function",
            ("steps", 0),
        ),
        (
            {
                "steps": [
                    step("vref_divider", when='passed("later")'),
                    step("rail_3v3", name="later"),
                ]
            },
            "when reads step 'later', which comes later",
            ("steps", 0),
        ),
        (
            {
                "steps": [
                    step("rail_3v3"),
                    step("vref_divider", when='value("rail_3v3", "v") > 3'),
                ]
            },
            "when reads value('rail_3v3', 'v'), but step 'rail_3v3' measures 'rail.3v3'",
            ("steps", 1),
        ),
        (
            {"setup": [step("vref_divider")], "steps": [step("vref_divider")]},
            "step name 'vref_divider' is used twice (also setup step 1)",
            ("steps", 0),
        ),
    ],
    ids=["later", "itself", "unknown", "syntax", "call", "when-later", "measurement", "twice"],
)
def test_bad_references_are_one_line(
    tmp_path: Path, groups: dict[str, Any], words: str, where: tuple[str, int]
) -> None:
    from ate.config.errors import InputError

    path = sequence(tmp_path, **groups)
    with pytest.raises(InputError) as err:
        load_sequence(path)
    assert words in err.value.message, err.value.message
    assert err.value.line is not None and err.value.line > 1
    assert "\n" not in str(err.value)


async def test_a_panel_step_runs_once_and_four_slots_share_it(
    tmp_path: Path, make_bench: Callable[..., Any]
) -> None:
    warm_up = step("rail_3v3", name="golden_warm_up", scope="panel")
    seq = sequence(tmp_path, setup=[warm_up], steps=[step("vref_divider")])
    bench = make_bench(slots=4, preflash=image())
    started: list[int] = []

    def on_event(e: Event) -> None:
        if isinstance(e, StepStarted) and e.name == "golden_warm_up":
            started.append(e.slot)

    result = await bench.run(seq, subscribers=(on_event,))
    assert len(started) == 1  # once for the panel
    owner = started[0]
    for slot, r in result.slots.items():
        verdict, reason = by_name(r)["golden_warm_up"]
        assert verdict is Verdict.PASS and r.verdict is Verdict.PASS
        assert reason == ("" if slot == owner else f"ran in slot {owner}")
    # Failed once, failed for every slot: its limits cannot be met.
    failing = sequence(
        tmp_path, setup=[{**warm_up, "limits": FAILING_RAIL["limits"]}], steps=[CLEAN]
    )
    again = await bench.run(failing)
    assert {r.verdict for r in again.slots.values()} == {Verdict.FAIL}
    assert all(by_name(r)["radio_off"][0] is Verdict.SKIPPED for r in again.slots.values())


def test_a_panel_step_has_no_per_unit_condition(tmp_path: Path) -> None:
    from ate.config.errors import InputError

    path = sequence(
        tmp_path, steps=[step("rail_3v3"), step("vref_divider", scope="panel", needs=["rail_3v3"])]
    )
    with pytest.raises(InputError, match="a panel step runs once for every slot"):
        load_sequence(path)
