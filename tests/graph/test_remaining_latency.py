"""PDGraph.remaining_latency: the remaining-demand walk priced by stage latency, not service."""

from __future__ import annotations

import numpy as np
import pytest

from hermes_sdk.graph import GraphRegistry, PDGraph
from hermes_sdk.graph.records import Call, RunPath, RunState, Stage

WIDTH = 8


def _path(i: int, rng: np.random.Generator) -> RunPath:
    """plan (one 1 s call) -> map (WIDTH parallel calls of ~2 s) -> reduce (one 1 s call)."""
    calls = tuple(Call(float(rng.uniform(1.5, 2.5))) for _ in range(WIDTH))
    return RunPath(
        app="mapred",
        run_id=f"r{i}",
        stages=(
            Stage("plan", (Call(1.0),)),
            Stage("map", calls),  # latency defaults to the longest call
            Stage("reduce", (Call(1.0),)),
        ),
        started_at=float(i),
    )


@pytest.fixture(scope="module")
def graph() -> PDGraph:
    g = PDGraph("mapred")
    rng = np.random.default_rng(0)
    for i in range(200):
        g.observe(_path(i, rng))
    return g


def test_latency_sums_stage_latency_while_demand_sums_service(graph: PDGraph) -> None:
    demand = graph.remaining_demand(RunState(), n=2000)
    latency = graph.remaining_latency(RunState(), n=2000)
    assert float(demand.mean()) == pytest.approx(1.0 + 2.0 * WIDTH + 1.0, rel=0.05)
    # max of 8 uniforms on [1.5, 2.5] has mean 1.5 + 8/9
    assert float(latency.mean()) == pytest.approx(1.0 + 1.5 + 8 / 9 + 1.0, rel=0.05)


def test_running_wide_stage_residual_is_the_slowest_call(graph: PDGraph) -> None:
    state = RunState("map", (("plan", 1), ("map", 1)), running=True, elapsed_s=1.0, width=WIDTH)
    demand = graph.remaining_demand(state, n=2000)
    latency = graph.remaining_latency(state, n=2000)
    # each call has ~1 s left (uniform on (0.5, 1.5) given > 1 s), plus reduce's 1 s
    assert float(demand.mean()) == pytest.approx(WIDTH * 1.0 + 1.0, rel=0.1)
    assert 1.9 < float(latency.mean()) < 2.6
    assert float(latency.max()) <= 1.5 + 1.0 + 1e-6


def test_latency_answers_are_cached_apart_from_demand(graph: PDGraph) -> None:
    a = graph.remaining_latency(RunState(), n=500)
    b = graph.remaining_latency(RunState(), n=500)
    assert a is b
    assert graph.remaining_demand(RunState(), n=500).mean() > a.mean() * 3


def test_recorded_latency_with_queueing_is_learned() -> None:
    g = PDGraph("slow")
    for i in range(50):
        stage = Stage("tool", (Call(1.0),), latency_s=5.0)  # waited 4 s in a queue
        g.observe(RunPath(app="slow", run_id=f"r{i}", stages=(stage,), started_at=float(i)))
    assert g.remaining_latency(RunState(), n=100) == pytest.approx(np.full(100, 5.0))
    assert g.remaining_demand(RunState(), n=100) == pytest.approx(np.full(100, 1.0))


def test_graph_loaded_from_json_approximates_latency_by_service_over_width(
    graph: PDGraph,
) -> None:
    loaded = PDGraph.from_json(graph.to_json())
    latency = loaded.remaining_latency(RunState(), n=2000)
    # map: 16 s of service / width 8 = 2 s
    assert float(latency.mean()) == pytest.approx(1.0 + 2.0 + 1.0, rel=0.05)


def test_registry_remaining_latency_known_and_unknown_apps() -> None:
    reg = GraphRegistry()
    rng = np.random.default_rng(1)
    for i in range(100):
        reg.observe(_path(i, rng))
    known = reg.remaining_latency("mapred", RunState(), n=1000)
    assert float(known.mean()) < 0.5 * float(reg.remaining_demand("mapred", RunState()).mean())
    unknown = reg.remaining_latency("other", RunState(), n=100)
    assert unknown.shape == (100,) and np.all(unknown >= 0)
