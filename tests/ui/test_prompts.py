"""The `prompt` step: asked through the operator page's broker on a real panel (simulated
fixture), answered, timed out, refused; its model's rules."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import segno
from pydantic import ValidationError

from ate.config.errors import InputError
from ate.config.loader import load_sequence
from ate.config.sequence import PromptStep
from ate.model.verdict import Verdict
from ate.ui.view import StationView
from tests.scheduler.conftest import FAST, Bench, write_sequence

LED = {"name": "led_green", "type": "prompt", "text": "Is the status LED green?"}


def with_prompt(tmp: Path, **step: Any) -> Path:
    def mutate(doc: dict[str, Any]) -> None:
        keep = [s for s in doc["steps"] if s["name"] == "gpio_loopback"]
        doc["steps"] = [{**LED, **step}, *keep]

    return write_sequence(tmp, mutate)


async def answer_all(view: StationView, answers: dict[int, str]) -> None:
    """Answer each slot's question once it is asked (the page's part, without a browser)."""
    left = dict(answers)
    seen = -1
    while left:
        seen = await view.changed(seen)
        for slot, text in list(left.items()):
            for pid, p in list(view.prompts.pending.items()):
                if p.question.slot == slot:
                    assert view.prompts.answer(pid, text)
                    del left[slot]


async def test_answers_are_recorded_and_judged(make_bench: Any, tmp_path: Path) -> None:
    bench: Bench = make_bench(slots=3)
    seq = load_sequence(
        with_prompt(
            tmp_path, kind="choice", choices=["green", "red"], expect="green", timeout="1500ms"
        )
    )
    view = StationView("st1")
    options = dataclasses.replace(FAST, prompts=view.prompts)
    answering = asyncio.create_task(answer_all(view, {1: "green", 2: "red"}))
    run = asyncio.create_task(bench.run(seq, options=dataclasses.replace(options)))
    await answering
    # Slot 3 is never answered: withdrawn at its timeout, not left on the page.
    assert not any(p.question.slot in (1, 2) for p in view.prompts.pending.values())
    result = await run
    assert view.prompts.pending == {}
    ones = {s: r.steps[0] for s, r in result.slots.items()}
    assert ones[1].verdict is Verdict.PASS
    assert [(m.name, m.value) for m in ones[1].measurements] == [("answer", "green")]
    assert ones[2].verdict is Verdict.FAIL and ones[2].reason == "answer = red, wanted green"
    assert ones[3].verdict is Verdict.ERROR and "timed out" in ones[3].reason


async def test_number_answers_and_garbage(make_bench: Any, tmp_path: Path) -> None:
    bench: Bench = make_bench(slots=3)
    path = with_prompt(
        tmp_path,
        kind="number",
        text="Current on the meter?",
        limits={"low": 40, "high": 60, "unit": "mA"},
    )
    view = StationView("st1")
    options = dataclasses.replace(FAST, prompts=view.prompts)
    answering = asyncio.create_task(answer_all(view, {1: "42.5", 2: "nan", 3: "75"}))
    result = await bench.run(load_sequence(path), options=options)
    await answering
    step = {s: r.steps[0] for s, r in result.slots.items()}
    assert step[1].verdict is Verdict.PASS and step[1].measurements[0].value == 42.5
    assert step[1].measurements[0].unit == "mA"
    assert step[2].verdict is Verdict.ERROR and "'nan', not a finite number" in step[2].reason
    assert step[3].verdict is Verdict.FAIL and "75 mA, wanted 40 .. 60 mA" in step[3].reason


async def test_without_a_page_the_prompt_is_an_error(make_bench: Any, tmp_path: Path) -> None:
    bench: Bench = make_bench(slots=1)
    result = await bench.run(load_sequence(with_prompt(tmp_path)))
    first = result.slots[1].steps[0]
    assert first.verdict is Verdict.ERROR and "no operator page" in first.reason


def test_an_answer_to_nothing_is_refused() -> None:
    view = StationView("st1")
    assert view.prompts.answer("no-such-id", "yes") is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "choice", "choices": ["a"]}, "at least two choices"),
        ({"kind": "choice", "choices": ["a", "b"], "expect": "c"}, "not one of the choices"),
        ({"kind": "confirm", "expect": "maybe"}, "expects yes or no"),
        ({"kind": "number"}, "needs limits"),
        ({"choices": ["a", "b"]}, "choices are for kind choice"),
        ({"limits": {"low": 1}}, "limits are for kind number"),
    ],
)
def test_prompt_model_refuses_what_cannot_be_asked(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PromptStep.model_validate({**LED, **fields})


def test_a_prompt_waits_a_minute_and_asks_once_by_default() -> None:
    step = PromptStep.model_validate(LED)
    assert (step.timeout, step.retries) == (60.0, 0)


def test_a_missing_prompt_image_is_refused_at_load(tmp_path: Path) -> None:
    path = with_prompt(tmp_path, image="pictures/led.png")
    with pytest.raises(InputError) as err:
        load_sequence(path)
    text = str(err.value)
    assert text.startswith(f"{path}:") and re.match(rf"{re.escape(str(path))}:\d+:\d+: ", text)
    assert "image 'pictures/led.png' of step 'led_green': allowed is an existing" in text


def test_a_prompt_image_is_resolved_next_to_the_sequence(tmp_path: Path) -> None:
    (tmp_path / "pictures").mkdir()
    segno.make_qr("LED green").save(str(tmp_path / "pictures" / "led.png"))
    seq = load_sequence(with_prompt(tmp_path, image="pictures/led.png"))
    step = seq.model.steps[0]
    assert isinstance(step, PromptStep)
    assert step.image == str((tmp_path / "pictures" / "led.png").resolve())
