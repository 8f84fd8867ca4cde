"""The hint path's fast run state equals the one rebuilt from the run's stages (hypothesis).

:func:`hermes_sdk.instrument.ranking.run_state` no longer forms the run's stage records on every
hint; these tests rebuild the state the old way (``RunState.after(form_stages(...))``) after
random sequences of unit starts and ends (overlaps, nesting, open units, names that collide with
START or whose composite is shortened, invalid kinds, backends and token counts, calls longer
than the service limit) and check that every field but the elapsed time is the same, and that a
record ``form_stages`` rejects is rejected (no rank) either way.
"""

from __future__ import annotations

from time import perf_counter_ns

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hermes_sdk.instrument as hi
from hermes_sdk.errors import GraphError
from hermes_sdk.graph.records import MAX_SERVICE_S, MAX_TOKENS, MAX_WIDTH, START, RunState
from hermes_sdk.instrument.handles import RunHandle, UnitHandle
from hermes_sdk.instrument.ranking import run_state
from hermes_sdk.instrument.run_position import stage_nodes, state_after
from hermes_sdk.instrument.stages import NS_PER_S, form_stages

LONG = "x" * 200
VALID = ("a", "b", "c") * 12
NAMES = (*VALID, START, LONG, "y" * 120, "bad\x00name")
"""Mostly valid names (the fast path), sometimes ones whose stage is shortened or rejected."""
WEEK_NS = int(MAX_SERVICE_S * NS_PER_S) + 1_000_000_000
"""Longer than the service limit (a week) by a second."""


def reference_state(run: RunHandle, unit: UnitHandle | None) -> RunState:
    """The run state as ``run_state`` computed it before the fast path (stages rebuilt)."""
    now = perf_counter_ns()
    current = unit.root if unit is not None else None
    cut = current.start_ns if current is not None else now
    done = [
        u
        for u in run.units
        if u.root is not current and u.root.end_ns is not None and u.root.end_ns <= cut
    ]
    state = RunState.after(form_stages(done, now))
    if current is None:
        return state
    counts = dict(state.visits)
    counts[current.name] = counts.get(current.name, 0) + 1
    return RunState(
        node=current.name,
        visits=tuple(sorted(counts.items())),
        running=True,
        input_tokens=current.input_tokens,
    )


def outcome(fn: object, run: RunHandle, unit: UnitHandle | None) -> RunState | str:
    """The state without its elapsed time, or ``"rejected"`` when the records are invalid."""
    assert callable(fn)
    try:
        state = fn(run, unit)
    except GraphError:
        return "rejected"
    assert isinstance(state, RunState)
    return RunState(state.node, state.visits, state.running, 0.0, state.input_tokens, state.width)


events = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.integers(0, 300),  # start, ns after the run's first unit
        st.sampled_from((None, *range(0, 60, 5), *range(0, 60, 5), WEEK_NS)),  # None: open
        st.sampled_from(("llm", "tool", "custom") * 10 + ("nonsense",)),
        st.sampled_from((None,) * 20 + ("vllm",) * 10 + ("bad\x01backend",)),
        st.sampled_from((None, 7) * 20 + (MAX_TOKENS, MAX_TOKENS + 1, -1)),  # input tokens
        st.integers(-12, 12),  # parent index (< 0 or >= own index: top level)
    ),
    min_size=0,
    max_size=20,
)


def build(specs: list[tuple[str, int, int | None, str, str | None, int | None, int]]) -> RunHandle:
    """A run whose units start and end at the given (fake) perf-counter times, in spec order."""
    run = hi.start_run("position")
    units: list[UnitHandle] = []
    for i, (name, start, dur, kind, backend, tokens, parent_ix) in enumerate(specs):
        parent = units[parent_ix] if 0 <= parent_ix < i else None
        u = run.open_unit(name, kind, backend, parent, tokens)  # type: ignore[arg-type]
        if parent is not None:  # a child starts inside its parent
            start = parent.start_ns + start % 50
        u.start_ns = start
        u.end_ns = None if dur is None else start + dur
        units.append(u)
    return run


@settings(max_examples=400, deadline=None)
@given(events, st.data())
def test_fast_state_equals_rebuilt_state(
    specs: list[tuple[str, int, int | None, str, str | None, int | None, int]], data: st.DataObject
) -> None:
    run = build(specs)
    for unit in [None, *run.units]:  # between stages, and while each unit runs
        assert outcome(run_state, run, unit) == outcome(reference_state, run, unit)
    picked = data.draw(
        st.lists(st.sampled_from(run.units), max_size=6) if run.units else st.just([])
    )
    for u in picked:  # units ending later than planned, then asked again
        u.end_ns = (u.end_ns or u.start_ns) + 1000
        for unit in [None, u]:
            assert outcome(run_state, run, unit) == outcome(reference_state, run, unit)


def test_sequential_units_take_the_fast_path() -> None:
    """Valid top-level units are grouped without forming records (overlap -> one stage)."""
    run = build(
        [
            ("a", 0, 10, "llm", None, 5, -1),
            ("b", 20, 10, "tool", None, None, -1),
            ("c", 25, 10, "tool", None, None, -1),
            ("a", 40, 10, "llm", None, None, -1),
        ]
    )
    assert stage_nodes(run.units) == ["a", "b|c", "a"]
    assert state_after(run.units, 100) == RunState(node="a", visits=(("a", 2), ("b|c", 1)))


@pytest.mark.parametrize(
    "spec",
    [
        ("a", 0, 10, "llm", None, MAX_TOKENS + 1, -1),  # token count form_stages rejects
        ("a", 0, WEEK_NS, "llm", None, None, -1),  # a call longer than the limit
        (START, 0, 10, "llm", None, None, -1),  # a reserved node name
        ("a", 0, 10, "nonsense", None, None, -1),  # an unknown kind
    ],
)
def test_records_form_stages_may_reject_go_to_form_stages(
    spec: tuple[str, int, int | None, str, str | None, int | None, int],
) -> None:
    run = build([spec])
    assert stage_nodes(run.units) is None
    with pytest.raises(GraphError):
        state_after(run.units, WEEK_NS * 2)


def test_fan_out_past_the_width_limit_goes_to_form_stages() -> None:
    run = build([("a", 0, 10, "llm", None, None, -1)] * (MAX_WIDTH + 1))
    assert stage_nodes(run.units) is None


def test_nested_units_go_to_form_stages() -> None:
    run = build([("a", 0, 100, "custom", None, None, -1), ("b", 0, 10, "llm", None, 3, 0)])
    assert stage_nodes(run.units) is None
    assert state_after(run.units, 200) == RunState(node="a", visits=(("a", 1),))
