"""Compile a validated Sequence into a run plan: executors bound, defaults applied.

Compiled once per panel so the per-step path does no lookups, parsing or validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ate.config import when as conditions
from ate.config.sequence import Group, PluginStep, RfStepBase, Sequence
from ate.config.when import Condition
from ate.sequence.steps import EXECUTORS, Executor, plugin_executor


class PlanError(Exception):
    """A sequence that validated but cannot run here (e.g. a plugin not installed)."""


@dataclass(frozen=True, slots=True)
class PlanStep:
    index: int  # in run order over the groups: setup, steps, cleanup
    name: str
    type: str
    timeout: float
    retries: int
    uses: tuple[str, ...]  # sorted: acquiring in one global order cannot deadlock
    run: Executor
    spec: Any
    group: Group = "steps"
    needs: tuple[str, ...] = ()
    when: Condition | None = None
    on_abort: bool = True  # a cleanup step that also runs when the panel is aborted
    panel: bool = False  # run once per panel, shared by the slots (scope: panel)
    golden: str | None = None  # an RF step's golden board (resolved; it is in uses too)


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    version: str
    chip: str
    stop_on_failure: bool
    steps: tuple[PlanStep, ...]
    firmware_version: str | None = None
    # Steps holding shared instruments may run out of order to keep them busy (opt-in).
    resource_aware: bool = False
    abort_deadline: float = 2.0  # for cleanup steps when the panel is aborted
    variant: str | None = None  # the product variant (unit.variant in `when`)

    def group(self, name: Group) -> list[PlanStep]:
        return [s for s in self.steps if s.group == name]

    @property
    def resources(self) -> set[str]:
        return {r for step in self.steps for r in step.uses}

    @property
    def golden_boards(self) -> set[str]:
        """The golden boards the host drives for RF steps."""
        return {step.golden for step in self.steps if step.golden is not None}


def load_plugin(name: str) -> Executor:
    found = entry_points(group="ate.steps", name=name)
    if not found:
        raise PlanError(f"plugin step {name!r} is not installed (entry point group ate.steps)")
    fn = next(iter(found)).load()
    return plugin_executor(fn)


def compile_plan(
    seq: Sequence, variant: str | None = None, golden_default: str | None = None
) -> Plan:
    """`golden_default`: the fixture's only golden board, which an RF step that names none
    holds (ate.config.fixture.Fixture.default_golden)."""
    steps = []
    for index, (group, _, spec) in enumerate(seq.all_steps()):
        uses = set(spec.uses)
        golden = (spec.golden or golden_default) if isinstance(spec, RfStepBase) else None
        if golden is not None:
            uses.add(golden)
        run = load_plugin(spec.plugin) if isinstance(spec, PluginStep) else EXECUTORS[spec.type]
        steps.append(
            PlanStep(
                index=index,
                name=spec.name,
                type=spec.type,
                timeout=spec.timeout if spec.timeout is not None else seq.defaults.timeout,
                retries=spec.retries if spec.retries is not None else seq.defaults.retries,
                uses=tuple(sorted(uses)),
                run=run,
                spec=spec,
                group=group,
                needs=spec.needs,
                when=conditions.parse(spec.when) if spec.when is not None else None,
                on_abort=spec.on_abort,
                panel=spec.scope == "panel",
                golden=golden,
            )
        )
    return Plan(
        name=seq.sequence,
        version=seq.version,
        chip=seq.chip,
        stop_on_failure=seq.on_failure == "stop",
        steps=tuple(steps),
        firmware_version=seq.test_firmware.version,
        resource_aware=seq.schedule == "resource_aware",
        abort_deadline=seq.abort_deadline,
        variant=variant,
    )
