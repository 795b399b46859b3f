"""YAML text -> plain data plus the (line, column) of every key and value, by node path.

Refuses duplicate keys, non-finite numbers, oversized or overdeep documents and other
YAML mistakes with an InputError. Imports ate.config only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ate.config.errors import InputError

try:  # libyaml is several times faster; the pure-Python loader gives identical marks
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

# A node's address in the loaded data: mapping keys and list indices, outermost first,
# e.g. ("steps", 3, "limits", "low").
NodePath = tuple[Hashable, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Real sequences and fixtures have a few thousand nodes and nest a few levels deep. The
# caps are enforced while composing, so a dense file is refused before it is all in
# memory; aliases can make a small file expand into a huge tree ("billion laughs"), so
# building the data counts again, after aliases.
MAX_NODES = 100_000
MAX_DEPTH = 64

# A plain scalar that reads as a number to float() but not to YAML 1.1 (which needs a
# dot and a signed exponent): `1e999` would reach a float field as text and become inf.
_NUMBER_LIKE = re.compile(r"[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?")
# The largest magnitude a float holds: an integer beyond it overflows to inf.
_FLOAT_LIMIT = 2**1024


class Position(NamedTuple):
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class Positions:
    """Where each node of a loaded document was written.

    `values[p]` is the start of the value at path p; `keys[p]` the start of the key that
    introduced it (mapping entries only). Lookups fall back to the nearest enclosing node,
    so a path that is not in the data (a missing field) lands on its parent mapping.
    """

    values: dict[NodePath, Position] = field(default_factory=dict)
    keys: dict[NodePath, Position] = field(default_factory=dict)

    def value(self, path: NodePath) -> Position:
        for n in range(len(path), -1, -1):
            if (pos := self.values.get(path[:n])) is not None:
                return pos
        return Position(1, 1)

    def key(self, path: NodePath) -> Position:
        """The key's position for a mapping entry, else the value's."""
        pos = self.keys.get(path)
        return pos if pos is not None else self.value(path)


def _pos(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _ComposingLoader(Composer, _BaseLoader):
    """libyaml's parser (fast) with PyYAML's Python composer, so that composing can be
    counted: libyaml's own composer builds the whole node graph before returning."""


class PositionLoader(_ComposingLoader):
    """Composes the node graph (counting nodes and depth), then builds the data itself.

    Building by hand (rather than through the constructor) is what lets it record a
    position for every path, refuse duplicate keys, and name the file in every error.
    """

    def __init__(self, text: str, path: str | Path) -> None:
        _BaseLoader.__init__(self, text)  # Composer's __init__ takes no stream
        self.anchors: dict[str, Node] = {}  # Composer's state; libyaml's __init__ skips it
        self.text = text
        self.path = path
        self.positions = Positions()
        self._composed = 0
        self._depth = 0
        self._budget = MAX_NODES
        self._active: set[int] = set()  # nodes being built: a recursive alias would loop

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._composed += 1
        self._depth += 1
        try:
            if self._composed > MAX_NODES:
                raise self._at_event(
                    f"document too large: more than {MAX_NODES} YAML nodes; an input file "
                    f"may hold at most {MAX_NODES}"
                )
            if self._depth > MAX_DEPTH:
                raise self._at_event(
                    f"nested too deeply: more than {MAX_DEPTH} levels; an input file may "
                    f"nest at most {MAX_DEPTH}"
                )
            node = super().compose_node(parent, index)
            assert node is not None  # only None at the end of the stream, never inside
            return node
        finally:
            self._depth -= 1

    def _at_event(self, message: str) -> InputError:
        event = self.peek_event()
        mark = event.start_mark if event is not None else None
        if mark is None:
            return InputError(self.path, message)
        return InputError(self.path, message, mark.line + 1, mark.column + 1)

    def load_document(self) -> Any:
        """The single document's data, or None for an empty file."""
        try:
            node = self.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise self._yaml_error(exc) from None
        except yaml.reader.ReaderError as exc:  # a control character; has an offset, no mark
            line = self.text.count("\n", 0, exc.position) + 1
            column = exc.position - self.text.rfind("\n", 0, exc.position)
            found = f" (found #x{exc.character:04x})" if isinstance(exc.character, int) else ""
            raise InputError(
                self.path, f"not valid YAML: {exc.reason}{found}", line, column
            ) from None
        except RecursionError:
            raise InputError(self.path, "YAML nested too deeply") from None
        finally:
            self.dispose()
        if node is None:
            return None
        try:
            return self._build(node, ())
        except RecursionError:
            raise InputError(self.path, "YAML nested too deeply") from None

    def _yaml_error(self, exc: yaml.MarkedYAMLError) -> InputError:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "not valid YAML"
        if exc.context:
            sep = ", " if problem.startswith("but ") else ": "
            problem = f"{exc.context}{sep}{problem}"
        if mark is None:
            return InputError(self.path, f"not valid YAML: {problem}")
        if self._char_at(mark.line, mark.column) == "\t":
            problem += "; YAML indents with spaces, not tabs"
        return InputError(self.path, f"not valid YAML: {problem}", mark.line + 1, mark.column + 1)

    def _char_at(self, line: int, column: int) -> str:
        lines = self.text.splitlines()
        return lines[line][column : column + 1] if line < len(lines) else ""

    def _error(self, node: Node, message: str) -> InputError:
        line, column = _pos(node)
        return InputError(self.path, message, line, column)

    def _build(self, node: Node, path: NodePath) -> Any:
        self._budget -= 1
        if self._budget < 0:
            raise self._error(
                node,
                f"document too large: more than {MAX_NODES} YAML nodes after aliases; an "
                f"input file may hold at most {MAX_NODES}",
            )
        self.positions.values[path] = _pos(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if id(node) in self._active:
            raise self._error(node, "an alias refers to the node that contains it")
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                self._check_tag(node, _SEQ_TAG)
                return [self._build(item, (*path, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, MappingNode)
            self._check_tag(node, _MAP_TAG)
            return self._build_mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode) -> Any:
        try:
            value = self.construct_object(node)
        except yaml.MarkedYAMLError as exc:  # e.g. an unknown !tag
            raise self._yaml_error(exc) from None
        except Exception:  # PyYAML's constructors, given any text after a tag (`!!int x`,
            # an empty `!!int`), raise ValueError, IndexError, ...: all the input's fault
            raise self._error(node, f"cannot read {_shorten(node.value)!r} as {node.tag}") from None
        plain = node.style in (None, "")  # libyaml says "" for plain, PyYAML None
        if not _finite(value) or (plain and _overflows(value)):
            # A limit of .nan compares false both ways and .inf passes every check: a
            # non-finite number anywhere could turn into a false PASS.
            raise self._error(
                node, f"{_shorten(node.value)!r} is not a finite number; numbers must be finite"
            )
        return value

    def _check_tag(self, node: Node, expected: str) -> None:
        if node.tag != expected:
            raise self._error(node, f"YAML tag {node.tag!r} is not supported here")

    def _build_mapping(self, node: MappingNode, path: NodePath) -> dict[Hashable, Any]:
        data: dict[Hashable, Any] = {}
        own: dict[Hashable, Node] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:  # `<<: *defaults`: merged keys may be overridden
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        raise self._error(source, "'<<' merges only mappings")
                merged.extend(sources)
                continue
            if not isinstance(key_node, ScalarNode):
                raise self._error(key_node, "a key must be a plain value, not a list or mapping")
            key = self._scalar(key_node)
            if key in own:
                first = _pos(own[key])
                raise self._error(
                    key_node,
                    f"duplicate key {key_node.value!r} "  # as written: 0x75, not 117
                    f"(first at line {first.line}, column {first.column}); "
                    "each key may appear once in a mapping",
                )
            own[key] = key_node
            data[key] = value_node
        result: dict[Hashable, Any] = {}
        # Per the merge-key spec, earlier merge sources win over later ones.
        for source in reversed(merged):
            result.update(self._build(source, path))
        self.positions.values[path] = _pos(node)  # the nested builds above overwrote it
        for key, value_node in data.items():
            self.positions.keys[(*path, key)] = _pos(own[key])
            result[key] = self._build(value_node, (*path, key))
        return result


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -_FLOAT_LIMIT < value < _FLOAT_LIMIT
    return True


def _overflows(value: Any) -> bool:
    """Plain text that float() reads as inf, e.g. `1e999` (YAML 1.1 keeps it text)."""
    if not isinstance(value, str) or not _NUMBER_LIKE.fullmatch(value):
        return False
    if not any(c.isdigit() for c in value):
        return False
    try:
        return not math.isfinite(float(value.replace("_", "")))
    except ValueError:
        return False


def load_yaml(text: str, path: str | Path) -> tuple[Any, Positions]:
    """Parse one YAML document; return its data and positions, or raise InputError."""
    loader = PositionLoader(text, path)
    data = loader.load_document()
    return data, loader.positions
