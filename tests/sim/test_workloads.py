"""The workload suites: well-formed documents, valid sampled paths, determinism, load scaling."""

from __future__ import annotations

import json
import math
from typing import Any, cast

import numpy as np
import pytest

from hermes_sdk.graph.records import END, RunPath, path_from_dict, path_to_dict
from hermes_sdk.sim.workloads import (
    SUITES,
    demand_summary,
    light_suite,
    paper_suite,
    sample_path,
    suite_summary,
)
from hermes_sdk.sim.workloads.paths import sample_value

SUITE_NAMES = sorted(SUITES)
DIST_KEYS = {
    "deterministic": {"value"},
    "exponential": {"mean"},
    "uniform": {"low", "high"},
    "lognormal": {"mean", "cv"},
    "bounded_pareto": {"alpha", "low", "high"},
    "two_point": {"values", "probs"},
    "empirical": {"samples"},
}


def _workload(name: str, **kwargs: Any) -> dict[str, Any]:
    w = SUITES[name](load=0.85, seed=3, n_apps=400, warmup_apps=50, **kwargs)
    return cast(dict[str, Any], w)


def _check_dist(d: dict[str, Any], where: str) -> None:
    assert d["dist"] in DIST_KEYS, where
    assert set(d) - {"dist"} == DIST_KEYS[d["dist"]], where


def _edge_lists(unit: dict[str, Any]) -> list[list[dict[str, Any]]]:
    if "next" in unit:
        assert "by_visit" not in unit
        return [unit["next"]]
    return cast(list[list[dict[str, Any]]], unit["by_visit"])


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_suite_document_is_well_formed(name: str) -> None:
    w = _workload(name, deadlines=True)
    json.loads(json.dumps(w))  # plain JSON, nothing else
    assert w["seed"] == 3 and w["n_apps"] == 400 and w["warmup_apps"] == 50
    assert w["learning"] == "online"
    assert w["arrival"]["rate"] > 0
    backends = w["backends"]
    assert backends["llm"]["preemptive"] is True
    assert set(backends["llm"]["time_model"]) == {
        "prefill_s_per_token",
        "decode_s_per_token",
        "overhead_s",
    }
    names = [a["name"] for a in w["apps"]]
    assert len(names) == len(set(names)) >= 9
    for a in w["apps"]:
        assert a["weight"] > 0 and a["description"]
        assert a["start"] in a["units"]
        assert a["deadline"] == {"fraction": 0.22, "factors": [1.2, 1.5, 2.0]}
        for unit_name, unit in a["units"].items():
            where = f"{a['name']}.{unit_name}"
            assert unit["backend"] in backends, where
            _check_dist(unit["fanout"], where)
            if unit["kind"] == "llm":
                _check_dist(unit["input_tokens"], where)
                _check_dist(unit["output_tokens"], where)
                assert "time_model" in backends[unit["backend"]], where
            else:
                _check_dist(unit["service"], where)
            for edges in _edge_lists(unit):
                assert math.isclose(sum(e["p"] for e in edges), 1.0), where
                assert all(e["to"] == END or e["to"] in a["units"] for e in edges), where


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_trace_and_poisson_arrivals(name: str) -> None:
    trace = _workload(name, arrival="trace")["arrival"]
    assert trace["process"] == "trace" and len(trace["buckets"]) == 30
    assert math.isclose(sum(trace["buckets"]) / 30, 1.0, rel_tol=1e-4)
    assert max(trace["buckets"]) > 2.0  # bursty
    assert _workload(name, arrival="poisson")["arrival"]["process"] == "poisson"


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_every_app_yields_valid_paths(name: str) -> None:
    w = _workload(name)
    rng = np.random.default_rng(7)
    for a in w["apps"]:
        for i in range(30):
            path = sample_path(w, a["name"], rng, run_id=f"r{i}")
            assert isinstance(path, RunPath) and path.stages
            assert path_from_dict(json.loads(json.dumps(path_to_dict(path)))) == path
            assert path.stages[0].node == a["start"]
            for stage in path.stages:
                unit = a["units"][stage.node]
                assert stage.kind == unit["kind"] and stage.backend == unit["backend"]
                assert all(c.service_s > 0 for c in stage.calls)
                if unit["kind"] == "llm":
                    assert all(c.input_tokens and c.output_tokens for c in stage.calls)


def test_loops_and_prompt_growth_follow_the_laws() -> None:
    w = _workload("paper")
    rng = np.random.default_rng(11)
    turns = []
    for _ in range(2000):
        path = sample_path(w, "code_feedback", rng)
        gens = [s for s in path.stages if s.node == "code_generation"]
        turns.append(len(gens))
        assert path.stages[-1].node == "code_generation"  # ends after a generation
        if len(gens) > 1:  # the prompt grows by 660 tokens per turn on top of its 100-700 draw
            first, last = gens[0].calls[0].input_tokens, gens[-1].calls[0].input_tokens
            assert first is not None and last is not None
            assert last >= 100 + 660 * (len(gens) - 1)
    assert max(turns) == 6  # bounded loop
    # P(stop) = 0.4 per turn, truncated at 6: E[turns] = sum_{k<6} 0.6^k
    expected = sum(0.6**k for k in range(6))
    assert abs(np.mean(turns) - expected) < 0.1
    got = [len(sample_path(w, "got_docmerge", rng).stages) for _ in range(300)]
    assert min(got) == 6 and max(got) == 8  # two optional score repeats
    widths = {s.width for s in sample_path(w, "got_docmerge", rng).stages}
    assert 20 in widths


def test_deterministic_per_seed() -> None:
    a = paper_suite(0.85, seed=5, n_apps=100, warmup_apps=10)
    b = paper_suite(0.85, seed=5, n_apps=100, warmup_apps=10)
    assert json.dumps(a) == json.dumps(b)
    p1 = sample_path(a, "hugginggpt", np.random.default_rng(1))
    p2 = sample_path(b, "hugginggpt", np.random.default_rng(1))
    assert p1 == p2


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_rate_matches_target_load(name: str) -> None:
    lo, hi = _workload(name), SUITES[name](load=0.95, seed=3)
    assert math.isclose(hi["arrival"]["rate"] / lo["arrival"]["rate"], 0.95 / 0.85)
    summary = suite_summary(hi)
    slots = hi["backends"]["llm"]["servers"]
    assert math.isclose(hi["arrival"]["rate"] * summary.service_s["llm"] / slots, 0.95)
    for pool in ("search", "container", "dnn"):  # the engine is the bottleneck
        busy = hi["arrival"]["rate"] * summary.service_s[pool] / hi["backends"][pool]["servers"]
        assert busy < 0.45, pool
    # an independent estimate of the mean demand agrees with the cached one within 5%
    fresh = demand_summary(hi, n_per_app=300, seed=99)
    assert math.isclose(fresh.service_s["llm"], summary.service_s["llm"], rel_tol=0.05)


def test_paper_tail_is_heavy_and_light_tail_is_not() -> None:
    def tail_ratio(w: dict[str, Any]) -> float:
        s = suite_summary(w)
        total = sum(a["weight"] for a in w["apps"])
        mean = sum(a["weight"] * s.per_app_service_s[a["name"]] for a in w["apps"]) / total
        return max(s.per_app_service_s.values()) / mean

    assert tail_ratio(_workload("paper")) > 20
    assert tail_ratio(_workload("light")) < 4
    assert max(suite_summary(_workload("light")).per_app_service_s.values()) < 200


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="load"):
        paper_suite(1.2)
    with pytest.raises(ValueError, match="warmup"):
        light_suite(0.5, n_apps=10, warmup_apps=10)
    with pytest.raises(ValueError, match="dist"):
        sample_value({"dist": "zipf"}, np.random.default_rng(0))


@pytest.mark.parametrize("name", SUITE_NAMES)
def test_suites_pass_the_simulator_schema(name: str) -> None:
    workload_module = pytest.importorskip("hermes_sdk.sim.workload")
    for deadlines in (False, True):
        for arrival in ("trace", "poisson"):
            doc = _workload(name, deadlines=deadlines, arrival=arrival)
            workload_module.parse_workload(doc)
