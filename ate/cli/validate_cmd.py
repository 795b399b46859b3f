"""`ate validate FILE...` and `ate schema [sequence|fixture|profile]`: check YAML inputs,
print JSON Schema for editors. Imports ate.config, ate.provision to check a
provisioning profile with everything it names (release, keys, trust anchors), and
ate.sim.fixture_check for a fixture's simulation section."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from ate.config.errors import InputError
from ate.config.files import YAML_MAX, FileRefused, read_file
from ate.config.fixture import Fixture
from ate.config.loader import (
    LoadedFixture,
    LoadedSequence,
    check_compatible,
    load_fixture,
    load_sequence,
    load_station,
)
from ate.config.profile import Profile
from ate.config.sequence import Sequence
from ate.config.station import Station
from ate.config.yaml_source import load_yaml

EXIT_OK = 0
EXIT_INPUT = 2  # bad input, reported as file:line:col

_SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "sequence": (Sequence, "ate test sequence"),
    "fixture": (Fixture, "ate fixture"),
    "profile": (Profile, "ate provisioning profile"),
    "station": (Station, "ate station"),
}
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def run_validate(paths: list[str], *, variant: str | None = None, show: bool = False) -> int:
    """Check each file; print `OK ...` lines to stdout and problems to stderr. Sequences
    are resolved for `variant`; `show` prints each as it runs (YAML)."""
    ok = True
    sequences: list[LoadedSequence] = []
    fixtures: list[LoadedFixture] = []
    for name in paths:
        try:
            kind = file_kind(Path(name))
            if kind == "profile":
                from ate.provision.profile import open_profile

                prof = open_profile(Path(name), open_ca=False)
                p = prof.model
                print(
                    f"OK {name} (profile {p.profile}, {p.environment}, {p.product.chip}, "
                    f"release {prof.release.name} {prof.release.version}, "
                    f"{_n(len(prof.plan.steps), 'eFuse step')})"
                )
            elif kind == "station":
                st = load_station(name)
                print(
                    f"OK {name} (station {st.model.station}, "
                    f"{_n(len(st.fixtures), 'fixture')}, sequence {st.sequence.model.sequence})"
                )
            elif kind == "sequence":
                seq = load_sequence(name, variant)
                sequences.append(seq)
                m = seq.model
                if show:
                    shown = m.model_dump(mode="json", by_alias=True, exclude_defaults=True)
                    shown.pop("parameters", None)
                    shown.pop("variants", None)
                    print(f"# {name}, variant {variant or '(base)'}, {seq.resolved_sha256}")
                    print(yaml.safe_dump(shown, sort_keys=False, allow_unicode=True), end="")
                groups = ", ".join(
                    f"{len(getattr(m, g))} {g}" for g in ("setup", "cleanup") if getattr(m, g)
                )
                count = _n(len(m.all_steps()), "step") + (f": {groups}" if groups else "")
                print(f"OK {name} (sequence {m.sequence} {m.version}, {count})")
            else:
                fix = load_fixture(name)
                if fix.model.simulation is not None:
                    from ate.sim.fixture_check import check_simulation

                    check_simulation(fix)
                fixtures.append(fix)
                f = fix.model
                print(f"OK {name} (fixture {f.fixture}, {_n(len(f.slots), 'slot')})")
        except InputError as exc:
            print(exc, file=sys.stderr)
            ok = False
    # Given both, the files are meant to run together: check that they fit.
    for seq in sequences:
        for fix in fixtures:
            try:
                check_compatible(seq, fix)
                print(f"OK {seq.path} runs on {fix.path}")
            except InputError as exc:
                print(exc, file=sys.stderr)
                ok = False
    return EXIT_OK if ok else EXIT_INPUT


def run_schema(kind: str) -> int:
    """Print the JSON Schema of a sequence or fixture file, for editor completion."""
    if kind not in _SCHEMAS:
        print(f"ate schema: unknown kind {kind!r}; allowed: {', '.join(_SCHEMAS)}", file=sys.stderr)
        return EXIT_INPUT
    print(json.dumps(schema(kind), indent=2))
    return EXIT_OK


def schema(kind: str) -> dict[str, Any]:
    model, title = _SCHEMAS[kind]
    doc = {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema(), "title": title}
    if kind == "sequence":
        _allow_parameters(doc)
        include = {
            "type": "object",
            "properties": {"include": {"type": "string", "description": "a step block file"}},
            "required": ["include"],
            "additionalProperties": False,
        }
        for group in ("setup", "steps", "cleanup"):
            prop = doc["properties"][group]
            prop["items"] = {"anyOf": [prop["items"], include]}
    return doc


_PARAMETER = {
    "type": "string",
    "pattern": r"^\s*\$\{[A-Za-z_][A-Za-z0-9_]*\}\s*$",
    "description": "a parameter of the sequence: ${name} (see parameters, variants)",
}
_FIXED = {"name", "type", "parameters", "variants", "setup", "steps", "cleanup", "sequence"}


def _allow_parameters(doc: dict[str, Any]) -> None:
    """A sequence's values may be written `${name}` (ate.config.parameters): every field
    of every object but the structural ones also accepts that form."""
    doc.setdefault("$defs", {})["Parameter"] = _PARAMETER
    ref = {"$ref": "#/$defs/Parameter"}

    def wrap(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                for key, sub in list(props.items()):
                    wrap(sub)
                    if key in _FIXED or not isinstance(sub, dict):
                        continue
                    if isinstance(sub.get("anyOf"), list):
                        sub["anyOf"].append(ref)
                    else:  # the field's words stay at its top, where editors show them
                        hoisted = {
                            k: sub.pop(k) for k in ("description", "default", "title") if k in sub
                        }
                        props[key] = {"anyOf": [sub, ref], **hoisted}
            for key, value in node.items():
                if key != "properties":
                    wrap(value)
        elif isinstance(node, list):
            for item in node:
                wrap(item)

    wrap(doc)


def file_kind(path: Path) -> str:
    """ "sequence", "fixture", "profile" or "station", from the file's top-level key."""
    try:
        text = read_file(path, YAML_MAX).decode("utf-8-sig")
    except (FileRefused, UnicodeDecodeError):
        return "sequence"  # the loader reports unreadable files with the right words
    try:
        data, positions = load_yaml(text, path)
    except InputError:
        return "sequence"  # likewise for YAML errors: the loader raises the same InputError
    if not isinstance(data, dict):
        return "sequence"  # the loader says what the top level must be
    if "station" in data:  # a station file also names its sequence and profile
        return "station"
    found = [k for k in _SCHEMAS if k in data]
    if len(found) == 1:
        return found[0]
    line, column = positions.value(())
    what = (
        "both " + " and ".join(f"'{k}'" for k in found)
        if found
        else "none of 'sequence', 'fixture', 'profile', 'station'"
    )
    raise InputError(
        path,
        f"not a sequence, fixture, profile or station file: the top level has {what}; "
        "allowed: 'sequence: NAME' (a test sequence), 'fixture: NAME' (a fixture "
        "description), 'profile: NAME' (a provisioning profile) or 'station: NAME' (a "
        "station file)",
        line,
        column,
    )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


if __name__ == "__main__":  # a quick way to run it before the CLI wires it in
    sys.exit(run_validate(sys.argv[1:]))
