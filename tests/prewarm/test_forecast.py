"""Monte Carlo time-to-backend over a real PDGraph, and the need-probability algebra."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hermes_sdk.graph import PDGraph
from hermes_sdk.graph.records import START, Call, RunPath, RunState, Stage
from hermes_sdk.prewarm.forecast import (
    earliest_crossing_s,
    need_probability,
    stage_latency_s,
    times_to_backends,
)

from .builders import learned, stage, three_stage_path


def test_time_to_third_stage_backend_is_sum_of_first_two() -> None:
    rng = np.random.default_rng(0)
    g = learned([three_stage_path(rng, f"r{i}") for i in range(200)])
    t = times_to_backends(g, RunState(), ["box", "gpu"], n=4000, rng=rng)
    assert np.all(np.isinf(t["gpu"]))
    assert np.all(np.isfinite(t["box"]))
    assert t["box"].min() >= 8.0 and t["box"].max() <= 16.0
    assert abs(float(t["box"].mean()) - 12.0) < 0.3


def test_running_stage_on_backend_counts_zero_and_elapsed_conditions() -> None:
    rng = np.random.default_rng(1)
    g = learned([three_stage_path(rng, f"r{i}") for i in range(300)])
    visits = (("plan", 1), ("write", 1))
    running = RunState(node="write", visits=visits, running=True, elapsed_s=8.0)
    t = times_to_backends(g, running, ["box", "llm"], n=2000, rng=rng)
    assert np.all(t["llm"] == 0.0)
    assert t["box"].max() <= 2.0 + 1e-9  # write lasts <= 10 s and 8 s already passed


def test_loop_and_branch_probabilities() -> None:
    # think -> (search on 'web' with p=0.5 | END) -> think ...
    rng = np.random.default_rng(2)
    paths = []
    for i in range(400):
        stages = [stage("think", 1.0, "llm")]
        while rng.random() < 0.5 and len(stages) < 15:
            stages += [stage("search", 2.0, "web", "tool"), stage("think", 1.0, "llm")]
        paths.append(RunPath("react", tuple(stages), run_id=f"r{i}"))
    g = learned(paths)
    state = RunState.after(paths[0].stages[:1])
    t = times_to_backends(g, state, ["web"], n=4000, rng=rng)["web"]
    assert abs(float(np.mean(np.isfinite(t))) - 0.5) < 0.05
    assert np.all(t[np.isfinite(t)] == 0.0)  # the search starts right after the thought


def test_parallel_stage_latency_is_the_longest_call() -> None:
    g = PDGraph("fan")
    for _ in range(50):
        g.observe(RunPath("fan", (Stage("map", (Call(1.0), Call(5.0)), "llm", "llm"),)))
    lat = stage_latency_s(g, "map", np.random.default_rng(3), 20000)
    # max of two iid draws from {1, 5}: 1 w.p. 1/4
    assert abs(float(np.mean(lat == 1.0)) - 0.25) < 0.02


def test_unknown_app_state_gives_never() -> None:
    g = PDGraph("empty")
    t = times_to_backends(g, RunState(node=START), ["box"], n=10)
    assert np.all(np.isinf(t["box"]))


def test_need_probability_combines_independent_apps() -> None:
    a = np.array([1.0, 1.0, math.inf, math.inf])  # p = 0.5 within 2 s
    b = np.array([1.0, math.inf, math.inf, math.inf])  # p = 0.25
    assert need_probability([a, b], 2.0) == pytest.approx(1 - 0.5 * 0.75)
    assert need_probability([], 2.0) == 0.0


def test_earliest_crossing() -> None:
    a = np.array([10.0, 20.0, 30.0, 40.0])
    # P(T <= d + 5) >= 0.5 first at T = 20 -> d = 15
    assert earliest_crossing_s({"a": a}, 5.0, 0.5) == pytest.approx(15.0)
    assert earliest_crossing_s({"a": a}, 50.0, 0.5) == 0.0
    assert earliest_crossing_s({"a": np.full(4, math.inf)}, 5.0, 0.1) == math.inf
