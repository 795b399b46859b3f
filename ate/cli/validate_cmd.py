"""`ate validate FILE...` and `ate schema [sequence|fixture|profile]`: check YAML inputs,
print JSON Schema for editors. Imports ate.config, ate.provision to check a
provisioning profile with everything it names (release, keys, trust anchors), and
ate.sim.fixture_check for a fixture's simulation section."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

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


def run_validate(paths: list[str]) -> int:
    """Check each file; print `OK ...` lines to stdout and problems to stderr."""
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
                seq = load_sequence(name)
                sequences.append(seq)
                m = seq.model
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
    return {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema(), "title": title}


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
