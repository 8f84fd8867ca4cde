"""Offline bounds on a prefix cache's prefill saved: hand-checked optima, PFOO-L <= OPT <= PFOO-U
against an exhaustive optimum, and every simulated policy under the optimum of its own trace."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
from numpy.typing import NDArray

from hermes_sdk.prewarm.retention import GraphRetention, NoRetention
from hermes_sdk.sim.cache_bounds import (
    AccessTrace,
    Segments,
    offline_optimum,
    pfoo_lower,
    pfoo_upper,
    segments,
)
from hermes_sdk.sim.kv_des import PathOracleRetention
from tests.sim.kv_runs import run_with_cache


def _trace(*events: tuple[str, str, int]) -> AccessTrace:
    """("s" | "r", key, tokens) events, one second apart."""
    trace = AccessTrace()
    for t, (kind, key, tokens) in enumerate(events):
        (trace.store if kind == "s" else trace.read)(float(t), key, tokens)
    return trace


def _feasible(seg: Segments, kept: NDArray[np.bool_], capacity: int) -> bool:
    used = np.zeros(seg.events, dtype=np.int64)
    for k in np.flatnonzero(kept):
        if seg.prev[k] >= 0 and not kept[seg.prev[k]]:
            return False
        used[seg.first[k] : seg.last[k] + 1] += seg.size[k]
    return bool((used <= capacity).all())


def _exhaustive(seg: Segments, capacity: int) -> int:
    best = 0
    for bits in product((False, True), repeat=len(seg)):
        kept = np.asarray(bits, dtype=np.bool_)
        if _feasible(seg, kept, capacity):
            best = max(best, int(seg.value[kept].sum()))
    return best


def _bounds(trace: AccessTrace, capacity: int) -> tuple[int, float, float]:
    seg = segments(trace)
    opt = offline_optimum(seg, capacity)
    assert opt.optimal and opt.bound == opt.value
    return pfoo_lower(seg, capacity)[0], opt.value, pfoo_upper(seg, capacity)


def test_one_of_two_overlapping_prefixes_fits_and_the_optimum_keeps_the_larger() -> None:
    trace = _trace(("s", "a", 10), ("s", "b", 6), ("r", "b", 6), ("r", "a", 10))
    assert _bounds(trace, 10)[1] == 10
    assert _bounds(trace, 15)[1] == 10
    assert _bounds(trace, 16) == (16, 16, 16)
    assert _bounds(trace, 5) == (0, 0, 0)  # neither fits


def test_a_read_saves_at_most_its_prompt_and_reads_the_key_s_latest_store() -> None:
    trace = _trace(
        ("r", "a", 9),  # nothing stored yet
        ("s", "a", 10),
        ("r", "a", 4),
        ("s", "a", 3),
        ("r", "a", 8),
    )
    seg = segments(trace)
    assert seg.value.tolist() == [4, 3] and seg.size.tolist() == [10, 3]
    assert seg.prev.tolist() == [-1, -1]
    assert _bounds(trace, 10)[1] == 7
    assert _bounds(trace, 9)[1] == 3


def test_a_miss_does_not_reinsert_the_prefix_so_later_reads_of_it_miss_too() -> None:
    """Keeping ``a`` throughout saves 5 + 5; keeping ``b`` saves 6, and ``a``'s second read
    cannot hit once ``a`` was evicted for ``b`` (the relaxation without chains says 11)."""
    trace = _trace(
        ("s", "a", 6),
        ("s", "b", 6),
        ("r", "b", 6),
        ("r", "a", 5),
        ("r", "a", 5),
    )
    seg = segments(trace)
    assert seg.prev.tolist() == [-1, -1, 1]
    assert _exhaustive(seg, 6) == 10
    low, opt, high = _bounds(trace, 6)
    assert low <= opt == 10 <= high


def test_the_optimum_gives_up_a_large_prefix_for_two_small_ones_lru_would_not() -> None:
    """Capacity 10: the 8-token prefix read late blocks two 5-token ones read in between."""
    trace = _trace(
        ("s", "big", 8),
        ("s", "x", 5),
        ("r", "x", 5),
        ("s", "y", 5),
        ("r", "y", 5),
        ("r", "big", 8),
    )
    assert _bounds(trace, 10)[1] == 10
    assert _bounds(trace, 13)[1] == 18


@pytest.mark.parametrize("seed", range(4))
def test_pfoo_lower_le_optimum_le_pfoo_upper_on_random_traces(seed: int) -> None:
    rng = np.random.default_rng(seed)
    checked = 0
    while checked < 60:
        trace = AccessTrace()
        t = 0.0
        for _ in range(int(rng.integers(4, 13))):
            t += float(rng.exponential(1.0)) * float(rng.integers(0, 2))  # ties happen
            key = str(rng.integers(0, 4))
            tokens = int(rng.integers(1, 10))
            (trace.store if rng.random() < 0.4 else trace.read)(t, key, tokens)
        seg = segments(trace)
        if not 1 <= len(seg) <= 11:
            continue
        checked += 1
        capacity = int(rng.integers(1, 20))
        exact = _exhaustive(seg, capacity)
        low, kept = pfoo_lower(seg, capacity)
        assert _feasible(seg, kept, capacity) and low == int(seg.value[kept].sum())
        opt = offline_optimum(seg, capacity)
        assert opt.optimal and opt.value == exact
        assert low <= exact <= pfoo_upper(seg, capacity) + 1e-9


def test_the_trace_model_is_the_cache_s_an_unbounded_cache_saves_every_segment() -> None:
    kv = run_with_cache(10**9, lambda m: NoRetention())
    (trace,) = kv.traces.values()
    seg = segments(trace)
    stats = kv.stats()
    assert sum(not s for s in trace.is_store) == stats.lookups
    assert int(seg.value.sum()) == stats.saved_tokens > 0


@pytest.mark.parametrize(
    "make",
    [lambda m: NoRetention(), lambda m: GraphRetention(m, 0.01), lambda m: PathOracleRetention()],
    ids=["lru", "pdgraph", "path_oracle"],
)
def test_no_simulated_policy_beats_the_offline_optimum_of_its_own_trace(make: object) -> None:
    for capacity in (1500, 4000):
        kv = run_with_cache(capacity, make)
        (trace,) = kv.traces.values()
        seg = segments(trace)
        opt = offline_optimum(seg, capacity)
        low = pfoo_lower(seg, capacity)[0]
        assert opt.optimal
        assert kv.stats().saved_tokens <= opt.value
        assert low <= opt.value <= pfoo_upper(seg, capacity)
        assert opt.value <= int(seg.value[seg.size <= capacity].sum())
