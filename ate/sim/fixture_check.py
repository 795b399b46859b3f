"""Check a fixture's `simulation:` section before anything runs: board files, slot
numbers, per-slot faults and arrival eFuses, replayed slot logs, the preflash image.
Every problem is one InputError naming the fixture file (or the board file or slot log)
with line and column, so `ate validate` finds what would otherwise stop a run.

May import ate.config, ate.sim.board, ate.sim.replay and ate.sim.rom.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ate.config.errors import InputError
from ate.config.files import IMAGE_MAX, SLOT_LOG_MAX, FileRefused, MiB, check_file, read_file
from ate.config.loader import (
    Loaded,
    LoadedFixture,
    load_document,
    validation_error_at,
)
from ate.config.yaml_source import NodePath
from ate.sim.board import BoardSpec, Faults
from ate.sim.replay import load_slot_log

SIM: NodePath = ("simulation",)
STATE_FILE_MAX = 64 * MiB  # a kept unit's flash (at most 32 MiB of sectors) or eFuses


def check_simulation(fix: LoadedFixture) -> None:
    """Raise the first problem of the fixture's simulation section, if it has one."""
    sim = fix.model.simulation
    if sim is None:
        return

    def at(rel: NodePath, message: str, *, key: bool = False) -> InputError:
        path = (*SIM, *rel)
        line, column = fix.positions.key(path) if key else fix.positions.value(path)
        return InputError(fix.path, message, line, column)

    boards: dict[str, Loaded[BoardSpec]] = {}

    def board(rel: str, where: NodePath) -> Loaded[BoardSpec]:
        if rel not in boards:
            try:
                boards[rel] = load_document(fix.base_dir / rel, BoardSpec)
            except InputError as exc:
                if exc.line is not None:
                    raise  # inside the board file: its own file, line and column
                field = ".".join(str(p) for p in (*SIM, *where))
                raise at(where, f"{field} {rel!r}: {exc.message}") from None
        return boards[rel]

    main = board(sim.board, ("board",))
    numbers = {s.slot for s in fix.model.slots}
    for n, plan in sim.slots.items():
        if n not in numbers:
            raise at(
                ("slots", n),
                f"simulation.slots has slot {n}, which the fixture does not have; its "
                f"slots: {', '.join(str(x) for x in sorted(numbers))}",
                key=True,
            )
        spec = board(plan.board, ("slots", n, "board")) if plan.board else main
        if plan.faults:
            _check_faults(fix, n, spec.model, plan.faults)
        if plan.efuses:
            _check_efuses(fix, n, spec.model.chip, plan.efuses, at)
        if plan.replay is not None:
            log = fix.base_dir / plan.replay
            try:
                check_file(log, SLOT_LOG_MAX)
            except FileRefused as exc:
                raise at(
                    ("slots", n, "replay"),
                    f"simulation.slots.{n}.replay {plan.replay!r} ({log}) {exc}",
                ) from None
            load_slot_log(log)  # what is wrong inside: the log's own file and line
    if sim.preflash is not None:
        try:
            read_file(fix.base_dir / sim.preflash, IMAGE_MAX)
        except FileRefused as exc:
            raise at(
                ("preflash",),
                f"simulation.preflash {sim.preflash!r} ({fix.base_dir / sim.preflash}) {exc}",
            ) from None
    if sim.state_dir is not None:
        state = fix.base_dir / sim.state_dir
        if state.exists() and not state.is_dir():
            raise at(("state_dir",), f"simulation.state_dir {state} exists and is not a folder")
        for s in fix.model.slots:  # the units kept from earlier runs
            for name in ("flash.bin", "efuse.bin"):
                kept = state / f"slot{s.slot}" / name
                try:
                    check_file(kept, STATE_FILE_MAX)
                except FileRefused as exc:
                    if str(exc) != "no such file":  # a new unit: made on the first run
                        raise at(("state_dir",), f"simulation.state_dir: {kept} {exc}") from None


def _check_faults(fix: LoadedFixture, slot: int, spec: BoardSpec, faults: dict[str, Any]) -> None:
    # As BoardSpec.with_faults does at run time: the slot's keys replace the board's.
    merged = {**spec.faults.model_dump(), **faults}
    try:
        Faults.model_validate(merged)
    except ValidationError as exc:
        raise validation_error_at(
            fix.path, fix.positions, (*SIM, "slots", slot, "faults"), Faults, merged, exc
        ) from None


def _check_efuses(
    fix: LoadedFixture, slot: int, chip: str, efuses: dict[str, int], at: Any
) -> None:
    from ate.sim.rom.chips import get_profile
    from ate.sim.rom.efuses import EfuseBank

    bank = EfuseBank(get_profile(chip))
    for name, value in efuses.items():
        try:
            bank.burn(name, value)
        except (ValueError, KeyError) as exc:
            raise at(
                ("slots", slot, "efuses", name),
                f"simulation.slots.{slot}.efuses.{name}: {exc}",
                key=True,
            ) from None
