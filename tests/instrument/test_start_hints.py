"""A wrapped call's cached hints equal the hints computed from scratch at its unit's start.

:mod:`hermes_sdk.instrument.start_hints` keeps each run's completed stages and each state's
rank-table answer between calls. These tests drive random sequences of unit starts and ends
(sequential, overlapping, nested, still running), learn more runs on the side (the graph's
version moves, tables fall due, are refreshed on the learning path, rebuilt inline or evicted from
a small table cache) and check after every step that a new top-level unit's cached hints and
request encodings (several engines, with and without a deadline) equal
``compute_hints(run, unit, now_ns=unit.start_ns)`` and its ``openai_kwargs`` field for field.
"""

from __future__ import annotations

from time import perf_counter_ns

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hermes_sdk.instrument as hi
from hermes_sdk.client.hints import Hints
from hermes_sdk.client.openai_kwargs import openai_kwargs
from hermes_sdk.graph.rank_tables import RankTables, RankTableSettings
from hermes_sdk.instrument import runtime as _rt
from hermes_sdk.instrument.handles import RunHandle, UnitHandle
from hermes_sdk.instrument.model_calls import WrapSettings, start_kwargs
from hermes_sdk.instrument.ranking import compute_hints, hints_of
from hermes_sdk.instrument.start_hints import Answer, start_answer

APP = "start-hints"
NAMES = ("plan", "search", "answer")
MS = 1_000_000
ENGINES = ("vllm", "dynamo", "gie", "openai")


def learn_side_run(shape: list[tuple[str, int, int]]) -> None:
    """End a run of ``APP`` whose units ran at the given (start ms, duration ms) offsets."""
    run = hi.start_run(APP)
    base = perf_counter_ns() - 60_000 * MS
    for name, start_ms, dur_ms in shape:
        u = run.open_unit(name, "llm", None, None, 10)
        u.start_ns = base + start_ms * MS
        u.end_ns = base + (start_ms + dur_ms) * MS
        u.record(10, 5)
    run.end()
    assert hi.flush(30)


def small_tables() -> RankTables:
    """Tables that fall due after 1 run, are rebuilt past 2 and keep 3 states (evictions)."""
    registry = _rt.RUNTIME.registry()
    tables = registry.rank_tables = RankTables(
        registry,
        RankTableSettings(max_stale_fraction=0.0, min_stale_runs=1, samples=64, max_tables=3),
    )
    return tables


def check(run: RunHandle, unit: UnitHandle) -> bool:
    """The cached answer (if any) equals the one computed at the unit's start; True if cached."""
    answer = start_answer(run, unit)
    fresh = compute_hints(run, unit, unit.start_ns)
    if answer is None:
        return False
    assert hints_of(run, unit, answer.found) == fresh
    for engine in ENGINES:
        for levels in (64, 7):
            got = answer.request_kwargs(run, unit, engine, levels)
            assert got == openai_kwargs(fresh, engine=engine, levels=levels)
            assert list(got["extra_headers"]) == list(fresh.headers()) + [
                k
                for k in openai_kwargs(fresh, engine=engine)["extra_headers"]
                if k not in fresh.headers()
            ]
    return True


SHAPES = st.lists(
    st.tuples(st.sampled_from(NAMES), st.integers(0, 400), st.integers(1, 300)),
    min_size=1,
    max_size=4,
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.sampled_from(NAMES), st.sampled_from((None, 10, 900))),
        st.tuples(st.just("nest"), st.integers(0, 20), st.sampled_from(NAMES)),
        st.tuples(st.just("end"), st.integers(0, 20), st.just(None)),
        st.tuples(st.just("learn"), SHAPES, st.just(None)),
        st.tuples(st.just("refresh"), st.just(None), st.just(None)),
        st.tuples(st.just("backdate"), st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    ),
    max_size=25,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(SHAPES, min_size=1, max_size=3),
    STEPS,
    st.sampled_from((None, 30.0)),
    st.sampled_from((_rt.RANK_REFRESH_BUDGET, 0)),
)
def test_cached_hints_equal_fresh_hints(
    first: list[list[tuple[str, int, int]]],
    steps: list[tuple[str, object, object]],
    deadline_s: float | None,
    refresh_budget: int,
) -> None:
    """``refresh_budget`` 0: learning never refreshes tables, so lookups rebuild them inline."""
    hi.configure(store="memory://", enabled=True)
    tables = small_tables()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_rt, "RANK_REFRESH_BUDGET", refresh_budget)
        drive(first, steps, deadline_s, tables)


def drive(
    first: list[list[tuple[str, int, int]]],
    steps: list[tuple[str, object, object]],
    deadline_s: float | None,
    tables: RankTables,
) -> None:
    for shape in first:
        learn_side_run(shape)
    run = hi.start_run(APP, deadline_s=deadline_s)
    for step, a, b in steps:
        units = run.units
        if step == "open":
            assert isinstance(a, str)
            run.open_unit(a, "llm", None, None, b if isinstance(b, int) else None)
        elif step == "nest" and units:
            assert isinstance(a, int) and isinstance(b, str)
            run.open_unit(b, "tool", None, units[a % len(units)])
        elif step == "end" and units:
            assert isinstance(a, int)
            units[a % len(units)].end()
        elif step == "learn":
            assert isinstance(a, list)
            learn_side_run(a)
        elif step == "refresh":
            tables.refresh()
        elif step == "backdate":  # a unit that ran at an earlier time (as another thread's may)
            assert isinstance(a, float) and isinstance(b, float)
            span = perf_counter_ns() - run.start_ns
            start = run.start_ns + int(span * min(a, b))
            u = run.open_unit("plan", "tool", None, None)
            u.start_ns = start
            u.end_ns = None if a + b > 1.6 else start + int(span * abs(a - b))  # or still open
        other = hi.start_run(APP, deadline_s=deadline_s)  # a run's first call: a state seen often
        check(other, other.open_unit(NAMES[len(units) % 2], "llm", None, None))
        probe = run.open_unit("answer", "llm", None, None)
        check(run, probe)
        check(run, probe)  # asked again: from the cache, same values
        probe.end()
        for u in list(run.units):
            if u.root is u and not u.ended:
                check(run, u)  # an older unit (its start is before later ends: full path)
    run.end()


def test_sequential_calls_are_served_from_the_caches() -> None:
    """Runs of sequential calls hit both caches once the states were seen, equal to fresh."""
    for shape in ([("plan", 0, 20), ("answer", 30, 50)], [("plan", 0, 25), ("answer", 30, 40)]):
        learn_side_run(shape)
    answers: list[list[Answer | None]] = []
    for _ in range(3):
        run = hi.start_run(APP)
        seen = []
        for name in ("plan", "answer", "answer"):
            u = run.open_unit(name, "llm", None, None)
            assert check(run, u)
            seen.append(start_answer(run, u))
            u.end()
        assert run.hint_prefix is not None and run.hint_prefix.consumed == 2
        answers.append(seen)
    assert all(a is b for a, b in zip(answers[1], answers[2], strict=True))
    assert all(a is not None and a.table is not None for a in answers[2])


@pytest.mark.parametrize("refresh_budget", [_rt.RANK_REFRESH_BUDGET, 0])
def test_a_rebuilt_table_is_looked_up_again(
    refresh_budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refreshed on the learning path, or (budget 0) past the hard bound at the lookup."""
    monkeypatch.setattr(_rt, "RANK_REFRESH_BUDGET", refresh_budget)
    learn_side_run([("plan", 0, 20), ("answer", 30, 50)])
    tables = small_tables()
    run = hi.start_run(APP)
    first = start_answer(run, run.open_unit("plan", "llm", None, None))
    assert first is not None and first.table is not None
    for _ in range(5):  # past the hard bound: the lookup rebuilds inline
        learn_side_run([("plan", 0, 200), ("answer", 210, 500)])
    other = hi.start_run(APP)
    unit = other.open_unit("plan", "llm", None, None)
    assert check(other, unit)
    again = start_answer(other, unit)
    assert again is not None and again is not first
    assert tables.rebuilds >= 2


def test_nested_units_and_untabled_apps_take_the_full_path() -> None:
    run = hi.start_run(APP)  # no graph yet: the pooled prior, never kept
    unit = run.open_unit("plan", "llm", None, None)
    answer = start_answer(run, unit)
    assert answer is not None and answer.table is None
    learn_side_run([("plan", 0, 20)])
    outer = run.open_unit("agent", "custom", None, None)
    inner = run.open_unit("plan", "llm", None, outer)
    assert start_answer(run, inner) is None


def test_wrapped_unit_hints_are_the_ones_sent() -> None:
    """``unit.hints()`` after a wrapped call returns the hints its request carried."""
    learn_side_run([("plan", 0, 20), ("answer", 30, 50)])
    run = hi.start_run(APP)
    unit = run.open_unit("plan", "llm", None, None)
    sent = start_kwargs(run, unit, WrapSettings("vllm", 64, None, None, True))
    hints = unit.hints()
    assert isinstance(hints, Hints) and hints.rank_s is not None
    assert sent == openai_kwargs(hints, engine="vllm")
    assert hints == compute_hints(run, unit, unit.start_ns)


@pytest.mark.parametrize("engine", ENGINES)
def test_cached_body_is_a_copy(engine: str) -> None:
    """Changing one request's body never changes the next request's (the cache is shared)."""
    learn_side_run([("plan", 0, 20)])
    run = hi.start_run(APP)
    unit = run.open_unit("plan", "llm", None, None)
    answer = start_answer(run, unit)
    assert answer is not None
    one = answer.request_kwargs(run, unit, engine, 64)
    body, headers = one["extra_body"], one["extra_headers"]
    assert isinstance(body, dict) and isinstance(headers, dict)
    for value in body.values():
        if isinstance(value, dict):
            value.clear()
    body.clear()
    headers.clear()
    assert answer.request_kwargs(run, unit, engine, 64) == openai_kwargs(
        compute_hints(run, unit, unit.start_ns), engine=engine
    )


def test_units_that_ran_out_of_order_never_enter_the_kept_stages_twice() -> None:
    """A unit listed after the asking one but run before it (another thread's, here backdated)
    is counted for that ask, and the kept stages stop before the asking unit."""
    learn_side_run([("plan", 0, 20), ("answer", 30, 50)])
    run = hi.start_run(APP)
    first = run.open_unit("plan", "llm", None, None)
    first.end()
    probe = run.open_unit("answer", "llm", None, None)
    assert check(run, probe)
    probe.end()
    asking = run.open_unit("answer", "llm", None, None)
    early = run.open_unit("search", "tool", None, None)  # listed after ``asking``, ran before it
    early.start_ns = probe.end_ns + 1  # type: ignore[operator]
    early.end_ns = asking.start_ns - 1
    assert check(run, asking)
    asking.end()
    last = run.open_unit("answer", "llm", None, None)
    assert check(run, last)
    assert compute_hints(run, last, last.start_ns) == hints_of(
        run,
        last,
        start_answer(run, last).found,  # type: ignore[union-attr]
    )


def test_an_ask_from_before_the_kept_stages_ended_takes_the_full_path() -> None:
    """Kept stages that ended after the asking unit started are not its completed stages."""
    learn_side_run([("plan", 0, 20), ("answer", 30, 50)])
    run = hi.start_run(APP)
    first = run.open_unit("plan", "llm", None, None)
    first.end()
    asking = run.open_unit("answer", "llm", None, None)
    assert check(run, asking)  # keeps ``first``'s stage
    assert run.hint_prefix is not None and run.hint_prefix.max_end_ns == first.end_ns
    asking.start_ns = first.start_ns + 1  # as if it had started while ``first`` ran
    assert start_answer(run, asking) is None
    assert compute_hints(run, asking, asking.start_ns).rank_s is not None


def test_a_unit_that_overlapped_the_kept_stages_takes_the_full_path() -> None:
    """A unit that ran alongside a kept stage belongs to that stage (``plan|search``)."""
    learn_side_run([("plan", 0, 20), ("answer", 30, 50)])
    run = hi.start_run(APP)
    first = run.open_unit("plan", "llm", None, None)
    first.end()
    probe = run.open_unit("answer", "llm", None, None)
    assert check(run, probe)  # keeps ``first``'s stage
    probe.end()
    alongside = run.open_unit("search", "tool", None, None)
    alongside.start_ns = first.start_ns + 1  # ran while ``first`` ran (another thread's)
    alongside.end_ns = probe.start_ns
    asking = run.open_unit("answer", "llm", None, None)
    assert start_answer(run, asking) is None
    assert run.hint_prefix is not None and run.hint_prefix.consumed == 1


def test_a_fan_out_is_served_while_its_siblings_run() -> None:
    """Parallel calls (``asyncio.gather``) see running siblings as no completed stage; the next
    call after the fan-out counts it as one stage."""
    learn_side_run([("plan", 0, 20), ("answer", 30, 50), ("answer", 31, 40), ("answer", 90, 5)])
    run = hi.start_run(APP)
    first = run.open_unit("plan", "llm", None, None)
    first.end()
    siblings = [run.open_unit("answer", "llm", None, None) for _ in range(3)]
    for unit in siblings:
        assert check(run, unit)  # served while the others run
    for unit in siblings:
        unit.end()
    after = run.open_unit("answer", "llm", None, None)
    assert check(run, after)
    assert run.hint_prefix is not None and run.hint_prefix.consumed == 4
    assert dict(run.hint_prefix.visits) == {"plan": 1, "answer": 1}


def test_a_unit_running_across_a_call_is_counted_once_it_ends() -> None:
    """``slow`` starts while ``quick`` runs and is still running when ``quick`` has ended and a
    call is made: the kept stages wait for ``slow`` (they would otherwise end after it started),
    so the call after it still takes the fast path (all three overlap: one stage)."""
    learn_side_run([("plan", 0, 20), ("answer", 30, 50)])
    run = hi.start_run(APP)
    quick = run.open_unit("search", "tool", None, None)
    slow = run.open_unit("plan", "tool", None, None)
    quick.end()
    assert check(run, run.open_unit("answer", "llm", None, None))  # ``slow`` still runs
    assert not slow.ended
    for unit in run.units:
        unit.end()
    last = run.open_unit("answer", "llm", None, None)
    assert check(run, last)
    assert run.hint_prefix is not None
    assert dict(run.hint_prefix.visits) == {"answer|plan|search": 1}
