"""The one table of provisioning moves: random event sequences never reach a state the
table does not name, refusals change nothing, final states stay final, and the factory
half only ever moves forward."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.model.prov_state import (
    FACTORY,
    FINAL,
    HOLDS_CERTIFICATE,
    TRANSITIONS,
    IllegalTransition,
    ProvEvent,
    ProvState,
    advance,
    allowed,
    apply,
    factory_rank,
    reached,
)

events = st.lists(st.sampled_from(list(ProvEvent)), max_size=40)


@settings(max_examples=400, derandomize=True)
@given(start=st.sampled_from(list(ProvState)), seq=events)
def test_random_events_never_leave_the_table(start: ProvState, seq: list[ProvEvent]) -> None:
    state = start
    for event in seq:
        before = state
        try:
            state = apply(state, event)
        except IllegalTransition as exc:
            assert (before, event) not in TRANSITIONS
            assert exc.state is before and exc.event is event
            assert exc.allowed == allowed(before)
            assert before.value in str(exc) and event.value in str(exc)
            continue
        assert (before, event) in TRANSITIONS and isinstance(state, ProvState)
        assert before not in FINAL  # nothing ever leaves a final state
        if before in FACTORY and state in FACTORY:
            assert factory_rank(state) > factory_rank(before)  # the factory goes forward
        if state in FACTORY:
            assert before in FACTORY  # nothing re-enters the factory
        if state is ProvState.REVOKED:
            assert before in HOLDS_CERTIFICATE  # only a certificate can be revoked


@settings(max_examples=200, derandomize=True)
@given(final=st.sampled_from(sorted(FINAL)), seq=events)
def test_final_states_stay_final(final: ProvState, seq: list[ProvEvent]) -> None:
    assert allowed(final) == ()
    for event in seq:
        with pytest.raises(IllegalTransition, match=rf"{final.value} is final"):
            apply(final, event)


@settings(max_examples=300, derandomize=True)
@given(start=st.sampled_from(list(ProvState)), targets=st.lists(st.sampled_from(FACTORY[1:])))
def test_factory_reports_never_move_a_unit_back(start: ProvState, targets: list[ProvState]) -> None:
    state = start
    for target in targets:
        after = advance(state, target)
        if state in FACTORY:
            assert factory_rank(after) == max(factory_rank(state), factory_rank(target))
        else:
            assert after is state  # a late record never pulls a unit back into the factory
        assert reached(after, target)
        state = after


def test_the_lifecycle_moves() -> None:
    s = ProvState
    assert apply(s.LOCKED, ProvEvent.SHIP) is s.SHIPPED
    assert apply(s.SHIPPED, ProvEvent.RMA) is s.RMA
    assert apply(s.RMA, ProvEvent.SHIP) is s.SHIPPED
    assert apply(s.RMA, ProvEvent.SCRAP) is s.SCRAPPED
    assert apply(s.TESTED, ProvEvent.SCRAP) is s.SCRAPPED
    for state in HOLDS_CERTIFICATE:
        assert apply(state, ProvEvent.REVOKE) is s.REVOKED
    with pytest.raises(IllegalTransition) as err:
        apply(s.WRITTEN, ProvEvent.SHIP, "aa:bb (serial X)")
    assert str(err.value) == (
        "unit aa:bb (serial X) in state written cannot take ship; allowed: locking, locked, "
        "scrap, revoke"
    )
    with pytest.raises(IllegalTransition, match=r"allowed: rma, revoke$"):
        apply(s.SHIPPED, ProvEvent.SCRAP)  # at the customer: it comes back (rma) first
    with pytest.raises(IllegalTransition):
        apply(s.TESTED, ProvEvent.REVOKE)  # no certificate yet: nothing to revoke
    with pytest.raises(ValueError, match="not a factory state"):
        advance(s.LOCKED, s.SHIPPED)
