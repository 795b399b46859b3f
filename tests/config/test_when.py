"""`when:` conditions: parsed by a whitelist over Python's own parser (never eval), so any
text either parses into a condition or is refused with what is allowed; a parsed
condition over any facts gives true or false, or says why it cannot (never another
exception, never a value that is not a truth)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.config.when import ConditionError, ConditionFailed, Facts, parse

FACTS = Facts(
    unit={"chip": "ESP32-S3", "flash_size": "8MB", "mac": "aa:bb:cc:dd:ee:ff"},
    verdicts={"rail": "PASS", "imu": "FAIL"},
    values={("rail", "v"): 3.3, ("imu", "id"): 0x68},
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('unit.flash_size == "8MB"', True),
        ('unit.chip in ("ESP32-C3", "ESP32-S3")', True),
        ('value("rail", "v") > 3.2 and not passed("imu")', True),
        ('verdict("imu") == "FAIL" or false', True),
        ('3.0 < value("rail", "v") < 3.2', False),
        ('-value("imu", "id") < 0', True),
        ("true", True),
    ],
)
def test_conditions_evaluate(text: str, expected: bool) -> None:
    assert parse(text)(FACTS) is expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("__import__('os').system('x')", "unknown function"),
        ("open('/etc/passwd')", "unknown function"),
        ("unit.__class__", "is not a unit fact"),
        ("(lambda: 1)()", "unknown function"),
        ("value(step, 'v') > 1", "with quoted names"),
        ("[x for x in 'ab']", "not allowed"),
        ("1 +", "cannot read"),
        ("unit.chip if true else 1", "not allowed"),
        ("1e999 > 1", "finite"),
    ],
)
def test_anything_else_is_refused(text: str, words: str) -> None:
    with pytest.raises(ConditionError, match=words):
        parse(text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('value("rail", "v") > "high"', "cannot compare"),
        ('unit.variant == "pro"', "unit.variant is not known"),
        ('passed("later")', "has not run"),
        ('value("rail", "v")', "not true or false"),
        ('not value("rail", "v")', "not true or false"),
    ],
)
def test_what_cannot_be_evaluated_says_why(text: str, words: str) -> None:
    with pytest.raises(ConditionFailed, match=words):
        parse(text)(FACTS)


@settings(max_examples=300, derandomize=True)
@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused(text: str) -> None:
    try:
        cond = parse(text)
    except ConditionError:
        return
    with contextlib.suppress(ConditionFailed):
        assert cond(FACTS) in (True, False)


_atoms = st.sampled_from(
    [
        "unit.chip",
        "unit.flash_size",
        'value("rail", "v")',
        'value("imu", "id")',
        'passed("rail")',
        'verdict("imu")',
        "1",
        "2.5",
        '"8MB"',
        "true",
        "false",
        "unit.variant",
    ]
)


_constants = st.sampled_from(["1", "2.5", '"8MB"', '"ESP32-S3"', '"PASS"'])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(_atoms)
    op = draw(st.sampled_from(["==", "!=", "<", ">=", "and", "or", "in"]))
    left, right = draw(expressions(depth - 1)), draw(expressions(depth - 1))
    if op == "in":  # a list holds only constants
        right = f"({draw(_constants)}, {draw(_constants)})"
    prefix = "not " if draw(st.booleans()) else ""
    return f"({prefix}({left} {op} {right}))"


@settings(max_examples=300, derandomize=True)
@given(expressions())
def test_grammar_expressions_give_a_truth_or_a_reason(text: str) -> None:
    cond = parse(text)
    try:
        assert cond(FACTS) in (True, False)
    except ConditionFailed as exc:
        assert str(exc)
