"""A unit's provisioning state from first test to the end of its life, and the one table of
moves between states (h11's way: (state, event) -> next state, and `apply`, which refuses
anything else with an error naming the state, the event and what is allowed).

The factory half is a line: new, tested, certified, proven, serial, written, locking,
locked; the station reports how far a unit got (an event per factory state) and may skip
ahead (a record says "locked" for a unit the line database saw only as new). After the
factory, `ate unit` moves a unit: locked -> shipped -> rma -> shipped again or scrapped;
a unit still in the factory may be scrapped; any unit holding a certificate (certified
and after) may be revoked. scrapped and revoked are final.

The line database (ate.store), its migration and the provisioning flow (ate.provision) all
read their states and moves from here. Imports nothing from the rest of ate.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class ProvState(StrEnum):
    NEW = "new"
    TESTED = "tested"
    CERTIFIED = "certified"
    PROVEN = "proven"
    SERIAL = "serial"
    WRITTEN = "written"
    LOCKING = "locking"
    LOCKED = "locked"
    SHIPPED = "shipped"
    RMA = "rma"
    SCRAPPED = "scrapped"
    REVOKED = "revoked"


class ProvEvent(StrEnum):
    # The factory's progress reports: "the unit got this far" (named after the state).
    TESTED = "tested"
    CERTIFIED = "certified"
    PROVEN = "proven"
    SERIAL = "serial"
    WRITTEN = "written"
    LOCKING = "locking"
    LOCKED = "locked"
    # What people do to a unit after (or instead of) the factory's end: `ate unit VERB`.
    SHIP = "ship"
    RMA = "rma"
    SCRAP = "scrap"
    REVOKE = "revoke"


S, E = ProvState, ProvEvent

# The factory's states in the order the flow goes; a unit never moves back along it.
FACTORY: tuple[ProvState, ...] = (
    S.NEW,
    S.TESTED,
    S.CERTIFIED,
    S.PROVEN,
    S.SERIAL,
    S.WRITTEN,
    S.LOCKING,
    S.LOCKED,
)
# A certificate exists from `certified` on (the CA signed the CSR), so these may be revoked.
HOLDS_CERTIFICATE: frozenset[ProvState] = frozenset(FACTORY[2:]) | {S.SHIPPED, S.RMA}
FINAL: frozenset[ProvState] = frozenset({S.SCRAPPED, S.REVOKED})
LIFECYCLE_EVENTS: tuple[ProvEvent, ...] = (E.SHIP, E.RMA, E.SCRAP, E.REVOKE)


def _progress_event(state: ProvState) -> ProvEvent:
    return ProvEvent(state.value)


def _build() -> dict[tuple[ProvState, ProvEvent], ProvState]:
    table: dict[tuple[ProvState, ProvEvent], ProvState] = {}
    # Factory progress: forward along the line, skipping allowed (a later report says more).
    for i, here in enumerate(FACTORY):
        for there in FACTORY[i + 1 :]:
            table[here, _progress_event(there)] = there
    # A board may be scrapped anywhere in the factory (a bad board, a dropped one).
    for here in FACTORY:
        table[here, E.SCRAP] = S.SCRAPPED
    table[S.LOCKED, E.SHIP] = S.SHIPPED
    table[S.SHIPPED, E.RMA] = S.RMA  # the customer sent it back
    table[S.RMA, E.SHIP] = S.SHIPPED  # repaired or found good: out again
    table[S.RMA, E.SCRAP] = S.SCRAPPED
    for here in HOLDS_CERTIFICATE:
        table[here, E.REVOKE] = S.REVOKED
    return table


# The one table of moves. Everything not in it is refused.
TRANSITIONS: Mapping[tuple[ProvState, ProvEvent], ProvState] = MappingProxyType(_build())
STATES: tuple[str, ...] = tuple(s.value for s in ProvState)


class IllegalTransition(ValueError):
    """`event` is not allowed in `state`; the message names both and what is allowed."""

    def __init__(self, state: ProvState, event: ProvEvent, subject: str = "") -> None:
        self.state = state
        self.event = event
        self.allowed = allowed(state)
        who = f"unit {subject} " if subject else "a unit "
        if state in FINAL:
            tail = f"{state.value} is final: nothing may follow"
        else:
            tail = "allowed: " + ", ".join(e.value for e in self.allowed)
        super().__init__(f"{who}in state {state.value} cannot take {event.value}; {tail}")


def state_of(text: str) -> ProvState:
    """The state named `text`; ValueError listing the states otherwise."""
    try:
        return ProvState(text)
    except ValueError:
        raise ValueError(
            f"unknown provisioning state {text!r}; the states are {', '.join(STATES)}"
        ) from None


def allowed(state: ProvState) -> tuple[ProvEvent, ...]:
    """The events `state` accepts, in the events' order."""
    return tuple(e for e in ProvEvent if (state, e) in TRANSITIONS)


def apply(state: ProvState, event: ProvEvent, subject: str = "") -> ProvState:
    """The state after `event`; IllegalTransition when the table has no such move."""
    nxt = TRANSITIONS.get((state, event))
    if nxt is None:
        raise IllegalTransition(state, event, subject)
    return nxt


def factory_rank(state: ProvState) -> int:
    """The position of a factory state along the line; ValueError for the others."""
    return FACTORY.index(state)


def reached(state: ProvState, target: ProvState) -> bool:
    """Whether a unit in `state` is already at or past the factory state `target`: the
    factory's report of `target` then changes nothing. Every state after the factory
    (shipped, rma, scrapped, revoked) is past all of it: a record that arrives late (a
    spool catching up) never pulls a unit back into the factory."""
    if state not in FACTORY:
        return True
    return factory_rank(state) >= factory_rank(target)


def advance(state: ProvState, target: ProvState, subject: str = "") -> ProvState:
    """The factory reports the unit got as far as `target`: the state afterwards (the
    same when it was already there or past). A target that is not a factory state is
    a bug: ValueError."""
    if target not in FACTORY:
        raise ValueError(f"{target.value} is not a factory state; use `ate unit` to move units")
    if reached(state, target):
        return state
    return apply(state, _progress_event(target), subject)
