"""Load sequence and fixture YAML into the config models; every problem is one InputError
naming file, line and column. Imports ate.config and ate.model only (and, through
ate.config.esp_image, esptool's image parser)."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import types
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ate.config import includes, parameters
from ate.config.common import FieldError
from ate.config.errors import InputError
from ate.config.esp_image import check_app_image
from ate.config.files import IMAGE_MAX, YAML_MAX, FileRefused, read_file
from ate.config.fixture import Fixture
from ate.config.sequence import PROMPT_IMAGE_TYPES, PluginStep, PromptStep, RfStepBase, Sequence
from ate.config.station import Station
from ate.config.yaml_source import NodePath, Position, Positions, load_yaml

M = TypeVar("M", bound=BaseModel)

PLUGIN_GROUP = "ate.steps"


@dataclass(frozen=True)
class Loaded(Generic[M]):
    """A validated document with what is needed to point back into its file."""

    model: M
    path: Path
    sha256: str  # of the file's bytes, recorded with every run
    data: Any  # the plain YAML data the model was validated from (positions index it)
    positions: Positions


@dataclass(frozen=True)
class LoadedSequence:
    model: Sequence
    path: Path
    sha256: str
    firmware_path: Path  # absolute; the YAML gives it relative to the sequence file
    firmware_sha256: str
    positions: Positions
    # The bytes that were hashed: what is flashed is exactly what the records name, even
    # if the file changes while the station runs.
    firmware_image: bytes = field(default=b"", repr=False)
    variant: str | None = None  # the product variant its parameters were resolved for
    resolved_sha256: str = ""  # of the sequence as it runs (parameters resolved)
    includes: tuple[tuple[str, str], ...] = ()  # (block file as written, its sha256)


@dataclass(frozen=True)
class LoadedFixture:
    model: Fixture
    path: Path
    sha256: str
    base_dir: Path  # the fixture file's folder, absolute; relative paths in it start here
    positions: Positions
    data: Any = None  # the plain YAML data (positions index it)
    controller_settings: Any = None  # its driver's settings model, validated
    # role -> (instrument driver name, its settings model validated)
    instruments: dict[str, tuple[str, Any]] = field(default_factory=dict)


def load_model(path: Path, model: type[M]) -> M:
    """Read `path` as YAML and validate it as `model`; raise InputError on any problem."""
    return load_document(path, model).model


def load_document(
    path: Path | str,
    model: type[M],
    prepare: Callable[[dict[str, Any], Positions, Path], Any] | None = None,
) -> Loaded[M]:
    """`load_model` plus the file's hash, data and positions; `prepare` turns the YAML
    data into what is validated (a sequence's parameters resolved)."""
    path = Path(path)
    raw = _read(path)
    try:
        text = raw.decode("utf-8-sig")  # tolerate the BOM some Windows editors write
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise InputError(path, "not UTF-8 text; save the file as UTF-8", line, column) from None
    data, positions = load_yaml(text, path)
    if not isinstance(data, dict):
        what = "the file is empty" if data is None else f"the file holds {_show(data)}"
        raise InputError(
            path,
            f"{what}; expected a mapping of 'key: value' lines "
            f"({', '.join(_field_names(model)[:3])}, ...)",
            *positions.value(()),
        )
    if prepare is not None:
        data = prepare(data, positions, path)
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, model, data, positions, exc) from None
    return Loaded(validated, path, hashlib.sha256(raw).hexdigest(), data, positions)


def load_sequence(path: Path | str, variant: str | None = None) -> LoadedSequence:
    """Load and check a sequence for `variant` (None: its base parameters): its model,
    its test firmware file and its plugins."""

    found: list[includes.Included] = []

    def resolve_parameters(data: dict[str, Any], positions: Positions, where: Path) -> Any:
        return parameters.resolve(data, positions, where, variant)

    def resolve(data: dict[str, Any], positions: Positions, where: Path) -> Any:
        data = includes.expand(data, positions, where, found, resolve_parameters)
        return resolve_parameters(data, positions, where)

    loaded = load_document(path, Sequence, resolve)
    seq = loaded.model
    problems: list[InputError] = []

    fw_rel = ("test_firmware", "path")
    firmware = (loaded.path.parent / seq.test_firmware.path).resolve()
    firmware_sha = ""
    image = b""
    try:
        image = read_file(firmware, IMAGE_MAX)
        firmware_sha = hashlib.sha256(image).hexdigest()
        check_app_image(image, seq.chip)
    except FileRefused as exc:
        named = f"test firmware {seq.test_firmware.path!r}"
        if str(exc) == "no such file":
            message = (
                f"{named} not found (looked for {firmware}; the path is relative to the "
                "sequence file)"
            )
        else:
            message = f"{named} ({firmware}) {exc}"
        problems.append(_at(loaded, fw_rel, message))
    except ValueError as exc:
        problems.append(_at(loaded, fw_rel, f"test firmware {seq.test_firmware.path!r}: {exc}"))

    installed = sorted({ep.name for ep in entry_points(group=PLUGIN_GROUP)})
    for group, i, step in seq.all_steps():
        if isinstance(step, PluginStep) and step.plugin not in installed:
            hint = _did_you_mean(step.plugin, installed)
            problems.append(
                _at(
                    loaded,
                    (group, i, "plugin"),
                    f"plugin {step.plugin!r} of step {step.name!r} is not installed (no entry "
                    f"point of that name in group {PLUGIN_GROUP}); installed: "
                    f"{', '.join(installed) or 'none'}{hint}",
                )
            )
    groups: dict[str, list[Any]] = {g: list(getattr(seq, g)) for g in ("setup", "steps", "cleanup")}
    for group, i, step in seq.all_steps():
        if isinstance(step, PromptStep) and step.image is not None:
            # The page shows the picture: resolved here, relative to the sequence file,
            # so a missing picture is refused at load, not found missing mid-panel.
            picture = (loaded.path.parent / step.image).resolve()
            if picture.suffix.lower() not in PROMPT_IMAGE_TYPES or not picture.is_file():
                problems.append(
                    _at(
                        loaded,
                        (group, i, "image"),
                        f"image {step.image!r} of step {step.name!r}: allowed is an existing "
                        f"{', '.join(sorted(PROMPT_IMAGE_TYPES))} file, relative to the "
                        f"sequence file (looked for {picture})",
                    )
                )
            else:
                groups[group][i] = step.model_copy(update={"image": str(picture)})
    _raise_first(problems)
    seq = seq.model_copy(update={g: tuple(steps) for g, steps in groups.items()})
    resolved = json.dumps(
        seq.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
    )
    return LoadedSequence(
        seq,
        loaded.path,
        loaded.sha256,
        firmware,
        firmware_sha,
        loaded.positions,
        image,
        variant=variant,
        resolved_sha256=hashlib.sha256(resolved.encode()).hexdigest(),
        includes=tuple((i.name, i.sha256) for i in found),
    )


def load_fixture(path: Path | str) -> LoadedFixture:
    loaded = load_document(path, Fixture)
    base_dir = loaded.path.parent.resolve()
    settings = _controller_settings(loaded)
    return LoadedFixture(
        loaded.model,
        loaded.path,
        loaded.sha256,
        base_dir,
        loaded.positions,
        loaded.data,
        settings,
        _instrument_settings(loaded),
    )


# What a built-in step asks of a role: the driver there must provide it.
_ROLE_PROTOCOL = {"supply": "PowerSupply", "dmm": "Dmm", "mux": "RelayMux", "shield": "ShieldBox"}


def _instrument_settings(loaded: Loaded[Fixture]) -> dict[str, tuple[str, Any]]:
    """Each role's driver is registered, provides what its role needs, and the settings
    beside it are its settings (each problem one line at its place in the file)."""
    from ate.instruments.registry import UnknownInstrument, get  # instruments import config

    found: dict[str, tuple[str, Any]] = {}
    for role, spec in loaded.model.instruments.items():
        at = ("instruments", role, "driver")
        try:
            driver = get(spec.driver)
        except UnknownInstrument as exc:
            raise InputError(loaded.path, str(exc), *loaded.positions.value(at)) from None
        wanted = _ROLE_PROTOCOL.get(role)
        if wanted is not None and wanted not in driver.provides:
            raise InputError(
                loaded.path,
                f"role {role!r} needs a {wanted}; driver {spec.driver!r} provides "
                f"{', '.join(driver.provides)}",
                *loaded.positions.value(at),
            )
        data = {k: v for k, v in (spec.model_extra or {}).items()}
        try:
            found[role] = (spec.driver, driver.settings.model_validate(data))
        except ValidationError as exc:
            raise validation_error_at(
                loaded.path, loaded.positions, ("instruments", role), driver.settings, data, exc
            ) from None
    return found


def _controller_settings(loaded: Loaded[Fixture]) -> Any:
    """The controller driver is registered, has the port it needs, and its options are
    its settings (each problem one line at its place in the fixture file)."""
    from ate.drivers.registry import UnknownDriver, get  # drivers import ate.config

    ctrl = loaded.model.controller
    try:
        driver = get(ctrl.driver)
    except UnknownDriver as exc:
        at = loaded.positions.value(("controller", "driver"))
        raise InputError(loaded.path, str(exc), *at) from None
    if driver.needs_port and ctrl.port is None:
        raise InputError(
            loaded.path,
            f"controller driver {ctrl.driver!r} ({driver.binds_to}) needs a port",
            *loaded.positions.value(("controller", "driver")),
        )
    if driver.settings is None:
        if ctrl.options:
            raise InputError(
                loaded.path,
                f"controller driver {ctrl.driver!r} takes no options",
                *loaded.positions.key(("controller", "options")),
            )
        return None
    where: NodePath = ("controller", "options")
    try:
        return driver.settings.model_validate(ctrl.options)
    except ValidationError as exc:
        data = loaded.data["controller"].get("options", {}) if loaded.data else {}
        raise validation_error_at(
            loaded.path, loaded.positions, where, driver.settings, data, exc
        ) from None


def validation_error_at(
    path: Path,
    positions: Positions,
    prefix: NodePath,
    model: type[BaseModel],
    data: Any,
    exc: ValidationError,
) -> InputError:
    """One line for a ValidationError of `model` over `data`, a part of a document (at
    `prefix` in `path`) checked on its own, e.g. a fixture slot's simulated faults."""
    n = len(prefix)
    sub = Positions(
        {p[n:]: pos for p, pos in positions.values.items() if p[:n] == prefix},
        {p[n:]: pos for p, pos in positions.keys.items() if p[:n] == prefix},
    )
    if () not in sub.values:
        sub.values[()] = positions.value(prefix)
    err = _validation_error(path, model, data, sub, exc)
    where = ".".join(str(p) for p in prefix)
    return InputError(err.path, f"{where}: {err.message}", err.line, err.column)


def check_compatible(seq: LoadedSequence, fix: LoadedFixture) -> None:
    """Refuse a sequence whose steps `use` resources the fixture does not declare."""
    resources = fix.model.resources
    declared = ", ".join(resources) or "none"
    problems: list[InputError] = []
    for group, i, step in seq.model.all_steps():
        for j, name in enumerate(step.uses):
            if name not in resources:
                line, column = seq.positions.value((group, i, "uses", j))
                problems.append(
                    InputError(
                        seq.path,
                        f"step {step.name!r} uses {name!r}, which fixture {fix.model.fixture!r} "
                        f"({fix.path}) does not declare; its resources: {declared}"
                        f"{_did_you_mean(name, list(resources))}",
                        line,
                        column,
                    )
                )
        if isinstance(step, RfStepBase) and (problem := _golden_problem(step, fix)) is not None:
            where = (group, i, "golden") if step.golden is not None else (group, i, "type")
            line, column = seq.positions.value(where)
            problems.append(InputError(seq.path, problem, line, column))
    _raise_first(problems)


def _golden_problem(step: RfStepBase, fix: LoadedFixture) -> str | None:
    """Why the RF step cannot have a golden board in this fixture, or None."""
    boards = fix.model.golden_boards()
    where = f"fixture {fix.model.fixture!r} ({fix.path})"
    if step.golden is None:
        if len(boards) == 1:
            return None
        if not boards:
            return f"step {step.name!r} ({step.type}) needs a golden board; {where} has none"
        return (
            f"step {step.name!r} ({step.type}): {where} has golden boards {', '.join(boards)}; "
            "say which with golden: NAME"
        )
    if step.golden in boards:
        return None
    return (
        f"step {step.name!r} ({step.type}) names golden board {step.golden!r}, which {where} "
        f"does not have; its golden boards: {', '.join(boards) or 'none'}"
    )


@dataclass(frozen=True)
class LoadedStation:
    """A station file with everything it names loaded and checked; paths absolute."""

    model: Station
    path: Path
    sha256: str
    fixtures: tuple[LoadedFixture, ...]
    triggers: tuple[str, ...]  # per fixture, in order
    sequence: LoadedSequence
    profile: Path | None
    state: Path
    outputs: Path


def load_station(
    path: Path | str, *, sequence: Path | None = None, profile: Path | None = None
) -> LoadedStation:
    """Load a station file and the fixtures and sequence it names (each problem one
    InputError: a missing file points at the station file's line, a bad one at its own).
    `sequence` and `profile` (absolute paths) stand in for the ones the file names: what
    an engineer loaded at the operator's page."""
    loaded = load_document(path, Station)
    st = loaded.model
    base = loaded.path.parent.resolve()

    def named(rel: str, where: NodePath, what: str) -> Path:
        target = (base / rel).resolve()
        if not target.is_file():
            line, column = loaded.positions.value(where)
            raise InputError(
                loaded.path,
                f"{what} {rel!r} not found (looked for {target}; paths are relative to the "
                "station file)",
                line,
                column,
            )
        return target

    fixtures = []
    for i, f in enumerate(st.fixtures):
        fixtures.append(load_fixture(named(f.file, ("fixtures", i, "file"), "fixture file")))
    sequence_path = sequence or named(st.sequence, ("sequence",), "sequence file")
    loaded_sequence = load_sequence(sequence_path, st.variant)
    for fix in fixtures:
        check_compatible(loaded_sequence, fix)
    names: dict[str, int] = {}
    for i, fix in enumerate(fixtures):
        if fix.model.fixture in names:
            line, column = loaded.positions.value(("fixtures", i, "file"))
            raise InputError(
                loaded.path,
                f"fixtures {names[fix.model.fixture] + 1} and {i + 1} are both named "
                f"{fix.model.fixture!r}; records and panels are keyed by fixture name",
                line,
                column,
            )
        names[fix.model.fixture] = i
    if profile is None and st.profile:
        profile = named(st.profile, ("profile",), "profile")
    if st.page is not None and st.page.tls is not None:
        named(st.page.tls.cert, ("page", "tls", "cert"), "TLS certificate")
        named(st.page.tls.key, ("page", "tls", "key"), "TLS key")
    return LoadedStation(
        st,
        loaded.path,
        loaded.sha256,
        tuple(fixtures),
        tuple(f.trigger for f in st.fixtures),
        loaded_sequence,
        profile,
        (base / st.state).resolve(),
        (base / st.outputs).resolve(),
    )


# --- helpers ----------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        return read_file(path, YAML_MAX)
    except FileRefused as exc:
        raise InputError(path, str(exc)) from None


def _at(loaded: Loaded[Sequence], rel: NodePath, message: str) -> InputError:
    line, column = loaded.positions.value(rel)
    return InputError(loaded.path, message, line, column)


def _raise_first(problems: list[InputError]) -> None:
    """Raise the first problem in document order, counting the rest."""
    if not problems:
        return
    problems.sort(key=lambda e: (e.line or 0, e.column or 0))
    first = problems[0]
    if len(problems) > 1:
        raise InputError(
            first.path, _and_more(first.message, len(problems) - 1), first.line, first.column
        )
    raise first


def _and_more(message: str, more: int) -> str:
    return f"{message} (and {more} more problem{'s' if more > 1 else ''})"


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- pydantic errors -> one plain line ----------------------------------------------------


def _validation_error(
    path: Path, model: type[BaseModel], data: Any, positions: Positions, exc: ValidationError
) -> InputError:
    errors = exc.errors(include_url=False)
    # Pydantic counts a tuple's items after validation, so one bad step also gives
    # "steps: at least 1 item, got 0"; the bad step is the real problem.
    errors = [
        e
        for e in errors
        if e["type"] != "too_short"
        or not any(o["loc"][: len(e["loc"])] == e["loc"] and o is not e for o in errors)
    ]
    located: list[tuple[tuple[Position, int], Position, str]] = []
    for err in errors:
        where, message = _explain(model, data, positions, err)
        order = (where, 0)
        if err["type"] == "missing":
            # Sort a missing field after everything inside its mapping: an unknown field in
            # the same mapping (`limts:` for `limits:`) explains it better.
            parent, _, _ = _data_path(err["loc"][:-1], data)
            order = (_end_of(positions, parent, where), 1)
        located.append((order, where, message))
    located.sort(key=lambda item: item[0])  # document order
    _, (line, column), message = located[0]
    if len(located) > 1:
        message = _and_more(message, len(located) - 1)
    return InputError(path, message, line, column)


def _end_of(positions: Positions, mapping: NodePath, default: Position) -> Position:
    """The last position inside `mapping` (its last entry's deepest value)."""
    n = len(mapping)
    inside = [pos for p, pos in positions.values.items() if len(p) > n and p[:n] == mapping]
    return max(inside, default=default)


def _explain(
    model: type[BaseModel], data: Any, positions: Positions, err: ErrorDetails
) -> tuple[Position, str]:
    kind = err["type"]
    ctx = err.get("ctx", {})
    value = err.get("input")
    path, on_key, tags = _data_path(err["loc"], data)

    if kind == "missing":
        # The field is not in the data, so its position is that of the mapping lacking it.
        field = err["loc"][-1]
        return positions.value(path[:-1]), (
            f"missing required field {field!r} {_where(path[:-1], data)}"
            f"{_field_hint(_type_at(model, tags, path))}"
        )
    if kind == "extra_forbidden":
        owner = _model_at(model, tags, path[:-1])
        allowed = _field_names(owner) if owner else []
        message = f"unknown field {path[-1]!r} {_where(path[:-1], data)}"
        if allowed:
            message += f"; allowed: {', '.join(allowed)}{_did_you_mean(str(path[-1]), allowed)}"
        return positions.key(path), message
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        disc = str(ctx.get("discriminator", "'type'")).strip("'")
        allowed = sorted(_union_tags(_type_at(model, tags, path)))
        noun = "step type" if path[:1] in (("setup",), ("steps",), ("cleanup",)) else disc
        if not isinstance(value, dict) or disc not in value:
            return positions.value(path), (
                f"missing field {disc!r} {_where(path, data)}; "
                f"allowed {noun}s: {', '.join(allowed)}"
            )
        tag = value[disc]
        return positions.value((*path, disc)), (
            f"unknown {noun} {tag!r}; allowed: {', '.join(allowed)}"
            f"{_did_you_mean(str(tag), allowed)}"
        )

    error = ctx.get("error")
    if isinstance(error, FieldError) and _exists(data, (*path, *error.at)):
        path = (*path, *error.at)  # a model validator told which part is wrong
    if not on_key and _exists(data, path) and kind not in ("value_error", "assertion_error"):
        # What the file says, not what a before-validator made of it ('2min', not 120.0).
        value = _child_at(data, path)
    subject = _subject(path, data, on_key)
    problem = _problem(kind, ctx, err["msg"], value)
    pos = positions.key(path) if on_key else positions.value(path)
    return pos, f"{subject}: {problem}" if subject else problem


def _problem(kind: str, ctx: dict[str, Any], msg: str, value: Any) -> str:
    """Pydantic's error in words for a test engineer."""
    got = _show(value)
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", msg.removeprefix("Value error, ")))
    if kind in ("int_type", "int_parsing", "int_from_float"):
        hint = ""
        if isinstance(value, str) and value.strip().isdigit():
            hint = "; write it without quotes"
        elif isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]+", value.removeprefix("0x")):
            hint = "; write hex numbers as 0x68"
        return f"expected a whole number, got {got}{hint}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"expected a number, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind == "string_type":
        if isinstance(value, (int, float, bool)):
            return f"expected text, got {got}; put it in quotes to keep it text"
        return f"expected text, got {got}"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'|(-?\d+)", str(ctx.get("expected", "")))
        names = [a or b for a, b in allowed]
        return f"{got} is not allowed; allowed: {', '.join(names)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {
            "greater_than_equal": ("at least", "ge"),
            "greater_than": ("more than", "gt"),
            "less_than_equal": ("at most", "le"),
            "less_than": ("less than", "lt"),
        }[kind]
        limit = ctx.get(bound[1])
        if isinstance(limit, float):
            limit = f"{limit:g}"  # 600, not 600.0
        return f"must be {bound[0]} {limit}, got {got}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"{got} is not allowed: {_PATTERNS.get(pattern, f'must match {pattern}')}"
    if kind == "string_too_long":
        return f"too long: at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"too short: at least {ctx.get('min_length')} characters"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"
    if kind == "too_long":
        return f"allows at most {ctx.get('max_length')} item(s), got {ctx.get('actual_length')}"
    if kind in ("tuple_type", "list_type", "sequence_type", "set_type"):
        return f"expected a list, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return f"expected a mapping of 'key: value' entries, got {got}"
    return msg  # rare kinds: pydantic's own sentence is the best we have


_PATTERNS = {
    r"^[A-Za-z0-9_.-]+$": "use only letters, digits, '_', '.' and '-'",
    r"^[A-Za-z0-9_]+$": "use only letters, digits and '_'",
    r"^([0-9a-fA-F]{2})+$": "write bytes as pairs of hex digits, e.g. '9f000000' "
    "(quoted, so that YAML keeps it text)",
    r"^/dev/serial/by-path/.+": "must start with /dev/serial/by-path/",
    r"^/dev/serial/by-id/.+": "must start with /dev/serial/by-id/",
    r"^(socket|rfc2217)://.+": "must start with socket:// or rfc2217://",
}


def _data_path(loc: tuple[int | str, ...], data: Any) -> tuple[NodePath, bool, list[str]]:
    """Pydantic's loc as a path into the YAML data, whether it names a key, and the union
    tags met on the way (pydantic puts the tag of a discriminated union into loc, e.g.
    ('steps', 3, 'supply_current', 'limits'); the data has no such level)."""
    path: list[Hashable] = []
    tags: list[str] = []
    node = data
    tag_skipped: set[int] = set()
    for element in loc:
        if element == "[key]":  # a dict key failed validation: point at the key
            return tuple(path), True, tags
        if isinstance(node, dict):
            if node.get("type") == element and id(node) not in tag_skipped:
                tag_skipped.add(id(node))
                tags.append(str(element))
                continue
            key = _match_key(node, element)
            if key is _MISSING:
                path.append(element)  # a missing or unknown field: the caller knows
                node = None
                continue
            path.append(key)
            node = node[key]
        elif isinstance(node, list) and isinstance(element, int) and 0 <= element < len(node):
            path.append(element)
            node = node[element]
        elif node is None and path:
            break  # below a missing field: nothing to point at
        else:
            continue  # a level pydantic adds (a union member's name): not in the data
    return tuple(path), False, tags


_MISSING = object()


def _match_key(node: dict[Any, Any], element: int | str) -> Any:
    if element in node:
        return element
    for key in node:  # pydantic reports coerced keys as strings ('1' for YAML's 1)
        if str(key) == str(element):
            return key
    return _MISSING


def _child_at(data: Any, path: NodePath) -> Any:
    node = data
    for element in path:
        node = _child(node, element)
    return node


def _exists(data: Any, path: NodePath) -> bool:
    node = data
    for element in path:
        node = _child(node, element)
        if node is _MISSING:
            return False
    return True


def _child(node: Any, element: Hashable) -> Any:
    if isinstance(node, dict):
        return node.get(element, _MISSING)
    if isinstance(node, list) and isinstance(element, int) and 0 <= element < len(node):
        return node[element]
    return _MISSING


def _where(path: NodePath, data: Any) -> str:
    """The mapping at `path` in words: "in step 'idle'", "in 'limits' of step 'idle'"."""
    head, rest = _context(path, data)
    top = head == "the top level"
    if not rest:
        return "at the top level" if top else f"in {head}"
    return f"in '{_dotted(rest)}'" if top else f"in '{_dotted(rest)}' of {head}"


def _subject(path: NodePath, data: Any, on_key: bool) -> str:
    """The field a value error is about, in words: "limits.low in step 'idle'"."""
    head, rest = _context(path, data)
    top = head == "the top level"
    if on_key and rest:
        name = f"key {rest[-1]!r}" + (f" of {_dotted(rest[:-1])}" if rest[:-1] else "")
    elif rest:
        name = _dotted(rest)
    else:
        return "" if top else head
    return name if top else f"{name} in {head}"


def _context(path: NodePath, data: Any) -> tuple[str, NodePath]:
    """Split `path` into the step or slot it is inside (named) and the rest."""
    groups = ("setup", "steps", "cleanup", "slots")
    if len(path) >= 2 and path[0] in groups and isinstance(path[1], int):
        entry = data[path[0]][path[1]] if _exists(data, path[:2]) else None
        label = "slot" if path[0] == "slots" else "name"
        ident = entry.get(label) if isinstance(entry, dict) else None
        noun = {"setup": "setup step", "cleanup": "cleanup step"}.get(path[0], path[0][:-1])
        if path[2:] == (label,):  # "slot in slot 2" would say nothing: count entries
            return f"{noun} entry {path[1] + 1}", path[2:]
        if isinstance(ident, str):
            return f"{noun} {ident!r}", path[2:]
        if isinstance(ident, int) and not isinstance(ident, bool):
            return f"{noun} {ident}", path[2:]
        return f"{noun} {path[1] + 1}", path[2:]
    return "the top level", path


def _dotted(path: NodePath) -> str:
    out = ""
    for element in path:
        out += f"[{element}]" if isinstance(element, int) else f".{element}"
    return out.lstrip(".")


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return repr(value)


# --- which model lives at a path (for "allowed: ..." lists) ------------------------------


def _model_at(model: type[BaseModel], tags: list[str], path: NodePath) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path`, following the union `tags`."""
    tp = _type_at(model, tags, path)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _type_at(model: type[BaseModel], tags: list[str], path: NodePath) -> Any:
    """The (unwrapped) type that validates the value at `path`, or None if unknown."""
    pending = list(tags)
    tp: Any = model
    for element in path:
        tp = _choose(_unwrap(tp), pending)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if element in (n, f.alias)), None)
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is tuple:
            args = get_args(tp)
            if len(args) == 2 and args[1] is Ellipsis:
                tp = args[0]
            elif isinstance(element, int) and element < len(args):
                tp = args[element]
            else:
                return None
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
    return _choose(_unwrap(tp), pending)


def _field_hint(tp: Any) -> str:
    """What a missing field may hold, when that is a short list."""
    if get_origin(tp) is Literal:
        return f" (one of: {', '.join(str(a) for a in get_args(tp))})"
    tags = _union_tags(tp)
    return f" (one of: {', '.join(sorted(tags))})" if tags else ""


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and `| None`."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        if get_origin(tp) in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _choose(tp: Any, pending: list[str]) -> Any:
    """For a discriminated union, the member whose `type` literal is the next tag."""
    if get_origin(tp) not in (Union, types.UnionType) or not pending:
        return tp
    tag = pending[0]
    for member in get_args(tp):
        member = _unwrap(member)
        if tag in _union_tags(member):
            pending.pop(0)
            return member
    return tp


def _union_tags(tp: Any) -> list[str]:
    """The `type` literals of a model, or of every member of a union of models."""
    if get_origin(tp) in (Union, types.UnionType):
        return [t for member in get_args(tp) for t in _union_tags(_unwrap(member))]
    if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return []
    field = tp.model_fields.get("type")
    if field is None or get_origin(field.annotation) is not Literal:
        return []
    return [str(a) for a in get_args(field.annotation)]


def _field_names(model: type[BaseModel]) -> list[str]:
    """What YAML may say: each field's alias if it has one, else its name."""
    return [f.alias or name for name, f in model.model_fields.items()]
