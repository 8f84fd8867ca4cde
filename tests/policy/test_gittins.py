"""gittins_index: textbook values and the properties any correct index has."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hermes_sdk.policy import gittins_index, gittins_index_and_quantum
from hermes_sdk.policy.gittins import MIN_RESIDUAL_S

TWO_POINT = np.array([1.0] * 9 + [20.0])


def brute_force_index(samples: np.ndarray, attained: float) -> float:
    """max over D of P(R-a <= D | R > a) / E[min(R-a, D) | R > a], by definition."""
    res = samples[samples > attained] - attained
    best = 0.0
    for d in np.unique(res):
        p = np.mean(res <= d)
        e = np.mean(np.minimum(res, d))
        best = max(best, p / e)
    return best


def test_two_point_values() -> None:
    assert gittins_index(TWO_POINT) == pytest.approx(0.9)
    assert gittins_index(TWO_POINT, attained=1.0) == pytest.approx(1 / 19)
    # inside the first quantum the index rises: 0.9 / (1 - a)
    assert gittins_index(TWO_POINT, attained=0.5) == pytest.approx(1.8)


def test_two_point_closed_form_general() -> None:
    for p, big in [(0.9, 20.0), (0.5, 3.0), (0.2, 2.0), (0.99, 1000.0)]:
        samples = np.array([1.0] * round(p * 100) + [big] * round((1 - p) * 100))
        expected = max(p, 1.0 / (p + (1 - p) * big))
        assert gittins_index(samples) == pytest.approx(expected)
        assert gittins_index(samples, attained=1.0) == pytest.approx(1 / (big - 1))


def test_quantum_is_the_maximising_residual() -> None:
    index, quantum = gittins_index_and_quantum(TWO_POINT)
    assert (index, quantum) == (pytest.approx(0.9), 1.0)
    index, quantum = gittins_index_and_quantum(TWO_POINT, attained=1.0)
    assert quantum == pytest.approx(19.0)


def test_exponential_index_is_rate_at_any_age() -> None:
    # a quantile grid of Exp(mean 2): the empirical index is exact up to grid resolution
    # (random draws would not do: the smallest residuals make the max over quanta noisy)
    m = 100_000
    samples = -2.0 * np.log1p(-np.arange(1, m + 1) / (m + 1))
    assert gittins_index(samples) == pytest.approx(0.5, rel=0.01)
    for age in (1.0, 4.0):
        # memoryless: conditioned on R > age the residual is again Exp(mean 2)
        assert gittins_index(samples + age, age) == pytest.approx(0.5, rel=0.01)
    # an empirical distribution is discrete: conditioned on an age between two atoms, the next
    # atom is a short quantum that completes with probability 1/m, so the index exceeds 1/2
    assert gittins_index(samples, 4.0) > 0.5


def test_outlived_history_falls_back_to_attained() -> None:
    assert gittins_index([1.0, 2.0], attained=4.0) == pytest.approx(0.25)
    assert math.isfinite(gittins_index([0.0, 0.0]))


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        gittins_index([])
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError):
            gittins_index([1.0, bad, 2.0])
    with pytest.raises(ValueError):
        gittins_index([1.0], attained=-1.0)


sizes = st.lists(
    st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(sizes, st.floats(min_value=0.0, max_value=1e4))
def test_matches_definition(samples: list[float], attained: float) -> None:
    arr = np.array(samples)
    residuals = arr[arr > attained] - attained
    # residuals under MIN_RESIDUAL_S are float round-off, clamped on purpose (index <= 1e9/s)
    assume(residuals.size > 0 and residuals.min() >= MIN_RESIDUAL_S)
    assert gittins_index(arr, attained) == pytest.approx(brute_force_index(arr, attained))


def test_round_off_residuals_are_clamped() -> None:
    # 1e4 - (1e4 - 2e-12): a residual that is float noise must not dominate the index
    assert gittins_index([1e4], attained=1e4 - 2e-12) == pytest.approx(1 / MIN_RESIDUAL_S)


@settings(max_examples=200, deadline=None)
@given(sizes, st.randoms(use_true_random=False))
def test_positive_finite_order_invariant(samples: list[float], rnd: object) -> None:
    value = gittins_index(samples)
    assert value > 0.0
    assert math.isfinite(value)
    shuffled = list(samples)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert gittins_index(shuffled) == pytest.approx(value, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(sizes, st.floats(min_value=1e-3, max_value=1e3))
def test_scales_as_inverse(samples: list[float], c: float) -> None:
    arr = np.array(samples)
    assert gittins_index(arr * c) == pytest.approx(gittins_index(arr) / c, rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(min_value=1e-3, max_value=1e4),
    st.integers(min_value=1, max_value=50),
)
def test_single_valued_is_inverse_mean(value: float, count: int) -> None:
    assert gittins_index([value] * count) == pytest.approx(1.0 / value, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(sizes)
def test_index_at_least_inverse_mean(samples: list[float]) -> None:
    # D = max sample gives P = 1 and E[min] = mean, so the index is at least 1 / mean
    assert gittins_index(samples) >= (1.0 / float(np.mean(samples))) * (1 - 1e-12)


def _allocating_index(samples: np.ndarray, attained: float) -> tuple[float, float]:
    """The textbook vectorised form (mask, sort, cumsum) the scratch-buffer version replaced."""
    res = np.sort(samples[samples > attained] - attained)
    if res.size == 0:
        guess = max(attained, MIN_RESIDUAL_S)
        return 1.0 / guess, guess
    m = res.size
    k = np.arange(1, m + 1, dtype=np.float64)
    denom = np.cumsum(res) + (m - k) * res
    if res[0] < MIN_RESIDUAL_S:
        denom = np.maximum(denom, MIN_RESIDUAL_S * m)
    ratios = k / denom
    best = int(ratios.argmax())
    return float(ratios[best]), float(res[best])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(0.0, 1e4), min_size=1, max_size=300),
    st.sampled_from([0.0, 0.5, 3.0, 1e3]),
)
def test_scratch_buffers_give_the_exact_textbook_result(
    samples: list[float], attained: float
) -> None:
    """Same floats as the allocating form, including zeros, ties and outlived histories, and
    across calls of different sizes that reuse the same buffers."""
    arr = np.array(samples)
    assert gittins_index_and_quantum(arr, attained) == _allocating_index(arr, attained)
    assert gittins_index_and_quantum(arr[::2], attained) == _allocating_index(arr[::2], attained)
