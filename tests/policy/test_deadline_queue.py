"""The queue-wide deadline pass: Moore-Hodgson's optimum by brute force, latest fit, monotonicity,
hopeless and no-deadline runs never promoted."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_sdk.policy.deadline_gittins import HOPELESS_RANK_S
from hermes_sdk.policy.deadline_queue import feasibility_keys, latest_starts, moore_hodgson

EPS = 1e-9


def served_order(keys: np.ndarray) -> list[int]:
    """The order a queue serves ``keys`` in (ties by index, as the inputs were given)."""
    return np.argsort(keys, kind="stable").tolist()


def late_jobs(order: list[int], size: np.ndarray, deadline: np.ndarray) -> int:
    """Jobs run back to back on one machine in ``order`` that end after their deadline."""
    t, late = 0.0, 0
    for j in order:
        t += size[j]
        late += int(t > deadline[j] + EPS)
    return late


def fewest_late(size: np.ndarray, deadline: np.ndarray) -> int:
    """The exhaustive optimum: the fewest late jobs over every order."""
    return min(late_jobs(list(p), size, deadline) for p in itertools.permutations(range(size.size)))


jobs = st.lists(
    st.tuples(st.floats(0.1, 10.0), st.floats(0.0, 30.0), st.floats(0.0, 20.0)),
    min_size=1,
    max_size=7,
)
"""(size s, deadline s, rank s) per job."""


@settings(max_examples=200, deadline=None)
@given(jobs)
def test_moore_hodgson_keeps_the_optimum_number(rows: list[tuple[float, float, float]]) -> None:
    size = np.array([r[0] for r in rows])
    deadline = np.array([r[1] for r in rows])
    kept = moore_hodgson(size, deadline)
    assert size.size - int(kept.sum()) == fewest_late(size, deadline)
    order = [int(j) for j in np.argsort(deadline, kind="stable") if kept[j]]
    assert late_jobs(order, size, deadline) == 0


@settings(max_examples=200, deadline=None)
@given(jobs, st.lists(st.booleans(), min_size=7, max_size=7))
def test_pass_meets_the_exhaustive_optimum_on_one_server(
    rows: list[tuple[float, float, float]], has_deadline: list[bool]
) -> None:
    """Known sizes, latency = size, any ranks: the pass's order has the fewest late deadline
    jobs there can be (runs without a deadline can always go last in the optimum)."""
    size = np.array([r[0] for r in rows])
    deadline = np.array([r[1] for r in rows])
    rank = np.array([r[2] for r in rows])
    with_d = np.array(has_deadline[: size.size])
    wait = np.where(with_d, deadline - size, np.nan)
    order = served_order(feasibility_keys(rank, size, wait))
    mine = [j for j in order if with_d[j]]
    late = late_jobs(order, size, np.where(with_d, deadline, math.inf))
    best = fewest_late(size[with_d], deadline[with_d]) if with_d.any() else 0
    assert late == best
    # runs without a deadline keep their rank order among themselves; so do the deadline runs
    # the pass did not need to move
    free = [j for j in order if not with_d[j]]
    assert free == sorted(free, key=lambda j: (rank[j], j))
    assert len(mine) == int(with_d.sum())


def test_latest_fit_moves_a_run_only_as_far_as_it_must() -> None:
    """One server: A, B, C without deadlines (2 s each, ranks 1, 2, 3), D with a deadline at
    5 s and 1 s of work (rank 4). D fits behind two of them (2 + 2 + 1 = 5), not behind three:
    it moves ahead of C only."""
    rank = np.array([1.0, 2.0, 3.0, 4.0])
    work = np.array([2.0, 2.0, 2.0, 1.0])
    wait = np.array([np.nan, np.nan, np.nan, 5.0 - 1.0])
    keys = feasibility_keys(rank, work, wait)
    assert served_order(keys) == [0, 1, 3, 2]
    assert keys[:3].tolist() == [1.0, 2.0, 3.0]  # the others keep their keys
    assert 2.0 < keys[3] < 3.0
    # two slots halve the work ahead: D now fits behind all three (6 / 2 + 1 <= 5)
    assert served_order(feasibility_keys(rank, work, wait, capacity=2.0)) == [0, 1, 2, 3]


def test_overrun_drops_the_longest_and_keeps_edf_order_among_the_kept() -> None:
    """Deadline runs X (3 s, due 3), Y (1 s, due 3), Z (1 s, due 4) and nothing else fits all
    three; Moore-Hodgson drops the longest (X) and serves Y, Z in deadline order, X after them."""
    rank = np.array([1.0, 2.0, 3.0])
    work = np.array([3.0, 1.0, 1.0])
    deadline = np.array([3.0, 3.0, 4.0])
    keys = feasibility_keys(rank, work, deadline - work)
    assert served_order(keys) == [1, 2, 0]
    assert late_jobs(served_order(keys), work, deadline) == 1


def test_hopeless_and_at_risk_runs_are_never_promoted() -> None:
    """A hopeless run (key past HOPELESS_RANK_S) and an at-risk one (NaN wait) keep their keys,
    behind the feasible ones, even when a deadline would otherwise pull them forward."""
    rank = np.array([1.0, 2.0, HOPELESS_RANK_S + 0.5, 5.0, 6.0])
    work = np.array([4.0, 4.0, 0.5, 0.5, 0.5])
    wait = np.array([np.nan, np.nan, 0.0, np.nan, 0.5])
    keys = feasibility_keys(rank, work, wait)
    assert keys[2] == rank[2] and keys[3] == rank[3]
    assert served_order(keys) == [4, 0, 1, 3, 2]


def test_no_candidates_returns_the_ranks() -> None:
    rank = np.array([3.0, 1.0, 2.0])
    assert feasibility_keys(rank, [1.0, 1.0, 1.0], [np.nan] * 3).tolist() == [3.0, 1.0, 2.0]
    assert feasibility_keys([], [], []).size == 0


@settings(max_examples=300, deadline=None)
@given(
    jobs,
    st.lists(st.booleans(), min_size=7, max_size=7),
    st.integers(0, 6),
    st.floats(0.0, 1.0),
    st.sampled_from([1.0, 2.0, 4.0]),
)
def test_earlier_deadline_never_lowers_priority_while_feasible(
    rows: list[tuple[float, float, float]],
    has_deadline: list[bool],
    who: int,
    shrink: float,
    capacity: float,
) -> None:
    """Monotonicity: moving one run's deadline earlier, while Moore-Hodgson still keeps it, never
    puts it behind a run without a deadline it was ahead of, and it is still served by its
    latest start (a hit in the model). Its place among the other deadline runs may move back:
    they keep their deadline order, so a run it used to pass may now have to go first (both fit;
    docs/theory.md, "The queue-wide pass")."""
    size = np.array([r[0] for r in rows])
    with_d = np.array(has_deadline[: size.size])
    wait = np.where(with_d, [r[1] for r in rows], np.nan)
    rank = np.array([r[2] for r in rows])
    j = who % size.size
    if not with_d[j]:
        return
    earlier = wait.copy()
    earlier[j] = wait[j] * shrink
    length = size / capacity
    deadline_runs = np.flatnonzero(with_d)
    kept = moore_hodgson(length[deadline_runs], (earlier + length)[deadline_runs])
    if not kept[deadline_runs.tolist().index(j)]:
        return  # no longer feasible: nothing is promised
    before = served_order(feasibility_keys(rank, size, wait, capacity=capacity))
    after = served_order(feasibility_keys(rank, size, earlier, capacity=capacity))
    for k in np.flatnonzero(~with_d).tolist():
        if before.index(j) < before.index(k):
            assert after.index(j) < after.index(k)
    assert sum(length[after[: after.index(j)]]) <= earlier[j] + 1e-7


@settings(max_examples=200, deadline=None)
@given(jobs, st.sampled_from([1.0, 3.0, 16.0]))
def test_kept_runs_start_by_their_latest_start(
    rows: list[tuple[float, float, float]], capacity: float
) -> None:
    """In the fluid model (work ahead / capacity), every run Moore-Hodgson keeps waits no longer
    than it may; the deadline runs it drops are the only ones that can wait longer."""
    work = np.array([r[0] for r in rows])
    wait = np.array([r[1] for r in rows])
    rank = np.array([r[2] for r in rows])
    length = work / capacity
    kept = moore_hodgson(length, wait + length)
    order = served_order(feasibility_keys(rank, work, wait, capacity=capacity))
    ahead = 0.0
    for j in order:
        if kept[j]:
            assert ahead <= wait[j] + 1e-7
        ahead += length[j]


def test_latest_starts_closed_form() -> None:
    """Lengths 1, 2, 1 due at 4, 4, 10 (due order): as late as possible the last runs 9-10, the
    second 2-4, the first 1-2."""
    assert latest_starts(np.array([1.0, 2.0, 1.0]), np.array([4.0, 4.0, 10.0])).tolist() == [
        1.0,
        2.0,
        9.0,
    ]


def test_argument_checks() -> None:
    with pytest.raises(ValueError, match="one entry per run"):
        feasibility_keys([1.0], [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="capacity"):
        feasibility_keys([1.0], [1.0], [1.0], capacity=0.0)
    with pytest.raises(ValueError, match="shape"):
        moore_hodgson([1.0], [1.0, 2.0])
