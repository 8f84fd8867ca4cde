"""The oracle demand model: conditional residuals and Monte Carlo futures of the true program."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hermes_sdk import RunState
from hermes_sdk.policy import DemandModel, gittins_index
from hermes_sdk.sim import OracleModel, parse_workload
from hermes_sdk.sim.programs import DemandSampler, Program, UniformStream


def programs(units: dict[str, Any], backends: dict[str, Any] | None = None) -> dict[str, Program]:
    doc = {
        "n_apps": 1,
        "arrival": {"process": "poisson", "rate": 1.0},
        "backends": backends or {"cpu": {"servers": 1}},
        "apps": [{"name": "app", "start": next(iter(units)), "units": units}],
    }
    wl = parse_workload(doc)
    return {a.name: Program(a, wl.backends, wl.max_stages) for a in wl.apps}


def one_unit(service: dict[str, Any]) -> dict[str, Program]:
    return programs(
        {"u": {"backend": "cpu", "service": service, "next": [{"to": "END", "p": 1.0}]}}
    )


def running(elapsed_s: float) -> RunState:
    return RunState(node="u", visits=(("u", 1),), running=True, elapsed_s=elapsed_s, width=1)


def test_two_point_residuals() -> None:
    oracle = OracleModel(one_unit({"dist": "two_point", "values": [1, 20], "probs": [0.9, 0.1]}))
    assert isinstance(oracle, DemandModel)
    fresh = oracle.remaining_demand("app", running(0.0), n=1000)
    assert np.mean(fresh == 1.0) == pytest.approx(0.9, abs=0.002)
    assert gittins_index(fresh) == pytest.approx(0.9, rel=0.01)
    late = oracle.remaining_demand("app", running(1.0), n=1000)
    assert late == pytest.approx(np.full(late.size, 19.0))
    assert gittins_index(late) == pytest.approx(1 / 19)
    # just below the atom, round-off must not leave a near-zero residual behind
    almost = oracle.remaining_demand("app", running(1.0 - 1e-13), n=1000)
    assert almost.min() > 18.0


def test_exponential_is_memoryless() -> None:
    oracle = OracleModel(one_unit({"dist": "exponential", "mean": 2.0}))
    for elapsed in (0.0, 3.0, 10.0):
        residual = oracle.remaining_demand("app", running(elapsed), n=2000)
        assert residual.mean() == pytest.approx(2.0, rel=0.02)
        assert gittins_index(residual) == pytest.approx(0.5, rel=0.02)


def test_total_demand_from_start_and_between_stages() -> None:
    units = {
        "a": {"backend": "cpu", "service": {"dist": "deterministic", "value": 1.0},
              "fanout": {"dist": "deterministic", "value": 2}, "next": [{"to": "b", "p": 1.0}]},
        "b": {"backend": "cpu", "service": {"dist": "deterministic", "value": 3.0},
              "by_visit": [[{"to": "b", "p": 1.0}], [{"to": "END", "p": 1.0}]]},
    }  # fmt: skip
    oracle = OracleModel(programs(units))
    assert oracle.remaining_demand("app", RunState(), n=50) == pytest.approx(np.full(50, 8.0))
    after_a = RunState(node="a", visits=(("a", 1),))
    assert oracle.remaining_demand("app", after_a, n=50) == pytest.approx(np.full(50, 6.0))
    in_b = RunState(node="b", visits=(("a", 1), ("b", 2)), running=True, elapsed_s=1.0, width=1)
    assert oracle.remaining_demand("app", in_b, n=50) == pytest.approx(np.full(50, 2.0))


def test_vectorised_sampler_matches_the_program_walk() -> None:
    units = {
        "plan": {"kind": "llm", "backend": "llm",
                 "input_tokens": {"dist": "uniform", "low": 100, "high": 900},
                 "output_tokens": {"dist": "lognormal", "mean": 50, "cv": 1.0},
                 "prompt_growth_tokens": 300, "next": [{"to": "act", "p": 1.0}]},
        "act": {"backend": "cpu", "service": {"dist": "bounded_pareto", "alpha": 1.5,
                                               "low": 0.1, "high": 20},
                "fanout": {"dist": "empirical", "samples": [1, 2, 5]},
                "by_visit": [[{"to": "plan", "p": 0.7}, {"to": "END", "p": 0.3}],
                             [{"to": "plan", "p": 0.4}, {"to": "END", "p": 0.6}]]},
    }  # fmt: skip
    llm_time = {"per_input_token_s": 1e-3, "per_output_token_s": 0.02}
    backends = {"cpu": {"servers": 1}, "llm": {"servers": 4, "time_model": llm_time}}
    program = programs(units, backends)["app"]
    stream = UniformStream(np.random.default_rng(1))
    walked = np.array([sum(s.service_s for s in program.realize(stream)) for _ in range(20_000)])
    sampled = DemandSampler(program).remaining("plan", (), 20_000, np.random.default_rng(2),
                                               enter=True)  # fmt: skip
    for q in (25, 50, 75, 90):
        assert np.percentile(sampled, q) == pytest.approx(np.percentile(walked, q), rel=0.05)
    assert sampled.mean() == pytest.approx(walked.mean(), rel=0.03)
