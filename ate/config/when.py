"""`when:` conditions of sequence steps: a small expression over earlier steps' results
and the unit's facts, parsed once when the sequence loads and evaluated per unit. Never
`eval`: the text is parsed by Python's own parser (`ast`, mode "eval") and only a fixed
set of node kinds is accepted; anything else is an error naming what is allowed.

    when: unit.flash_size == "8MB" and value("rail_3v3", "v") > 3.2
    when: passed("i2c_sensor") or unit.chip in ("esp32s3", "esp32c3")

Functions: `value(STEP, MEASUREMENT)` (the number an earlier step measured, in its last
attempt), `verdict(STEP)` ("PASS", "FAIL", "ERROR", "SKIPPED"), `passed(STEP)`. Names:
`unit.<fact>` (chip, flash_size, firmware, mac, and the sequence's variant), `true`,
`false`. A condition that cannot be evaluated for a unit (a value never measured, a text
compared with a number) is an error of the step, never a silent skip.

Imports nothing from ate.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 400
FUNCTIONS = ("value", "verdict", "passed")
UNIT_FACTS = ("chip", "flash_size", "firmware", "mac", "variant")
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ALLOWED = (
    "comparisons (== != < <= > >= in, not in), and, or, not, parentheses, numbers, "
    '"text", true, false, unit.<fact>, value(STEP, MEASUREMENT), verdict(STEP), '
    "passed(STEP)"
)


class ConditionError(ValueError):
    """A condition that does not parse or names what does not exist (load time)."""


class ConditionFailed(Exception):
    """A condition that cannot be evaluated for this unit (run time: the step's ERROR)."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What a condition reads for one unit: its facts and its steps' results so far."""

    unit: Mapping[str, object]
    verdicts: Mapping[str, str]  # step name -> verdict word
    values: Mapping[tuple[str, str], object]  # (step, measurement) -> value


@dataclass(frozen=True, slots=True)
class Condition:
    text: str
    tree: ast.expr
    steps: tuple[str, ...]  # the steps it reads, for the order check
    values: tuple[tuple[str, str], ...] = ()  # its value(STEP, MEASUREMENT) reads

    def __call__(self, facts: Facts) -> bool:
        result = _eval(self.tree, facts)
        if not isinstance(result, bool):
            raise ConditionFailed(f"when: {self.text!r} is {result!r}, not true or false")
        return result


def parse(text: str) -> Condition:
    """ConditionError says what is wrong and what is allowed."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"a condition is at most {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ConditionError(f"cannot read {text!r}: {exc.msg}; allowed are {_ALLOWED}") from None
    steps: list[str] = []
    _check(tree, steps)
    values = tuple(
        dict.fromkeys(
            (str(n.args[0].value), str(n.args[1].value))  # type: ignore[attr-defined]
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "value"
        )
    )
    return Condition(text, tree, tuple(dict.fromkeys(steps)), values)


def _check(node: ast.AST, steps: list[str]) -> None:
    if isinstance(node, ast.BoolOp | ast.UnaryOp) and isinstance(
        getattr(node, "op", None), ast.And | ast.Or | ast.Not | ast.USub
    ):
        for child in node.values if isinstance(node, ast.BoolOp) else [node.operand]:
            _check(child, steps)
        return
    if isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise ConditionError(f"operator {type(op).__name__} is not allowed; {_ALLOWED}")
        for child in (node.left, *node.comparators):
            _check(child, steps)
        return
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str):
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise ConditionError("numbers in a condition must be finite")
        return
    if isinstance(node, ast.Name):
        if node.id in ("true", "false"):
            return
        raise ConditionError(f"unknown name {node.id!r}; allowed are {_ALLOWED}")
    if isinstance(node, ast.Attribute):
        if not (isinstance(node.value, ast.Name) and node.value.id == "unit"):
            raise ConditionError(f"only unit.<fact> may be read; allowed are {_ALLOWED}")
        if node.attr not in UNIT_FACTS:
            raise ConditionError(
                f"unit.{node.attr} is not a unit fact; the facts are {', '.join(UNIT_FACTS)}"
            )
        return
    if isinstance(node, ast.Tuple | ast.List):
        for child in node.elts:
            if not isinstance(child, ast.Constant):
                raise ConditionError("a list in a condition holds only numbers and texts")
            _check(child, steps)
        return
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        want = 2 if name == "value" else 1
        if name not in FUNCTIONS:
            raise ConditionError(f"unknown function; allowed are {', '.join(FUNCTIONS)}")
        args = node.args
        if (
            node.keywords
            or len(args) != want
            or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args)
        ):
            shape = "value(STEP, MEASUREMENT)" if name == "value" else f"{name}(STEP)"
            raise ConditionError(f"write {shape} with quoted names")
        steps.append(str(args[0].value))  # type: ignore[attr-defined]
        return
    raise ConditionError(f"{type(node).__name__} is not allowed; allowed are {_ALLOWED}")


def _eval(node: ast.AST, facts: Facts) -> Any:
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_truth(_eval(v, facts)) for v in node.values)
        return any(_truth(_eval(v, facts)) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, facts)
        if isinstance(node.op, ast.Not):
            return not _truth(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConditionFailed(f"cannot negate {value!r}")
        return -value
    if isinstance(node, ast.Compare):
        left = _eval(node.left, facts)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, facts)
            try:
                ok = _COMPARE[type(op)](left, right)
            except TypeError:
                raise ConditionFailed(f"cannot compare {left!r} with {right!r}") from None
            if not ok:
                return False
            left = right
        return True
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return node.id == "true"
    if isinstance(node, ast.Attribute):
        if node.attr not in facts.unit or facts.unit[node.attr] in (None, ""):
            raise ConditionFailed(f"unit.{node.attr} is not known for this unit")
        return facts.unit[node.attr]
    if isinstance(node, ast.Tuple | ast.List):
        return tuple(_eval(e, facts) for e in node.elts)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        args = [str(a.value) for a in node.args if isinstance(a, ast.Constant)]
        if node.func.id == "value":
            key = (args[0], args[1])
            if key not in facts.values:
                raise ConditionFailed(f"{args[0]} measured no {args[1]!r} for this unit")
            return facts.values[key]
        word = facts.verdicts.get(args[0])
        if word is None:
            raise ConditionFailed(f"step {args[0]} has not run for this unit")
        return word if node.func.id == "verdict" else word == "PASS"
    raise ConditionFailed(f"cannot evaluate {type(node).__name__}")  # _check refused it


def _truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConditionFailed(f"{value!r} is not true or false (compare it with something)")
    return value
