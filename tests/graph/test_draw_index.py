"""Equal-weight draws skip the binary search but pick exactly the indices it picks."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_sdk.graph.montecarlo import MAX_WIDTH_DRAWS, stage_residual
from hermes_sdk.graph.prior import conditioned_residual
from hermes_sdk.graph.sketch import Sketch, SortedSamples


def _steps(m: int) -> np.ndarray:
    """Uniforms on and one ulp either side of every step k/m of the CDF, plus 0 and 1-ulp."""
    k = np.arange(m + 1) / m
    return np.concatenate(
        [k, np.nextafter(k, 0.0), np.nextafter(k, 1.0), [0.0, np.nextafter(1.0, 0.0)]]
    ).clip(0.0, np.nextafter(1.0, 0.0))


@settings(max_examples=200, deadline=None)
@given(m=st.integers(1, 5000), seed=st.integers(0, 2**32 - 1))
def test_draw_index_equals_searchsorted_on_and_around_every_step(m: int, seed: int) -> None:
    sk = Sketch(window=max(m, 1))
    rng = np.random.default_rng(seed)
    for v in rng.lognormal(0.0, 1.0, m):
        sk.add(float(v))
    samples = sk.sorted()
    assert samples.equal_weights
    u = np.concatenate([rng.random(2000), _steps(m)])
    expected = np.searchsorted(samples.cum_weights, u, side="right")
    assert np.array_equal(samples.draw_index(u), expected)


def test_decayed_sketch_keeps_the_binary_search() -> None:
    sk = Sketch(window=50, half_life_s=5.0)
    for i in range(50):
        sk.add(float(i % 7), float(i))
    samples = sk.sorted()
    assert not samples.equal_weights
    u = np.random.default_rng(3).random(500)
    assert np.array_equal(
        samples.draw_index(u), np.searchsorted(samples.cum_weights, u, side="right")
    )


def test_conditioned_residual_is_the_same_with_and_without_the_shortcut() -> None:
    rng = np.random.default_rng(7)
    values = np.sort(rng.lognormal(0.0, 1.0, 300))
    cum = np.arange(1, values.size + 1) / values.size
    fast = SortedSamples(values, cum, equal_weights=True)
    slow = SortedSamples(values, cum)
    for elapsed in (0.0, 0.1, float(values[150]), float(values[-2])):
        a = conditioned_residual(fast, elapsed, 4000, np.random.default_rng(11))
        b = conditioned_residual(slow, elapsed, 4000, np.random.default_rng(11))
        assert np.array_equal(a, b)


def test_a_known_width_sums_every_draw_as_the_masked_path_does() -> None:
    rng = np.random.default_rng(2)
    values = np.sort(rng.lognormal(0.0, 1.0, 200))
    calls = SortedSamples(values, np.arange(1, 201) / 200, equal_weights=True)
    for width, kind in ((3, "service"), (3, "latency"), (100, "service"), (100, "latency")):
        widths = np.full(500, width, dtype=np.int64)
        got = stage_residual(calls, widths, 0.4, np.random.default_rng(9), kind)  # type: ignore[arg-type]
        d = min(width, MAX_WIDTH_DRAWS)
        draws = conditioned_residual(calls, 0.4, 500 * d, np.random.default_rng(9)).reshape(500, d)
        mask = np.ones_like(draws, dtype=bool)
        want = (draws * mask).max(axis=1) if kind == "latency" else (draws * mask).sum(axis=1)
        if kind == "service":
            want = want * (widths / d)
        assert np.array_equal(got, want)
