"""Sketches are bounded ring buffers with optional time decay; graphs follow drift with them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_sdk import Call, GraphError, PDGraph, RunPath, RunState, Stage
from hermes_sdk.graph.sketch import Sketch


def test_window_keeps_only_the_newest_samples_in_order() -> None:
    sk = Sketch(window=5)
    for i in range(12):
        sk.add(float(i), float(i))
    values, times = sk.chronological()
    assert values.tolist() == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert times.tolist() == values.tolist()
    assert len(sk) == 5 and sk.total_added == 12
    assert sk.mean() == 9.0 and sk.quantile(0.5) == 9.0


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.floats(0.0, 1e6), min_size=1, max_size=60), window=st.integers(1, 40))
def test_unweighted_summary_matches_numpy(values: list[float], window: int) -> None:
    sk = Sketch(window=window)
    for v in values:
        sk.add(v)
    kept = np.asarray(values[-window:])
    assert sk.mean() == pytest.approx(float(kept.mean()), rel=1e-12, abs=1e-9)
    assert sk.quantile(0.5) == float(np.quantile(kept, 0.5, method="inverted_cdf"))
    assert sk.quantile(1.0) == kept.max() and sk.quantile(0.0) == kept.min()
    draws = sk.sample(np.random.default_rng(0), 200)
    assert set(draws.tolist()) <= set(kept.tolist())


def test_half_life_weights_recent_samples() -> None:
    sk = Sketch(window=100, half_life_s=10.0)
    sk.add(100.0, 0.0)  # 100 s older than the newest: weight 2**-10
    for t in range(1, 4):
        sk.add(1.0, 100.0 + t)
    mean = sk.mean()
    assert mean is not None and mean < 1.2
    assert sk.quantile(0.99) == 1.0


def test_empty_sketch() -> None:
    sk = Sketch()
    assert sk.mean() is None and sk.quantile(0.5) is None
    assert sk.sample(np.random.default_rng(0), 3).tolist() == [0.0, 0.0, 0.0]
    assert sk.summary() == {"n": 0, "mean": None, "p50": None, "p95": None}
    with pytest.raises(GraphError):
        sk.quantile(1.5)


def test_graph_with_decay_follows_drift() -> None:
    graph = PDGraph("drift", half_life_s=20.0)  # old block weighs ~2**-10
    for i in range(400):  # first 10 s per unit, then it gets 10x faster
        service_s = 10.0 if i < 200 else 1.0
        graph.observe(RunPath("drift", (Stage("x", (Call(service_s),)),), started_at=float(i)))
    mean = graph.remaining_demand(RunState(), n=5000).mean()
    assert 1.0 <= mean < 1.1
    flat = PDGraph("drift", drift_settings=None)  # the window alone (no change detection)
    for i in range(400):
        service_s = 10.0 if i < 200 else 1.0
        flat.observe(RunPath("drift", (Stage("x", (Call(service_s),)),), started_at=float(i)))
    assert flat.remaining_demand(RunState(), n=5000).mean() == pytest.approx(5.5, rel=0.05)
