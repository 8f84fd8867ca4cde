"""Reuse density: max over T of P(reuse within T | not yet) / E[hold | not yet], exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_sdk.prewarm.reuse_law import MIN_HOLD_S, NEVER, ReuseLaw, shifted


def _ratio(samples: np.ndarray, age: float, hold: float) -> float:
    """P(age < G <= age + hold | G >= age) / E[min(G - age, hold) | G >= age], by brute force."""
    alive = samples[samples >= age] - age
    if alive.size == 0:
        return 0.0
    p = float(np.mean(alive <= hold))
    return p / max(float(np.mean(np.minimum(alive, hold))), MIN_HOLD_S)


def test_density_of_a_sure_return_and_of_none() -> None:
    law = ReuseLaw.from_samples([4.0] * 90 + [math.inf] * 10)  # back after 4 s with p 0.9
    assert law.p_reuse == 0.9 and law.n == 100
    assert law.density(0.0) == pytest.approx(90 / (90 * 4 + 10 * 4))  # 0.225 per second
    # nearer the return, the entry is worth more per second still to hold
    assert law.density(2.0) == pytest.approx(90 / (90 * 2 + 10 * 2))
    assert law.density(4.5) == 0.0  # past every learned return: nobody is coming
    assert NEVER.density(0.0) == 0.0
    # a return read by 20 calls (a 20-wide stage) is worth 20 reads of the prefix
    wide = ReuseLaw.from_samples([4.0] * 90 + [math.inf] * 10, reads=20.0)
    assert wide.density(0.0) == pytest.approx(20 * law.density(0.0))
    immediate = ReuseLaw.from_samples([0.0] * 8)
    assert immediate.density(0.0) == pytest.approx(1 / MIN_HOLD_S)
    with pytest.raises(ValueError):
        ReuseLaw.from_samples([1.0, -0.5])
    with pytest.raises(ValueError):
        ReuseLaw.from_samples([1.0], reads=0.0)


def test_shift_delays_every_return_by_a_drawn_wait() -> None:
    law = ReuseLaw.from_samples([1.0, 2.0, math.inf])
    moved = shifted(law, [0.5], np.random.default_rng(0))
    assert moved == ReuseLaw((1.5, 2.5), 3, 1.0)
    assert shifted(law, [], np.random.default_rng(0)) is law


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.floats(0.0, 100.0), st.just(math.inf)), min_size=1, max_size=40),
    st.floats(0.0, 120.0),
    st.floats(0.001, 200.0),
)
def test_density_is_the_maximum_over_every_hold(
    samples: list[float], age: float, hold: float
) -> None:
    arr = np.asarray(samples)
    law = ReuseLaw.from_samples(arr)
    d = law.density(age)
    assert d >= _ratio(arr, age, hold) * (1 - 1e-9)  # no hold does better
    finite = arr[np.isfinite(arr) & (arr >= age)]
    best = max((_ratio(arr, age, g - age) for g in finite), default=0.0)
    assert d == pytest.approx(best, rel=1e-9)  # and one of the samples attains it
