"""Shared step blocks: an item `{include: FILE}` in a sequence's `setup`, `steps` or
`cleanup` stands for the steps of FILE (a YAML file with a top-level `steps:` list,
relative to the sequence file), put in its place before parameters are resolved and the
sequence is validated, so the included steps take the sequence's `${name}` parameters.

A block is checked on its own first, so a mistake inside it is reported at its own line
in its own file; a clash that only the whole sequence shows (a step name used twice, a
`needs` on a later step) is reported at the `include:` line. Blocks do not include other
blocks (one level keeps a sequence readable). Every block's sha256 is kept: the record
and the approval digest cover what was included.

Imports ate.config only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from ate.config.common import Strict
from ate.config.errors import InputError
from ate.config.files import YAML_MAX, FileRefused, read_file
from ate.config.sequence import Step
from ate.config.yaml_source import NodePath, Positions, load_yaml

GROUPS = ("setup", "steps", "cleanup")


class StepBlock(Strict):
    """A file of steps a sequence includes."""

    description: str = ""
    steps: tuple[Step, ...] = Field(min_length=1, description="steps, as in a sequence")


@dataclass(frozen=True, slots=True)
class Included:
    name: str  # as the sequence wrote it
    sha256: str


Resolve = Callable[[dict[str, Any], Positions, Path], Any]


def expand(
    data: dict[str, Any],
    positions: Positions,
    path: Path,
    found: list[Included],
    resolve: Resolve,
) -> dict[str, Any]:
    """`data` with every include item replaced by its block's steps (their `${name}`
    values resolved by `resolve` with the sequence's parameters); `positions` is
    re-indexed in place so that every other step keeps its own lines."""
    out = dict(data)
    for group in GROUPS:
        items = data.get(group)
        if not isinstance(items, list):
            continue
        expanded: list[Any] = []
        moves: list[tuple[NodePath, NodePath | None]] = []  # old prefix -> new, or the include
        for i, item in enumerate(items):
            if isinstance(item, dict) and "include" in item:
                steps = _block(item, (group, i), positions, path, found, resolve, data)
                for step in steps:
                    moves.append(((group, i), (group, len(expanded))))
                    expanded.append(step)
            else:
                moves.append(((group, i), (group, len(expanded))))
                expanded.append(item)
        _reindex(positions, group, moves)
        out[group] = expanded
    return out


def _block(
    item: dict[str, Any],
    where: NodePath,
    positions: Positions,
    path: Path,
    found: list[Included],
    resolve: Resolve,
    sequence: dict[str, Any],
) -> list[dict[str, Any]]:
    line, column = positions.value((*where, "include"))
    name = item.get("include")
    if set(item) != {"include"} or not isinstance(name, str) or not name.strip():
        raise InputError(
            path,
            "an include item is only {include: FILE}, FILE relative to this file",
            line,
            column,
        )
    target = (path.parent / name).resolve()
    try:
        raw = read_file(target, YAML_MAX)
    except FileRefused as exc:
        raise InputError(
            path, f"include {name!r}: {exc} (looked for {target})", line, column
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(target, "not UTF-8 text; save the file as UTF-8") from None
    block_data, block_positions = load_yaml(text, target)
    if not isinstance(block_data, dict):
        raise InputError(target, "a step block is a mapping with a `steps:` list")
    for j, step in enumerate(block_data.get("steps") or []):
        if isinstance(step, dict) and "include" in step:
            b_line, b_col = block_positions.value(("steps", j, "include"))
            raise InputError(target, "a block does not include other blocks", b_line, b_col)
    # The sequence's parameters apply inside the block: resolved with them, then checked
    # on its own, so a mistake in it is reported at its own line.
    params: dict[str, Any] = {k: sequence[k] for k in ("parameters", "variants") if k in sequence}
    resolved = resolve({**block_data, **params}, block_positions, target)
    resolved = {k: v for k, v in resolved.items() if k not in params}
    from pydantic import ValidationError

    from ate.config.loader import validation_error_at

    try:
        StepBlock.model_validate(resolved)
    except ValidationError as exc:
        raise validation_error_at(target, block_positions, (), StepBlock, resolved, exc) from None
    found.append(Included(name, hashlib.sha256(raw).hexdigest()))
    return list(resolved["steps"])


def _reindex(
    positions: Positions, group: str, moves: list[tuple[NodePath, NodePath | None]]
) -> None:
    """Move each old item's positions to its new index; an included step's paths point at
    its include line (its own lines are in its own file)."""
    for table in (positions.values, positions.keys):
        old = {p: pos for p, pos in table.items() if p[:1] == (group,) and len(p) >= 2}
        for p in old:
            del table[p]
        seen: set[NodePath] = set()
        for src, dst in moves:
            if dst is None:
                continue
            if src in seen:  # the second and later steps of one include
                anchor = old.get(src) or positions.value((group,))
                table[dst] = anchor
                continue
            seen.add(src)
            for p, pos in old.items():
                if p[:2] == src:
                    table[(*dst, *p[2:])] = pos
