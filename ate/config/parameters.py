"""Sequence parameters and variants: one file serves a product family. A sequence names
`parameters` (limits, pin lists, channels) and per-variant overrides; a value written
`${name}` anywhere in it is replaced by the parameter's value (keeping its type: a number
stays a number, a list a list) before the sequence is validated, so every check, and
every error's line, applies to what will run.

    parameters: {rail_low: 3.2, imu_address: 0x68}
    variants:
      pro: {rail_low: 3.25}
    steps:
      - {name: rail, type: rail_voltage, rail: 3v3, limits: {low: "${rail_low}", unit: V}}

Imports ate.config.errors and ate.config.yaml_source only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ate.config.errors import InputError
from ate.config.yaml_source import NodePath, Positions

_WHOLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_PART = re.compile(r"\$\{")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NOT_RESOLVED = ("parameters", "variants", "description")  # kept as written


def resolve(data: dict[str, Any], positions: Positions, path: Path, variant: str | None) -> Any:
    """`data` with every `${name}` replaced for `variant` (None: the base parameters);
    InputError at the offending line for an unknown parameter or variant."""

    def fail(where: NodePath, message: str, *, key: bool = False) -> InputError:
        line, column = positions.key(where) if key else positions.value(where)
        return InputError(path, message, line, column)

    params = data.get("parameters", {})
    variants = data.get("variants", {})
    for field, value in (("parameters", params), ("variants", variants)):
        if not isinstance(value, dict):
            raise fail((field,), f"{field} is a mapping of names to values")
    for name in params:
        if not isinstance(name, str) or not _NAME.match(name):
            raise fail(
                ("parameters", name), f"parameter name {name!r}: letters, digits, _", key=True
            )
    chosen = dict(params)
    if variant is not None and variant not in variants:
        known = ", ".join(sorted(map(str, variants))) or "none"
        raise fail(
            ("variants",) if "variants" in data else (),
            f"variant {variant!r} is not in this sequence; its variants: {known}",
            key="variants" in data,
        )
    for name, overrides in variants.items():
        if not isinstance(overrides, dict):
            raise fail(("variants", name), f"variant {name!r} maps parameter names to values")
        for key in overrides:
            if key not in params:
                raise fail(
                    ("variants", name, key),
                    f"variant {name!r} sets {key!r}, which is not under parameters "
                    f"({', '.join(map(str, params)) or 'none'})",
                    key=True,
                )
    if variant is not None:
        chosen.update(variants[variant])

    def walk(value: Any, where: NodePath) -> Any:
        if isinstance(value, dict):
            return {
                k: v if where == () and k in _NOT_RESOLVED else walk(v, (*where, k))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [walk(v, (*where, i)) for i, v in enumerate(value)]
        if isinstance(value, str):
            m = _WHOLE.match(value.strip())
            if m is not None:
                name = m.group(1)
                if name not in chosen:
                    raise fail(
                        where,
                        f"${{{name}}}: no such parameter; the parameters: "
                        f"{', '.join(map(str, chosen)) or 'none'}",
                    )
                return chosen[name]
            if _PART.search(value) and not (where and where[-1] == "description"):
                raise fail(where, "a parameter stands alone as a value, e.g. low: ${rail_low}")
        return value

    return walk(data, ())
