"""Stage formation properties on random unit intervals and nesting (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import hermes_sdk.instrument as hi
from hermes_sdk.instrument.handles import RunHandle, UnitHandle
from hermes_sdk.instrument.stages import form_stages

NAMES = ("a", "b", "c")

unit_specs = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.integers(0, 1000),  # start
        st.integers(1, 300),  # duration
        st.one_of(st.none(), st.integers(0, 50)),  # input tokens
        st.integers(-1, 10),  # parent index (< 0 or >= own index: top level)
    ),
    min_size=0,
    max_size=25,
)


def build(specs: list[tuple[str, int, int, int | None, int]]) -> tuple[RunHandle, list[UnitHandle]]:
    run = hi.start_run("prop")
    units: list[UnitHandle] = []
    for i, (name, start, dur, tokens, parent_ix) in enumerate(specs):
        parent = units[parent_ix] if 0 <= parent_ix < i else None
        u = run.open_unit(name, "custom", None, parent, tokens)
        if parent is not None:  # a child lies inside its parent's interval
            start = parent.start_ns + (start % max(parent.end_ns - parent.start_ns, 1))  # type: ignore[operator]
            dur = min(dur, parent.end_ns - start)  # type: ignore[operator]
        u.start_ns, u.end_ns = start, start + max(dur, 0)
        units.append(u)
    return run, units


@settings(max_examples=200, deadline=None)
@given(unit_specs)
def test_stage_formation_invariants(specs: list[tuple[str, int, int, int | None, int]]) -> None:
    run, units = build(specs)
    stages = form_stages(units, end_ns=10_000)
    tops = [u for u in units if u.root is u]
    # every top-level unit is exactly one call; nested units are never calls of their own
    assert sum(s.width for s in stages) == len(tops)
    # tokens are conserved: nested units' tokens moved into their top-level ancestor's call
    total_in = sum(u.input_tokens or 0 for u in units)
    assert sum(c.input_tokens or 0 for s in stages for c in s.calls) == total_in
    # node names: one name, or the sorted '|' join of the distinct names in the stage
    for s in stages:
        parts = s.node.split("|")
        assert parts == sorted(set(parts)) and set(parts) <= set(NAMES)
    # grouping equals an independent reference: connected components of the overlap graph
    parent = list(range(len(tops)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, u in enumerate(tops):
        for j, v in enumerate(tops):
            if u.start_ns < v.end_ns and v.start_ns < u.end_ns:  # type: ignore[operator]
                parent[find(i)] = find(j)
    comps: dict[int, list[UnitHandle]] = {}
    for i, u in enumerate(tops):
        comps.setdefault(find(i), []).append(u)
    expected = sorted(comps.values(), key=lambda g: min(u.start_ns for u in g))
    assert [s.width for s in stages] == [len(g) for g in expected]
    for s, g in zip(stages, expected, strict=True):
        assert s.node == "|".join(sorted({u.name for u in g}))
        span = max(u.end_ns for u in g) - min(u.start_ns for u in g)  # type: ignore[type-var]
        assert s.latency_s is not None and abs(s.latency_s - span / 1e9) < 1e-12
    assert run.units == units  # the run is left open: nothing is learned


def test_touching_intervals_are_sequential() -> None:
    run = hi.start_run("touch")
    first = run.open_unit("a", "custom", None, None)
    second = run.open_unit("a", "custom", None, None)
    first.start_ns, first.end_ns = 0, 10
    second.start_ns, second.end_ns = 10, 20
    assert [s.width for s in form_stages([first, second], end_ns=30)] == [1, 1]
    second.start_ns = 9
    assert [s.width for s in form_stages([first, second], end_ns=30)] == [2]
    run.end()
