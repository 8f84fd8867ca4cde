"""Histogram keep-alive and cold-start sketch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hermes_sdk.errors import ConfigError
from hermes_sdk.prewarm.keepalive import ColdStartSketch, IdleHistogram, KeepAliveConfig


def test_fixed_keep_alive_until_enough_samples() -> None:
    h = IdleHistogram(KeepAliveConfig(min_samples=5, fixed_s=42.0))
    for _ in range(4):
        h.observe(1.0)
    assert h.keep_alive_s() == 42.0
    h.observe(1.0)
    assert h.keep_alive_s() < 42.0


def test_keep_alive_covers_the_percentile_of_idle_gaps() -> None:
    cfg = KeepAliveConfig(percentile=0.9, margin=0.0, min_samples=10, decay=1.0)
    h = IdleHistogram(cfg)
    gaps = np.random.default_rng(1).uniform(2.0, 20.0, size=2000)
    for g in gaps:
        h.observe(float(g))
    ka = h.keep_alive_s()
    covered = float(np.mean(gaps <= ka))
    assert 0.9 <= covered <= 0.9 + 0.2  # the bin edge is above the percentile, not far


def test_keep_alive_is_bounded() -> None:
    h = IdleHistogram(KeepAliveConfig(min_samples=1, min_s=3.0, max_s=100.0, fixed_s=10.0))
    h.observe(0.0)
    assert h.keep_alive_s() == 3.0
    for _ in range(100):
        h.observe(1e6)
    assert h.quantile_s(0.99) == math.inf
    assert h.keep_alive_s() == 100.0


def test_decay_follows_drift() -> None:
    h = IdleHistogram(KeepAliveConfig(min_samples=1, decay=0.9, percentile=0.5, margin=0.0))
    for _ in range(50):
        h.observe(100.0)
    for _ in range(50):
        h.observe(1.0)
    assert h.keep_alive_s() < 2.0


def test_invalid_config_raises() -> None:
    with pytest.raises(ConfigError):
        KeepAliveConfig(percentile=0.0)
    with pytest.raises(ConfigError):
        KeepAliveConfig(min_s=10.0, max_s=1.0)


@given(st.lists(st.floats(min_value=0.0, max_value=5000.0), min_size=1, max_size=60))
def test_keep_alive_within_bounds(gaps: list[float]) -> None:
    cfg = KeepAliveConfig(min_samples=1, min_s=0.5, max_s=600.0, fixed_s=60.0)
    h = IdleHistogram(cfg)
    for g in gaps:
        h.observe(g)
    assert cfg.min_s <= h.keep_alive_s() <= cfg.max_s


def test_cold_start_sketch_prior_then_observed() -> None:
    s = ColdStartSketch(prior_s=7.0, window=3)
    assert s.quantile_s(0.9) == 7.0 and s.mean_s() == 7.0
    for v in (1.0, 2.0, 3.0, 4.0):
        s.observe(v)
    s.observe(float("nan"))
    assert s.count == 3
    assert s.mean_s() == 3.0
    assert s.quantile_s(1.0) == 4.0


def test_cost_keep_alive_releases_when_forecasts_cover_long_gaps() -> None:
    h = IdleHistogram(KeepAliveConfig(min_samples=5, decay=1.0))
    for _ in range(50):
        h.observe(30.0, covered=True)  # a prewarm re-warms in time: keeping costs 30 s idle
    assert h.cost_keep_alive_s(c_idle=1.0, c_delay=20.0, cold_start_s=2.0) == 0.0
    assert h.keep_alive_s() < 0.1  # the percentile rule counts covered gaps as 0


def test_cost_keep_alive_covers_frequent_uncovered_short_gaps() -> None:
    h = IdleHistogram(KeepAliveConfig(min_samples=5, decay=1.0))
    for _ in range(50):
        h.observe(5.0)  # unpredicted, 5 s: keeping (5 idle s) beats a 2 s wait at 20x cost
    ka = h.cost_keep_alive_s(c_idle=1.0, c_delay=20.0, cold_start_s=2.0)
    assert 5.0 <= ka <= 6.0
    # when delay is cheap, releasing at once is better
    assert h.cost_keep_alive_s(c_idle=1.0, c_delay=1.0, cold_start_s=2.0) == 0.0
