"""Simulator: prewarm from the learned graph hides the cold start of a third-stage backend."""

from __future__ import annotations

import numpy as np

from hermes_sdk.graph import PDGraph
from hermes_sdk.graph.records import RunPath
from hermes_sdk.prewarm.keepalive import KeepAliveConfig
from hermes_sdk.prewarm.planner import PrewarmConfig, PrewarmPlanner
from hermes_sdk.prewarm.replay import replay

from .builders import three_stage_path

COLD_START_S = 4.0


def _runs(n: int, seed: int) -> list[tuple[float, RunPath]]:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(120.0, size=n))  # sparse: keep-alive alone cannot help
    return [(float(t), three_stage_path(rng, f"r{i}")) for i, t in enumerate(arrivals)]


def _planner(
    graphs: dict[str, PDGraph], predictive: bool = True, min_samples: int = 10
) -> PrewarmPlanner:
    cfg = PrewarmConfig(
        c_idle=1.0,
        c_delay=50.0,
        predictive=predictive,
        default_cold_start_s=COLD_START_S,
        keep_alive=KeepAliveConfig(fixed_s=30.0, min_samples=min_samples),
    )
    return PrewarmPlanner(lambda app, tenant: graphs.get(app), ["box", "gpu"], cfg)


def _observe(graphs: dict[str, PDGraph]) -> object:
    def observe(path: RunPath) -> None:
        graphs.setdefault(path.app, PDGraph(path.app)).observe(path)

    return observe


def test_third_stage_backend_warm_in_time_once_learned() -> None:
    graphs: dict[str, PDGraph] = {}
    planner = _planner(graphs)
    startup = {"box": lambda rng: COLD_START_S, "gpu": lambda rng: 30.0}
    result = replay(_runs(230, seed=7), planner, startup, observe=_observe(graphs))  # type: ignore[arg-type]
    waits = {run_id: w for run_id, _, b, w in result.stage_waits_s if b == "box"}
    learned_waits = [waits[f"r{i}"] for i in range(30, 230)]
    in_time = float(np.mean(np.asarray(learned_waits) == 0.0))
    assert in_time > 0.95, in_time
    assert all(b == "box" for _, _, b, _ in result.stage_waits_s)
    assert result.metrics["gpu"].prewarms == 0  # never used by the app: never warmed
    assert result.metrics["box"].prewarm_hits >= 190


def test_without_forecast_every_sparse_run_waits() -> None:
    graphs: dict[str, PDGraph] = {}
    planner = _planner(graphs, predictive=False, min_samples=10**9)  # fixed 30 s keep-alive
    startup = {"box": lambda rng: COLD_START_S, "gpu": lambda rng: 30.0}
    result = replay(_runs(60, seed=7), planner, startup, observe=_observe(graphs))  # type: ignore[arg-type]
    waits = np.asarray([w for _, _, b, w in result.stage_waits_s if b == "box"])
    assert float(np.mean(waits == COLD_START_S)) > 0.6
    assert result.metrics["box"].prewarms == 0
