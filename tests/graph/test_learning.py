"""A PDGraph learns a known generator: transitions, loop law by visit, and mean demand."""

from __future__ import annotations

import numpy as np
import pytest

from hermes_sdk import END, START, GraphError, PDGraph, RunState
from tests.graph import generator as gen


@pytest.fixture(scope="module")
def learned() -> PDGraph:
    rng = np.random.default_rng(20261125)
    graph = PDGraph(gen.APP, window=2000)  # every run in the (transition) windows
    for i in range(2000):
        graph.observe(gen.make_path(rng, i))
    return graph


def _edge_p(graph: PDGraph, source: str, target: str) -> float:
    for edge in graph.to_dict(include_samples=False)["edges"]:  # type: ignore[union-attr]
        if edge["source"] == source and edge["target"] == target:
            return float(edge["p"])
    return 0.0


def test_counts_runs_and_versions(learned: PDGraph) -> None:
    assert learned.runs == 2000
    assert learned.version == 2000
    assert sorted(learned.nodes) == ["lookup", "plan", "refine", "search"]


def test_branch_probabilities_within_003(learned: PDGraph) -> None:
    assert _edge_p(learned, START, "plan") == 1.0
    assert abs(_edge_p(learned, "plan", "search") - gen.P_SEARCH) <= 0.03
    assert abs(_edge_p(learned, "plan", "lookup") - (1 - gen.P_SEARCH)) <= 0.03
    assert _edge_p(learned, "search", "refine") == 1.0
    assert _edge_p(learned, "lookup", "refine") == 1.0


def test_loop_law_matches_by_visit(learned: PDGraph) -> None:
    implied: dict[int, float] = {}
    survive = 1.0
    for visit in range(1, 6):
        visits = ((name, 1) for name in ("plan", "search"))
        state = RunState("refine", tuple(sorted([*visits, ("refine", visit)])))
        probs = learned.next_stage_probs(state)
        assert abs(probs.get("refine", 0.0) - gen.loop_hazard(visit)) <= 0.03, visit
        assert abs(sum(probs.values()) - 1.0) < 1e-12
        implied[visit] = survive * probs.get(END, 0.0)
        survive *= probs.get("refine", 0.0)
    for length, p in gen.LOOP_LAW.items():
        assert abs(implied[length] - p) <= 0.03, (length, implied[length], p)


def test_fanout_width_learned(learned: PDGraph) -> None:
    width = learned.node_stats("search").width
    assert set(np.unique(width.values).tolist()) == {2.0, 3.0, 4.0}
    assert abs((width.mean() or 0.0) - 3.0) < 0.1


def test_mean_remaining_from_start_within_3_percent(learned: PDGraph) -> None:
    samples = learned.remaining_demand(RunState(), n=20_000)
    exact = gen.exact_mean_s()
    assert abs(samples.mean() - exact) / exact <= 0.03, (samples.mean(), exact)


def test_remaining_after_plan_drops_by_plan_mean(learned: PDGraph) -> None:
    after_plan = learned.remaining_demand(RunState("plan", (("plan", 1),)), n=20_000)
    exact = gen.exact_mean_s() - gen.PLAN_MEAN_S
    assert abs(after_plan.mean() - exact) / exact <= 0.03


def test_deep_in_loop_only_refines_remain(learned: PDGraph) -> None:
    visits = (("lookup", 1), ("plan", 1), ("refine", 5))
    rest = learned.remaining_demand(RunState("refine", visits), n=2000)
    assert np.all(rest == 0.0)  # visit 5 always ends the loop in the generator


def test_results_cached_read_only_and_invalidated(learned: PDGraph) -> None:
    state = RunState()
    a = learned.remaining_demand(state)
    assert learned.remaining_demand(state) is a
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 1.0
    fresh = learned.remaining_demand(state, rng=np.random.default_rng(1))
    assert fresh is not a and fresh.shape == (1000,)


def test_cache_invalidated_by_observe() -> None:
    rng = np.random.default_rng(3)
    graph = PDGraph(gen.APP)
    for i in range(50):
        graph.observe(gen.make_path(rng, i))
    before = graph.remaining_demand(RunState())
    graph.observe(gen.make_path(rng, 99))
    after = graph.remaining_demand(RunState())
    assert graph.version == 51
    assert after is not before


def test_token_model_predicts_running_llm_from_prompt() -> None:
    graph = PDGraph("chat")
    rng = np.random.default_rng(5)
    from hermes_sdk import Call, RunPath, Stage

    for i in range(300):
        tin, tout = int(rng.integers(100, 4000)), int(rng.integers(10, 500))
        seconds = 0.05 + 0.0002 * tin + 0.02 * tout
        graph.observe(
            RunPath(
                "chat", (Stage("answer", (Call(seconds, tin, tout),), "llm", "m"),), run_id=f"{i}"
            )
        )
    coef = graph.token_models["m"].coef()
    assert coef is not None
    assert np.allclose(coef, [0.05, 0.0002, 0.02], rtol=1e-6, atol=1e-9)
    long_prompt = RunState("answer", (("answer", 1),), running=True, input_tokens=20_000)
    short_prompt = RunState("answer", (("answer", 1),), running=True, input_tokens=100)
    mean_out = float(graph.node_stats("answer").output_tokens.mean() or 0.0)
    long_mean = graph.remaining_demand(long_prompt, n=4000).mean()
    assert abs(long_mean - (0.05 + 0.0002 * 20_000 + 0.02 * mean_out)) < 0.5
    assert long_mean > graph.remaining_demand(short_prompt, n=4000).mean() + 3.0


def test_unknown_running_node_contributes_positive_residual(learned: PDGraph) -> None:
    state = RunState("never-seen", (("never-seen", 1),), running=True, elapsed_s=0.1)
    samples = learned.remaining_demand(state, n=500)
    assert np.all(samples > 0.0)
    assert learned.next_stage_probs(state) == {}


@pytest.mark.parametrize("window", [1000, 20])  # 20: full windows, tables updated in place
def test_incremental_compile_matches_a_full_rebuild(window: int) -> None:
    from hermes_sdk.graph.compiled_graph import compile_graph
    from hermes_sdk.graph.montecarlo import simulate

    rng = np.random.default_rng(21)
    graph = PDGraph(gen.APP, max_visit=3, window=window)
    for i in range(120):
        graph.observe(gen.make_path(rng, i))
        if i % 7 == 0:
            graph.remaining_demand(RunState())  # compiles incrementally from here on
    graph.observe(gen.make_path(rng, 500))
    incremental = graph._compiler.get(graph)
    fresh = compile_graph(graph)
    assert np.array_equal(incremental.trans_flat, fresh.trans_flat)
    assert np.array_equal(incremental.stage_table, fresh.stage_table)
    assert np.array_equal(incremental.stage_start, fresh.stage_start)
    assert incremental.visit_free == fresh.visit_free
    state = RunState("refine", (("plan", 1), ("refine", 2), ("search", 1)))
    a = simulate(incremental, state, 500, np.random.default_rng(0))
    b = simulate(fresh, state, 500, np.random.default_rng(0))
    assert np.array_equal(a, b)


def test_huge_n_is_simulated_in_bounded_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import hermes_sdk.graph.pdgraph as pdgraph_module

    rng = np.random.default_rng(6)
    graph = PDGraph(gen.APP)
    for i in range(200):
        graph.observe(gen.make_path(rng, i))
    monkeypatch.setattr(pdgraph_module, "_MAX_COUNTER_CELLS", 600)  # 100 paths per chunk
    out = graph.remaining_demand(RunState(), n=1050)
    assert out.shape == (1050,) and np.all(out > 0)
    assert out.mean() == pytest.approx(gen.exact_mean_s(), rel=0.1)


def test_runs_without_stages_teach_nothing_about_demand() -> None:
    from hermes_sdk import RunPath

    graph = PDGraph("e")
    graph.observe(RunPath("e", ()))
    graph.observe(RunPath("e", (), failed=True))
    assert (graph.runs, graph.empty_runs, graph.version) == (0, 2, 0)
    assert graph.next_stage_probs(RunState()) == {}
    # the prior answers (a run with no unit is not a run of zero demand: no 1e-9 rank floor)
    assert np.all(graph.remaining_demand(RunState()) > 0.0)
    assert len(graph.prior.sketch) == 0


def test_stale_cache_tolerance_is_opt_in() -> None:
    rng = np.random.default_rng(13)
    graph = PDGraph(gen.APP, max_stale_fraction=0.1)
    for i in range(100):
        graph.observe(gen.make_path(rng, i))
    first = graph.remaining_demand(RunState())
    for i in range(10):  # 10 <= 0.1 * 110 runs: still served from the cache
        graph.observe(gen.make_path(rng, 200 + i))
    assert graph.remaining_demand(RunState()) is first
    for i in range(5):
        graph.observe(gen.make_path(rng, 300 + i))
    assert graph.remaining_demand(RunState()) is not first
    with pytest.raises(GraphError):
        PDGraph("x", max_stale_fraction=1.5)


@pytest.mark.parametrize("visit", [1, 2, 3, 4])
def test_mean_remaining_inside_the_loop_matches_theory(learned: PDGraph, visit: int) -> None:
    at_least = {k: p for k, p in gen.LOOP_LAW.items() if k >= visit}
    more_loops = sum((k - visit) * p for k, p in at_least.items()) / sum(at_least.values())
    exact = more_loops * gen.REFINE_MEAN_S
    state = RunState("refine", (("plan", 1), ("refine", visit), ("search", 1)))
    mean = learned.remaining_demand(state, n=20_000).mean()
    assert abs(mean - exact) <= 0.05 * exact + 0.02, (visit, mean, exact)


def test_rerank_of_a_running_unit_reuses_the_cached_walk(
    learned: PDGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hermes_sdk.graph.pdgraph as pdgraph_module

    calls: list[RunState] = []
    real = pdgraph_module.simulate

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(pdgraph_module, "simulate", counting)
    visits = (("plan", 1),)
    outs = [
        learned.remaining_demand(RunState("plan", visits, running=True, elapsed_s=e), n=4001)
        for e in (0.5, 1.0, 2.0, 3.0)
    ]
    assert len(calls) == 1 and not calls[0].running  # one walk, four residuals
    after_plan = gen.exact_mean_s() - gen.PLAN_MEAN_S
    for out in outs:  # exponential plan: memoryless residual of mean ~1 s, then the rest
        assert out.mean() == pytest.approx(after_plan + gen.PLAN_MEAN_S, rel=0.1)
        assert np.all(out > 0)
