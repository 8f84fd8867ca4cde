"""The retention rule: keep for T maximising P(return within T) - c E[min(gap, T)]."""

from __future__ import annotations

import math

import numpy as np

from hermes_sdk.graph import PDGraph
from hermes_sdk.graph.records import Call, RunPath, RunState, Stage
from hermes_sdk.prewarm.retention import (
    GraphRetention,
    next_llm_gaps,
    remaining_llm_calls,
    retention_s,
)
from hermes_sdk.prewarm.reuse_law import ReuseLaw

GRID = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)


def test_rule_keeps_until_the_likely_return_and_not_past_it() -> None:
    gaps = np.array([4.0] * 90 + [math.inf] * 10)  # back after 4 s with p 0.9
    assert retention_s(gaps, 0.01, GRID) == 5.0  # the smallest candidate covering the return
    assert retention_s(np.full(100, math.inf), 0.01, GRID) == 0.0  # never back: do not keep
    # holding costs more than a recompute is worth: P(back) 0.1 < c * 4 s
    sparse = np.array([4.0] * 10 + [math.inf] * 90)
    assert retention_s(sparse, 0.05, GRID) == 0.0
    assert retention_s(sparse, 0.001, GRID) == 5.0
    # monotone in the cost ratio: a dearer cache never keeps longer
    wide = np.linspace(0.5, 40.0, 200)
    kept = [retention_s(wide, c, GRID) for c in (0.0, 0.005, 0.02, 0.05, 0.5)]
    assert kept == sorted(kept, reverse=True) and kept[-1] == 0.0
    # a return read by 10 calls pays for a hold one read could not
    assert retention_s(sparse, 0.05, GRID, reads=10.0) == 5.0


def _loop_runs(graph: PDGraph, n: int) -> None:
    """think (llm) -> tool (3 s) -> think, ending after the 2nd think."""
    for i in range(n):
        think = Stage(node="think", calls=(Call(service_s=1.0),), kind="llm", backend="gpu")
        tool = Stage(node="tool", calls=(Call(service_s=3.0),), kind="tool", backend="box")
        graph.observe(RunPath(app="a", stages=(think, tool, think), run_id=f"r{i}"))


def test_graph_gaps_and_decisions_follow_the_learned_loop() -> None:
    graph = PDGraph("a")
    _loop_runs(graph, 30)
    rng = np.random.default_rng(0)
    after_first = RunState("think", (("think", 1),))
    gaps = next_llm_gaps(graph, after_first, "gpu", 200, rng)
    assert np.allclose(gaps, 3.0)  # always back after the tool's 3 s
    after_last = RunState("think", (("think", 2), ("tool", 1)))
    assert np.isinf(next_llm_gaps(graph, after_last, "gpu", 50, rng)).all()

    class Registry:
        def get(self, app: str, tenant: str = "default") -> PDGraph | None:
            return graph if app == "a" else None

    policy = GraphRetention(Registry(), 0.01, candidates_s=GRID)
    assert policy.retain_s("a", "default", after_first, "gpu", 0.0) == 5.0
    assert policy.retain_s("a", "default", after_last, "gpu", 0.0) == 0.0
    assert policy.retain_s("other", "default", after_first, "gpu", 0.0) is None  # no graph
    # the law a density-evicting cache takes: back after 3 s every time, or never
    law = policy.reuse_law("a", "default", after_first, "gpu", 0.0)
    assert law is not None and law.p_reuse == 1.0 and set(law.gaps_s) == {3.0}
    assert policy.reuse_law("a", "default", after_last, "gpu", 0.0) == ReuseLaw((), policy.n)
    assert policy.reuse_law("other", "default", after_first, "gpu", 0.0) is None
    ttl_only = GraphRetention(Registry(), 0.01, candidates_s=GRID, value_eviction=False)
    assert ttl_only.name == "pdgraph_ttl" and policy.name == "pdgraph"
    assert ttl_only.reuse_law("a", "default", after_first, "gpu", 0.0) is None
    assert ttl_only.retain_s("a", "default", after_first, "gpu", 0.0) == 5.0
    # the same walk counts the LLM calls left: one more think after the first, none after
    assert remaining_llm_calls(graph, after_first) == 1.0
    assert remaining_llm_calls(graph, after_last) == 0.0
