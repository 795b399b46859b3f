"""yaml_source: data equal to yaml.safe_load, positions that point at the right text,
duplicate keys refused."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ate.config.errors import InputError
from ate.config.yaml_source import NodePath, Position, load_yaml


def at(text: str, pos: Position) -> str:
    """The text from a 1-based (line, column) to the end of that line."""
    return text.splitlines()[pos.line - 1][pos.column - 1 :]


def walk(data: Any, path: NodePath = ()) -> Iterator[tuple[NodePath, Any]]:
    yield path, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from walk(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from walk(v, (*path, i))


# --- examples ------------------------------------------------------------------------------


def test_positions_of_keys_and_values() -> None:
    text = "a: 1\nsteps:\n  - name: x\n    limits: {low: 2, high: 3}\n  - [4, 5]\n"
    data, pos = load_yaml(text, "f.yaml")
    assert data == yaml.safe_load(text)
    assert pos.values[("a",)] == (1, 4)
    assert pos.keys[("a",)] == (1, 1)
    assert pos.values[("steps", 0)] == (3, 5)  # a block mapping starts at its first key
    assert pos.keys[("steps", 0, "limits")] == (4, 5)
    assert pos.values[("steps", 0, "limits")] == (4, 13)
    assert pos.values[("steps", 0, "limits", "high")] == (4, 28)
    assert pos.values[("steps", 1, 1)] == (5, 9)
    assert pos.values[()] == (1, 1)


def test_lookup_falls_back_to_nearest_enclosing_node() -> None:
    _, pos = load_yaml("a:\n  b: {c: 1}\n", "f.yaml")
    assert pos.value(("a", "b", "missing", "deeper")) == pos.values[("a", "b")] == (2, 6)
    assert pos.key(("a", "b", "missing")) == (2, 6)
    assert pos.key(("a", "b")) == (2, 3)


def test_columns_count_characters_not_bytes() -> None:
    _, pos = load_yaml("größe: {wert: 1}\n", "f.yaml")
    assert pos.values[("größe", "wert")] == (1, 15)


def test_crlf_line_endings() -> None:
    _, pos = load_yaml("a: 1\r\nb:\r\n  c: 2\r\n", "f.yaml")
    assert pos.values[("b", "c")] == (3, 6)


def test_anchors_aliases_and_merge_keys() -> None:
    text = "base: &b {unit: mA, low: 1}\nx:\n  <<: *b\n  low: 2\ny: *b\n"
    data, pos = load_yaml(text, "f.yaml")
    assert (
        data
        == yaml.safe_load(text)
        == {
            "base": {"unit": "mA", "low": 1},
            "x": {"unit": "mA", "low": 2},
            "y": {"unit": "mA", "low": 1},
        }
    )
    assert pos.values[("x", "low")] == (4, 8)  # the override
    assert pos.values[("x", "unit")] == (1, 17)  # merged: where it was written
    assert pos.values[("x",)] == (3, 3)
    assert pos.values[("y", "low")] == (1, 26)


def test_merged_keys_may_be_overridden_but_own_keys_not_repeated() -> None:
    load_yaml("b: &b {k: 1}\nx: {<<: *b, k: 2}\n", "f.yaml")
    with pytest.raises(InputError, match="duplicate key 'k'"):
        load_yaml("b: &b {k: 1}\nx: {<<: *b, k: 2, k: 3}\n", "f.yaml")


def test_empty_document_is_none() -> None:
    assert load_yaml("# just a comment\n", "f.yaml")[0] is None


@pytest.mark.parametrize(
    ("text", "line", "column", "phrase"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, 1, "duplicate key 'a' (first at line 1, column 1)"),
        ("a: [1, 2\n", 2, 1, "not valid YAML"),
        ("a: 1\n---\nb: 2\n", 2, 1, "expected a single document"),
        ("a: !custom 1\n", 1, 4, "could not determine a constructor"),
        ("a: !!int x\n", 1, 4, "cannot read 'x'"),
        ("? [a, b]\n: 1\n", 1, 3, "a key must be a plain value"),
        ("a: &x [*x]\n", 1, 4, "refers to the node that contains it"),
        ("a: !!set {x}\n", 1, 4, "not supported"),
        ("a: 1\nb: x\x07\n", 2, 5, "control characters"),
        ("a:\n\tb: 1\n", 2, 1, "not tabs"),
    ],
)
def test_yaml_problems(text: str, line: int, column: int, phrase: str) -> None:
    with pytest.raises(InputError) as info:
        load_yaml(text, "f.yaml")
    assert (info.value.path, info.value.line, info.value.column) == ("f.yaml", line, column)
    assert phrase in info.value.message


def test_alias_bomb_is_refused() -> None:
    text = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for i in range(1, 8):  # 10**8 nodes once expanded
        text += f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 10)}]\n"
    with pytest.raises(InputError, match="document too large"):
        load_yaml(text, "f.yaml")


# --- properties ----------------------------------------------------------------------------

# Keys YAML reads as text: `on`, `yes`, `null` and friends are booleans and None to it.
keys = st.from_regex(r"\A[a-z][a-z0-9_]{0,6}\Z").filter(lambda k: yaml.safe_load(k) == k)
scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.text(alphabet="abcxyz019 _-.", max_size=8),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=25,
).map(lambda d: {"root": d})
styles = st.fixed_dictionaries(
    {"default_flow_style": st.sampled_from([False, True, None]), "indent": st.sampled_from([2, 4])}
)


def scalar_text_ok(text: str, pos: Position, value: Any) -> bool:
    here = at(text, pos)
    if value is None:
        return here.startswith(("null", "~"))
    if isinstance(value, bool):
        return here.startswith("true" if value else "false")
    if isinstance(value, int):
        return here.startswith(str(value))
    assert isinstance(value, str)
    return here.startswith(value) or here.startswith("'" + value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, styles)
def test_positions_point_at_the_text(doc: dict[str, Any], style: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, sort_keys=False, width=10_000, **style)
    data, pos = load_yaml(text, "g.yaml")
    assert data == yaml.safe_load(text) == doc
    for path, value in walk(data):
        assert path in pos.values, path
        here = at(text, pos.values[path])
        if isinstance(value, dict | list) and path:
            if not value:
                assert here.startswith(("{}", "[]")), (path, text)
            elif here.startswith(("{", "[", "-")):
                pass  # flow collection, or a block sequence's first item
            else:  # a block mapping starts at its first key
                first: Hashable = next(iter(value)) if isinstance(value, dict) else 0
                assert pos.values[path] == pos.keys[(*path, first)], (path, text)
        elif path:
            assert scalar_text_ok(text, pos.values[path], value), (path, here, text)
        if path and isinstance(path[-1], str) and not isinstance(_parent(data, path), list):
            key_here = at(text, pos.keys[path])
            assert key_here.startswith((path[-1], "'" + path[-1])), (path, key_here, text)


def _parent(data: Any, path: NodePath) -> Any:
    for element in path[:-1]:
        data = data[element]
    return data


@settings(max_examples=150, deadline=None)
@given(
    names=st.lists(keys, min_size=1, max_size=6, unique=True),
    data=st.data(),
    indent=st.integers(0, 3),
    flow=st.booleans(),
)
def test_duplicate_keys_always_refused(
    names: list[str], data: st.DataObject, indent: int, flow: bool
) -> None:
    dup = data.draw(st.sampled_from(names), label="duplicated")
    where = data.draw(st.integers(names.index(dup) + 1, len(names)), label="inserted at")
    order = [*names[:where], dup, *names[where:]]
    if flow:
        head = "outer: {"
        parts = [f"{k}: {i}" for i, k in enumerate(order)]
        text = head + ", ".join(parts) + "}\n"
        expected_line = 1
        expected_col = len(head) + len(", ".join(parts[:where])) + (2 if where else 0) + 1
    else:
        pad = " " * (2 * indent)
        lines = ["outer:" if indent else "", *(f"{pad}{k}: {i}" for i, k in enumerate(order))]
        text = "\n".join(line for line in lines if line or indent) + "\n"
        expected_line = where + 1 + (1 if indent else 0)
        expected_col = len(pad) + 1
    with pytest.raises(InputError) as info:
        load_yaml(text, "d.yaml")
    err = info.value
    assert f"duplicate key {dup!r}" in err.message, text
    assert (err.line, err.column) == (expected_line, expected_col), text
