"""Which unit sits in each slot of each panel of a nightly run, drawn from the seed.

Owns `PanelDraw`/`SlotDraw` and `draw_panel`: panel `index` of seed `seed` is the same on
every machine and in every run, whatever the other panels are, so one panel can be
replayed alone (`ate nightly --seed S --panel INDEX`). Imports ate.nightly.faults only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ate.nightly.faults import GOOD, PANEL_FAULTS, SLOT_FAULTS, PanelFault, SlotFault

GOOD_SHARE = 0.3  # of slots hold a good unit; the rest a fault, uniformly from the library
PANEL_FAULT_SHARE = 0.2  # of panels suffer a panel-wide fault besides


@dataclass(frozen=True)
class SlotDraw:
    slot: int
    fault: SlotFault
    nth: int | None = None  # the power cut's occurrence, for a fault with one


@dataclass(frozen=True)
class PanelDraw:
    seed: int
    index: int
    sim_seed: int  # the simulated fixture's seed: the units' MACs and spreads
    slots: tuple[SlotDraw, ...]
    panel_fault: PanelFault | None = None
    trigger: int | None = None  # the panel fault's nth step / checkpoint

    @property
    def replay(self) -> str:
        """The command that runs this panel alone."""
        return f"ate nightly --seed {self.seed} --panel {self.index}"


def draw_panel(
    seed: int,
    index: int,
    slots: int,
    *,
    library: tuple[SlotFault, ...] = SLOT_FAULTS,
    panel_faults: tuple[PanelFault, ...] = PANEL_FAULTS,
) -> PanelDraw:
    rng = random.Random(f"ate-nightly/{seed}/{index}")
    drawn = []
    for slot in range(1, slots + 1):
        fault = GOOD if not library or rng.random() < GOOD_SHARE else rng.choice(library)
        nth = rng.randint(fault.cut.first, fault.cut.last) if fault.cut else None
        drawn.append(SlotDraw(slot, fault, nth))
    panel_fault = trigger = None
    if panel_faults and rng.random() < PANEL_FAULT_SHARE:
        panel_fault = rng.choice(panel_faults)
        trigger = rng.randint(panel_fault.first, panel_fault.last)
    return PanelDraw(
        seed=seed,
        index=index,
        sim_seed=rng.randrange(1, 2**31),
        slots=tuple(drawn),
        panel_fault=panel_fault,
        trigger=trigger,
    )
