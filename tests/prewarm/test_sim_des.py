"""The planner inside the discrete-event simulator drives the simulated backends' warm state."""

from __future__ import annotations

import numpy as np

from hermes_sdk.graph.records import END
from hermes_sdk.prewarm.keepalive import KeepAliveConfig
from hermes_sdk.prewarm.planner import GraphLookup, PrewarmConfig, PrewarmPlanner
from hermes_sdk.prewarm.sim_des import PrewarmSimResult, simulate_prewarm
from hermes_sdk.sim.workloads.spec import (
    Workload,
    app,
    llm_backend,
    llm_unit,
    poisson_arrival,
    pool_backend,
    service_unit,
    to,
    uniform,
)


def workload(n_apps: int = 160) -> Workload:
    """'coder' always runs its tests in a cold container as its third stage; 'chat' never does;
    the 'gpu' pool has a cold start but no app uses it. Sparse arrivals: keep-alive cannot help."""
    coder = {
        "plan": llm_unit(uniform(300, 600), uniform(40, 80), next_=[to("write")]),
        "write": llm_unit(uniform(500, 900), uniform(80, 160), next_=[to("test")]),
        "test": service_unit("container", "container", uniform(1.0, 2.0), next_=[to(END)]),
    }
    chat = {"reply": llm_unit(uniform(200, 400), uniform(20, 60), next_=[to(END)])}
    return {
        "seed": 5,
        "n_apps": n_apps,
        "warmup_apps": 40,
        "arrival": poisson_arrival(1 / 40),
        "learning": "online",
        "backends": {
            "llm": llm_backend(8),
            "container": pool_backend(2, cold_start_s=3.0, keep_alive_s=5.0),
            "gpu": pool_backend(1, cold_start_s=20.0, keep_alive_s=5.0),
        },
        "apps": [app("coder", 1.0, "plan", coder, ""), app("chat", 1.0, "reply", chat, "")],
    }


def run(predictive: bool) -> PrewarmSimResult:
    def build(lookup: GraphLookup, cold: list[str]) -> PrewarmPlanner:
        keep = KeepAliveConfig() if predictive else KeepAliveConfig(fixed_s=5.0, min_samples=10**9)
        cfg = PrewarmConfig(c_delay=50.0, predictive=predictive, keep_alive=keep)
        return PrewarmPlanner(lookup, cold, cfg)

    return simulate_prewarm(workload(), "fcfs", build)


def test_third_stage_container_is_warm_in_time_in_the_simulator() -> None:
    res = run(predictive=True)
    coder = np.asarray([n == "coder" for n in res.app_names])
    assert coder.sum() > 40
    in_time = float(np.mean(res.cold_wait_s[coder] == 0.0))
    assert in_time > 0.95, in_time
    metrics = res.planner.metrics(res.end_s)
    assert metrics["gpu"].prewarms == 0 and metrics["gpu"].requests == 0
    assert metrics["container"].prewarm_hits > 40


def test_without_forecasts_the_container_is_cold_for_most_runs() -> None:
    res = run(predictive=False)
    coder = np.asarray([n == "coder" for n in res.app_names])
    assert float(np.mean(res.cold_wait_s[coder] > 0.0)) > 0.6
    assert res.planner.ledger.totals().prewarms == 0
