"""Simulator mechanics on small hand-computable workloads: fan-out, loops, tokens, batching,
processor sharing, cold starts, arrivals, deadlines."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from hermes_sdk.policy import POLICY_NAMES
from hermes_sdk.sim import SimResult, simulate

SPARSE = {"process": "poisson", "rate": 1e-4}
"""Apps ~10^4 s apart: no two overlap, so each takes exactly its standalone time."""


def workload(units: dict[str, Any], backends: dict[str, Any], **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "seed": 7,
        "n_apps": 20,
        "arrival": SPARSE,
        "backends": backends,
        "learning": "oracle",
        "rank_samples": 100,
        "apps": [{"name": "app", "start": next(iter(units)), "units": units}],
    }
    app_extra = extra.pop("app", {})
    doc["apps"][0].update(app_extra)
    doc.update(extra)
    return doc


def det(value: float) -> dict[str, Any]:
    return {"dist": "deterministic", "value": value}


END = [{"to": "END", "p": 1.0}]


def unit(backend: str, service: float, nxt: Any = END, **kw: Any) -> dict[str, Any]:
    return {"kind": "tool", "backend": backend, "service": det(service), "next": nxt, **kw}


def all_equal(result: SimResult, value: float) -> None:
    assert result.completion_times == pytest.approx(np.full(result.n, value))


def test_fanout_runs_in_parallel_on_enough_slots() -> None:
    units = {
        "map": unit("pool", 1.0, [{"to": "reduce", "p": 1.0}], fanout=det(3)),
        "reduce": unit("pool", 2.0),
    }
    all_equal(simulate(workload(units, {"pool": {"servers": 3}}), "fcfs"), 3.0)
    all_equal(simulate(workload(units, {"pool": {"servers": 1}}), "fcfs"), 5.0)
    all_equal(simulate(workload(units, {"pool": {"servers": "inf"}}), "fcfs"), 3.0)


def test_by_visit_loop_and_prompt_growth_with_time_model() -> None:
    loop = [[{"to": "think", "p": 1.0}], [{"to": "think", "p": 1.0}], END]
    units = {
        "think": {
            "kind": "llm",
            "backend": "llm",
            "input_tokens": det(100),
            "output_tokens": det(10),
            "prompt_growth_tokens": 50,
            "by_visit": loop,
        }
    }
    llm = {"servers": 4, "preemptive": True,
           "time_model": {"per_input_token_s": 0.01, "per_output_token_s": 0.1}}  # fmt: skip
    # visits: (100 + 0, 150, 200 input tokens) * 0.01 + 10 * 0.1
    all_equal(simulate(workload(units, {"llm": llm}), "gittins"), 2.0 + 2.5 + 3.0)
    # the artifact's spelling of the time model is accepted too
    llm2 = {"servers": 4, "time_model": {"prefill_s_per_token": 0.01, "decode_s_per_token": 0.1}}
    all_equal(simulate(workload(units, {"llm": llm2}), "fcfs"), 7.5)


def test_batch_speed_curve_and_processor_sharing() -> None:
    units = {"u": unit("gpu", 1.0, fanout=det(2))}
    all_equal(simulate(workload(units, {"gpu": {"servers": 2, "speed": [1.0, 0.5]}}), "fcfs"), 2.0)
    slow = {"gpu": {"servers": 2, "batch_slowdown": 1.0}}  # speed 1 / (1 + (k - 1))
    all_equal(simulate(workload(units, slow), "fcfs"), 2.0)
    # PS on one slot: both calls share it and end together at 2 s; FCFS ends them at 1 s and 2 s
    all_equal(simulate(workload(units, {"gpu": {"servers": 1}}), "ps"), 2.0)
    all_equal(simulate(workload(units, {"gpu": {"servers": 1}}), "fcfs"), 2.0)


def test_cold_start_after_keep_alive() -> None:
    units = {"u": unit("fn", 1.0)}
    always_cold = {"fn": {"servers": 1, "cold_start_s": 5.0, "keep_alive_s": 10.0}}
    result = simulate(workload(units, always_cold), "fcfs")
    all_equal(result, 6.0)
    assert result.cold_wait.cold_starts == 20
    assert result.cold_wait.mean_s == pytest.approx(5.0)
    assert result.cold_wait.app_mean_s == pytest.approx(5.0)
    once = {"fn": {"servers": 1, "cold_start_s": 5.0, "keep_alive_s": None}}
    result = simulate(workload(units, once), "fcfs")
    assert result.cold_wait.cold_starts == 1
    assert sorted(result.completion_times)[-1] == pytest.approx(6.0)
    warm = {"fn": {"servers": 1, "cold_start_s": 5.0, "initially_warm": True}}
    all_equal(simulate(workload(units, warm), "fcfs"), 1.0)


def test_trace_arrivals_follow_the_rate_profile() -> None:
    units = {"u": unit("cpu", 0.01)}
    doc = workload(units, {"cpu": {"servers": "inf"}}, n_apps=4000)
    doc["arrival"] = {"process": "trace", "bucket_s": 100.0, "rates": [0.0, 2.0]}
    t = simulate(doc, "fcfs").arrival_times
    assert np.all(np.mod(t, 200.0) >= 100.0 - 1e-9)
    assert t.size / t[-1] == pytest.approx(1.0, rel=0.1)
    doc["arrival"] = {"process": "trace", "bucket_s": 50.0, "rate": 4.0, "buckets": [1.0, 3.0]}
    t = simulate(doc, "fcfs").arrival_times
    in_busy = np.mod(t, 100.0) >= 50.0
    assert in_busy.mean() == pytest.approx(0.75, abs=0.03)
    assert t.size / t[-1] == pytest.approx(4.0, rel=0.1)


def test_load_process_sets_the_busiest_backend_utilisation() -> None:
    units = {
        "a": unit("cpu", 1.0, [{"to": "b", "p": 1.0}]),
        "b": unit("gpu", 3.0, fanout=det(2)),
    }
    doc = workload(units, {"cpu": {"servers": 1}, "gpu": {"servers": 4}}, n_apps=3000)
    doc["arrival"] = {"process": "load", "load": 0.5}
    result = simulate(doc, "fcfs")
    # gpu: 6 s of demand per app on 4 slots is the bottleneck (cpu: 1 s on 1 slot)
    assert result.backend_utilization["gpu"] == pytest.approx(0.5, rel=0.06)
    assert result.backend_utilization["cpu"] == pytest.approx(0.5 * 4 / 6, rel=0.06)


def test_deadlines_relative_to_standalone_time() -> None:
    units = {"u": unit("cpu", 2.0)}
    backends = {"cpu": {"servers": 1}}
    doc = workload(units, backends, app={"deadline": {"fraction": 1.0, "factors": [1.5]}})
    result = simulate(doc, "lstf")
    assert result.n_deadline == 20
    assert result.deadline_hit_rate == 1.0
    doc = workload(units, backends, app={"deadline_s": 1.0})
    assert simulate(doc, "edf").deadline_hit_rate == 0.0
    half = workload(
        units, backends, n_apps=400, app={"deadline": {"fraction": 0.5, "factors": [2.0]}}
    )
    assert simulate(half, "fcfs").n_deadline == pytest.approx(200, abs=40)
    assert simulate(workload(units, backends), "fcfs").deadline_hit_rate is None


def test_deadline_policies_meet_more_deadlines_under_load() -> None:
    units = {"u": {"kind": "tool", "backend": "cpu",
                   "service": {"dist": "exponential", "mean": 1.0}, "next": END}}  # fmt: skip
    doc = workload(
        units,
        {"cpu": {"servers": 1, "preemptive": True}},
        n_apps=4000,
        app={"deadline": {"fraction": 0.3, "factors": [2.0, 4.0]}},
    )
    doc["arrival"] = {"process": "poisson", "rate": 0.9}
    hit = {p: simulate(doc, p).deadline_hit_rate for p in ("fcfs", "edf", "lstf")}
    assert hit["lstf"] > hit["fcfs"] and hit["edf"] > hit["fcfs"], hit  # type: ignore[operator]


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_policy_runs_a_multi_stage_workload(policy: str) -> None:
    units = {
        "plan": {"kind": "llm", "backend": "llm", "input_tokens": det(500),
                 "output_tokens": {"dist": "uniform", "low": 10, "high": 100},
                 "next": [{"to": "act", "p": 1.0}]},
        "act": {"kind": "tool", "backend": "tools",
                "service": {"dist": "lognormal", "mean": 1.0, "cv": 1.5},
                "fanout": {"dist": "empirical", "samples": [1, 2, 3]},
                "by_visit": [[{"to": "plan", "p": 0.6}, {"to": "END", "p": 0.4}],
                             [{"to": "plan", "p": 0.3}, {"to": "END", "p": 0.7}], END]},
    }  # fmt: skip
    backends = {
        "llm": {"servers": 4, "preemptive": True, "speed": [1.0, 0.9, 0.8, 0.7],
                "time_model": {"per_input_token_s": 1e-4, "per_output_token_s": 0.02}},
        "tools": {"servers": 2, "cold_start_s": 0.5, "keep_alive_s": 5.0},
    }  # fmt: skip
    doc = workload(units, backends, n_apps=600, warmup_apps=50,
                   app={"deadline": {"fraction": 0.3, "factors": [1.5, 3.0]}})  # fmt: skip
    doc["arrival"] = {"process": "load", "load": 0.7}
    result = simulate(doc, policy)
    assert result.n == 550
    assert result.policy == policy
    assert np.all(result.completion_times >= 0)
    assert np.all(result.slowdowns >= 1.0 - 1e-9)
    assert result.littles_law.relative_error < 0.02
    assert result.to_dict()["per_app"] == {"app": {"n": 550, "mean": result.mean,
                                                   "p95": result.p95}}  # fmt: skip


def test_same_seed_same_apps_for_every_policy() -> None:
    units = {"u": {"kind": "tool", "backend": "cpu",
                   "service": {"dist": "exponential", "mean": 1.0}, "next": END}}  # fmt: skip
    doc = workload(units, {"cpu": {"servers": 1, "preemptive": True}}, n_apps=500)
    doc["arrival"] = {"process": "poisson", "rate": 0.7}
    a, b = simulate(doc, "fcfs"), simulate(doc, "srpt_oracle")
    assert np.array_equal(a.arrival_times, b.arrival_times)
    assert np.array_equal(a.demands, b.demands)
    assert b.mean < a.mean
    c = simulate(copy.deepcopy(doc), "fcfs", seed=8)
    assert not np.array_equal(a.arrival_times, c.arrival_times)
    again = simulate(doc, "fcfs")
    assert np.array_equal(a.completion_times, again.completion_times)


def test_progress_is_reported() -> None:
    seen: list[tuple[int, int]] = []
    units = {"u": unit("cpu", 1.0)}
    simulate(workload(units, {"cpu": {"servers": 1}}, n_apps=300), "fcfs",
             progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert seen and seen[-1][1] == 300 and seen[-1][0] <= 300
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_request_fcfs_fast_path_matches_the_generic_rank_path() -> None:
    """FCFS takes the simulator's fast path (keys without an AppState, no preemption scan on
    preemptive backends); a subclass takes the generic one. Both give the same schedule."""
    from hermes_sdk.policy.baselines import FCFSPolicy
    from hermes_sdk.sim.workloads import light_suite

    class GenericFCFS(FCFSPolicy):
        pass

    wl = light_suite(load=0.9, seed=4, n_apps=300, warmup_apps=30, learning="oracle")
    fast, generic = simulate(wl, FCFSPolicy()), simulate(wl, GenericFCFS())
    assert fast.completion_times.tolist() == generic.completion_times.tolist()
