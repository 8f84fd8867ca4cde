"""Conditioning on elapsed service behaves as theory says (hypothesis property tests)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_sdk import Call, PDGraph, RunPath, RunState, Stage
from hermes_sdk.graph.prior import DEFAULT_MEAN_S, PooledPrior


def _graph(samples_s: list[float], then: float | None = None) -> PDGraph:
    """START -> x -> (y ->) END where x's service takes the given values."""
    graph = PDGraph("cond")
    for i, s in enumerate(samples_s):
        stages = [Stage("x", (Call(s),))]
        if then is not None:
            stages.append(Stage("y", (Call(then),)))
        graph.observe(RunPath("cond", tuple(stages), run_id=str(i), started_at=float(i)))
    return graph


def _running(elapsed_s: float, width: int | None = None) -> RunState:
    return RunState("x", (("x", 1),), running=True, elapsed_s=elapsed_s, width=width)


EXP_GRAPH = _graph(np.random.default_rng(11).exponential(1.0, 1000).tolist())
DET_GRAPH = _graph([2.0] * 50, then=1.0)
MIXED = _graph(np.random.default_rng(12).uniform(0.0, 3.0, 500).tolist())


@settings(max_examples=60, deadline=None)
@given(elapsed_s=st.floats(min_value=0.0, max_value=50.0, allow_nan=False))
def test_residual_of_running_unit_is_never_negative(elapsed_s: float) -> None:
    out = MIXED.remaining_demand(_running(elapsed_s), n=300)
    assert np.all(np.isfinite(out))
    assert np.all(out >= 0.0)
    if elapsed_s > 0.0:
        assert np.all(out > 0.0)  # a running unit that already ran e > 0 is not finished


@settings(max_examples=25, deadline=None)
@given(elapsed_s=st.floats(min_value=0.0, max_value=1.5, allow_nan=False))
def test_exponential_unit_is_memoryless(elapsed_s: float) -> None:
    mean = EXP_GRAPH.remaining_demand(_running(elapsed_s), n=4000).mean()
    assert abs(mean - 1.0) < 0.2, (elapsed_s, mean)


@settings(max_examples=40, deadline=None)
@given(elapsed_s=st.floats(min_value=0.0, max_value=1.999, allow_nan=False))
def test_deterministic_unit_decreases_by_elapsed(elapsed_s: float) -> None:
    out = DET_GRAPH.remaining_demand(_running(elapsed_s), n=200)
    assert np.allclose(out, 2.0 - elapsed_s + 1.0)


@settings(max_examples=30, deadline=None)
@given(elapsed_s=st.floats(min_value=2.0, max_value=1e4, allow_nan=False))
def test_beyond_the_data_extrapolates_a_positive_tail(elapsed_s: float) -> None:
    out = DET_GRAPH.remaining_demand(_running(elapsed_s), n=500)
    assert np.all(out > 1.0)  # current unit residual > 0, plus y's 1.0
    assert out.mean() - 1.0 == pytest.approx(0.25 * elapsed_s, rel=0.25)


@settings(max_examples=20, deadline=None)
@given(width=st.integers(min_value=1, max_value=200), elapsed_s=st.floats(0.0, 1.9))
def test_known_width_multiplies_the_residual(width: int, elapsed_s: float) -> None:
    out = DET_GRAPH.remaining_demand(_running(elapsed_s, width=width), n=100)
    assert np.allclose(out, width * (2.0 - elapsed_s) + 1.0)


def test_conditioning_shifts_mean_monotonically_for_deterministic_units() -> None:
    means = [DET_GRAPH.remaining_demand(_running(e), n=100).mean() for e in (0.0, 0.5, 1.0, 1.5)]
    assert means == sorted(means, reverse=True)


@settings(max_examples=30, deadline=None)
@given(attained_s=st.floats(min_value=0.0, max_value=1e3))
def test_default_prior_residual_is_positive_and_grows_with_attained(attained_s: float) -> None:
    prior = PooledPrior()
    rng = np.random.default_rng(0)
    out = prior.remaining(attained_s, 4000, rng)
    assert np.all(out >= 0.0)
    # Lomax(alpha=2.5): mean residual life = (lam + e) / (alpha - 1), lam = 1.5 * mean
    expected = (DEFAULT_MEAN_S * 1.5 + attained_s) / 1.5
    assert out.mean() == pytest.approx(expected, rel=0.2)
