"""Per-state rank tables: lookups agree with the Monte Carlo ranker, staleness is bounded as
documented, rebuilds happen where documented (refresh, or a lookup past the hard bound)."""

from __future__ import annotations

import numpy as np
import pytest

from hermes_sdk.errors import GraphError
from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.rank_table_build import at_elapsed
from hermes_sdk.graph.rank_tables import (
    QUANTILE_PROBS,
    RankTables,
    RankTableSettings,
    bucket_tokens,
    token_bucket,
)
from hermes_sdk.graph.records import RunState
from hermes_sdk.policy import AppState, GittinsPolicy, gittins_index

from .generator import APP, make_path

PLAN = RunState(node="plan", visits=(("plan", 1),), running=True, input_tokens=200)
SEARCH = RunState(
    node="search", visits=(("plan", 1), ("search", 1)), running=True, elapsed_s=0.3, width=3
)
BETWEEN = RunState(node="plan", visits=(("plan", 1),))


def _registry(runs: int, settings: RankTableSettings | None = None, seed: int = 7) -> GraphRegistry:
    reg = GraphRegistry(rank_tables=settings if settings is not None else RankTableSettings())
    rng = np.random.default_rng(seed)
    for i in range(runs):
        reg.observe(make_path(rng, i))
    return reg


def _learn(reg: GraphRegistry, runs: int, seed: int = 99) -> None:
    rng = np.random.default_rng(seed)
    for i in range(runs):
        reg.observe(make_path(rng, i))


def _tables(reg: GraphRegistry) -> RankTables:
    assert reg.rank_tables is not None
    return reg.rank_tables


@pytest.mark.parametrize("state", [PLAN, SEARCH, BETWEEN, RunState()], ids=str)
def test_a_lookup_agrees_with_the_monte_carlo_rank(state: RunState) -> None:
    reg = _registry(400)
    rank, _ = _tables(reg).gittins(APP, state)
    samples = reg.remaining_demand(APP, state, n=20_000)
    exact = 1.0 / gittins_index(samples)
    assert rank == pytest.approx(exact, rel=0.1)
    hints = _tables(reg).hints(APP, state)
    assert hints.rank_s == rank
    assert hints.p50_s == pytest.approx(float(np.quantile(samples, 0.5)), rel=0.1)
    assert hints.p95_s == pytest.approx(float(np.quantile(samples, 0.95)), rel=0.1)
    q = _tables(reg).point(APP, state).quantiles_s
    assert q.shape == QUANTILE_PROBS.shape and np.all(np.diff(q) >= 0) and not q.flags.writeable


def test_rank_follows_attained_service_in_the_state() -> None:
    """Deep into a running stage the rank is the table's value at the grid point below."""
    reg = _registry(400)
    tables = _tables(reg)
    ranks = []
    for elapsed in (0.0, 0.5, 1.0, 2.0, 4.0):
        state = RunState("plan", (("plan", 1),), running=True, elapsed_s=elapsed)
        rank, quantum = tables.gittins(APP, state)
        assert quantum >= 0.0
        exact = 1.0 / gittins_index(reg.remaining_demand(APP, state, n=20_000))
        assert rank == pytest.approx(exact, rel=0.25)
        ranks.append(rank)
    assert len(set(ranks)) > 1  # the grid resolves attained service
    assert len(tables) == 1  # one table serves every elapsed time of one position


def test_the_quantum_reaches_at_least_the_next_grid_point() -> None:
    reg = _registry(300)
    tables = _tables(reg)
    _, quantum = tables.gittins(APP, PLAN)
    assert quantum > 0.0
    grid = next(iter(tables._tables.values())).grid
    assert quantum >= grid[1] - PLAN.elapsed_s


def test_no_rebuild_within_the_allowance_and_a_refresh_past_it() -> None:
    settings = RankTableSettings(max_stale_fraction=0.1, min_stale_runs=4, hard_factor=2.0)
    reg = _registry(200, settings)
    tables = _tables(reg)
    first = tables.gittins(APP, PLAN)
    built = tables.rebuilds
    _learn(reg, 20)  # exactly the allowance (0.1 * 200): still fresh
    assert tables.gittins(APP, PLAN) == first
    assert tables.rebuilds == built and tables.due() == 0
    _learn(reg, 1, seed=5)  # past the allowance, within the hard bound: served, marked due
    assert tables.gittins(APP, PLAN) == first
    assert tables.rebuilds == built and tables.due() == 1
    assert tables.refresh() == 1  # the learning path rebuilds it, with its points
    assert tables.rebuilds == built + 1 and tables.due() == 0
    inline = tables.inline_rebuilds
    assert tables.gittins(APP, PLAN) != first
    assert tables.inline_rebuilds == inline  # the lookup found it fresh


def test_a_lookup_rebuilds_inline_past_the_hard_bound() -> None:
    settings = RankTableSettings(max_stale_fraction=0.1, min_stale_runs=4, hard_factor=2.0)
    reg = _registry(100, settings)
    tables = _tables(reg)
    tables.gittins(APP, PLAN)
    inline = tables.inline_rebuilds
    _learn(reg, 21)  # more than 2 x max(0.1 * 100, 4) = 20 runs behind
    tables.gittins(APP, PLAN)
    assert tables.inline_rebuilds == inline + 1 and tables.due() == 0


def test_exact_settings_rebuild_after_every_learned_run() -> None:
    reg = _registry(100, RankTableSettings(max_stale_fraction=0.0, min_stale_runs=0))
    tables = _tables(reg)
    for i in range(3):
        tables.gittins(APP, PLAN)
        _learn(reg, 1, seed=i)
    tables.gittins(APP, PLAN)
    assert tables.rebuilds == 4


def test_tables_are_deterministic_per_graph_state() -> None:
    a, b = _registry(150), _registry(150)
    for state in (PLAN, SEARCH, BETWEEN):
        assert _tables(a).gittins(APP, state) == _tables(b).gittins(APP, state)


def test_prompt_sizes_share_a_table_per_bucket() -> None:
    assert token_bucket(None) is None and bucket_tokens(None) is None
    assert token_bucket(1000) == token_bucket(1010)
    assert token_bucket(2000) == token_bucket(1000) + 4
    assert bucket_tokens(token_bucket(1000)) == pytest.approx(1000, rel=0.1)
    reg = _registry(100)
    tables = _tables(reg)
    for tokens in (1000, 1010, 2000):
        tables.gittins(APP, RunState("plan", (("plan", 1),), running=True, input_tokens=tokens))
    assert len(tables) == 2


def test_apps_without_a_complete_run_are_answered_from_the_prior_untabled() -> None:
    reg = _registry(50)
    tables = _tables(reg)
    rank, quantum = tables.gittins("never-seen", RunState())
    assert rank > 0.0 and quantum > 0.0
    assert len(tables) == 0


def test_a_running_node_never_learned_has_a_table() -> None:
    reg = _registry(50)
    state = RunState("mystery", (("mystery", 1),), running=True, elapsed_s=3.0)
    rank, _ = _tables(reg).gittins(APP, state)
    assert np.isfinite(rank) and rank > 0.0


def test_least_recently_used_tables_are_dropped() -> None:
    reg = _registry(50, RankTableSettings(max_tables=2))
    tables = _tables(reg)
    for state in (PLAN, SEARCH, BETWEEN):
        tables.gittins(APP, state)
    assert len(tables) == 2


def test_latency_quantiles_are_the_monte_carlo_ones() -> None:
    reg = _registry(300)
    q = _tables(reg).latency_quantiles(APP, SEARCH)
    exact = np.quantile(reg.remaining_latency(APP, SEARCH, n=20_000), QUANTILE_PROBS)
    assert np.all(np.diff(q) >= 0)
    assert float(q[32]) == pytest.approx(float(exact[32]), rel=0.1)


def test_gittins_policy_ranks_from_the_tables_when_the_model_has_them() -> None:
    with_tables = _registry(200)
    without = GraphRegistry(rank_tables=None)
    _learn(without, 200, seed=7)
    app = AppState(app=APP, run_id="r", arrival_s=0.0, state=PLAN)
    policy = GittinsPolicy(with_tables)
    assert policy.tables is with_tables.rank_tables
    assert policy.rank_and_quantum(app, 0.0) == _tables(with_tables).gittins(APP, PLAN)
    assert GittinsPolicy(without).tables is None
    assert GittinsPolicy(without).rank(app, 0.0) == pytest.approx(policy.rank(app, 0.0), rel=0.15)


def test_settings_are_checked() -> None:
    with pytest.raises(GraphError):
        RankTableSettings(max_stale_fraction=-1.0)
    with pytest.raises(GraphError):
        RankTableSettings(hard_factor=0.5)
    with pytest.raises(GraphError):
        RankTableSettings(samples=0)
    assert RankTableSettings(max_stale_fraction=0.0, min_stale_runs=0).exact


def test_learning_finds_due_tables_without_a_lookup() -> None:
    """A table nobody looked up since its graph moved on is still rebuilt by refresh, so a
    lookup much later does not have to rebuild it inline."""
    settings = RankTableSettings(max_stale_fraction=0.1, min_stale_runs=4, hard_factor=2.0)
    reg = _registry(100, settings)
    tables = _tables(reg)
    for state in (PLAN, SEARCH):
        tables.gittins(APP, state)
    _learn(reg, 11)
    assert tables.due() == 2
    assert tables.refresh(1) == 1 and tables.due() == 1
    assert tables.refresh() == 1 and tables.due() == 0
    _learn(reg, 12, seed=3)  # now within the allowance of the rebuilt tables: nothing due
    inline = tables.inline_rebuilds
    tables.gittins(APP, PLAN)
    assert tables.inline_rebuilds == inline


def test_visits_past_max_visit_share_a_table() -> None:
    """The graph's laws stop at ``max_visit``, so 9 and 12 refines are one position."""
    reg = _registry(100)
    tables = _tables(reg)
    cap = reg.graph(APP).max_visit
    answers = {
        tables.gittins(APP, RunState("refine", (("plan", 1), ("refine", k)), running=True))
        for k in (cap, cap + 1, cap + 4)
    }
    assert len(tables) == 1 and len(answers) == 1


def _due_pair(
    settings: RankTableSettings,
) -> tuple[GraphRegistry, RankTables, GraphRegistry, RankTables]:
    """Two identical registries, each with PLAN's and SEARCH's tables (several points each,
    looked up at several elapsed times) due for a rebuild."""
    out: list[GraphRegistry | RankTables] = []
    for _ in range(2):
        reg = _registry(100, settings)
        tables = _tables(reg)
        for state in (PLAN, SEARCH):
            for elapsed in (0.0, 0.2, 0.6, 1.5):
                tables.gittins(APP, at_elapsed(state, elapsed))
        _learn(reg, 11)
        assert tables.due() == 2
        out += [reg, tables]
    a, ta, b, tb = out
    assert isinstance(a, GraphRegistry) and isinstance(b, GraphRegistry)
    assert isinstance(ta, RankTables) and isinstance(tb, RankTables)
    return a, ta, b, tb


STEPPED = RankTableSettings(max_stale_fraction=0.1, min_stale_runs=4, hard_factor=2.0)


def test_a_rebuild_in_steps_is_the_rebuild_at_once_and_the_old_table_answers_meanwhile() -> None:
    _, whole, _, stepped = _due_pair(STEPPED)
    assert whole.refresh() == 2
    old = dict(stepped._tables)
    built, steps = 0, 0
    while True:
        job = stepped._job
        computed = (
            0 if job is None or job.new is None else sum(p is not None for p in job.new.points)
        )
        n, more = stepped.refresh_step(0.0)  # one step per call
        steps += 1
        job = stepped._job
        if job is not None and job.new is not None:  # at most one point per step
            assert sum(p is not None for p in job.new.points) <= computed + 1
        if job is not None:  # not done: lookups still read the table being replaced
            assert job.old.key is not None and stepped._tables[job.old.key] is job.old
        built += n
        if not more:
            break
    assert built == 2 and steps > 4 and stepped.due() == 0
    assert stepped.rebuilds == whole.rebuilds
    for key, table in whole._tables.items():
        other = stepped._tables[key]
        assert other is not old[key] and other.version == table.version
        assert other.grid == table.grid
        for p, q in zip(table.points, other.points, strict=True):
            assert (p is None) == (q is None)
            if p is not None and q is not None:
                assert (p.rank_s, p.quantum_s, p.p50_s) == (q.rank_s, q.quantum_s, q.p50_s)


def test_points_looked_up_on_the_old_table_during_a_rebuild_are_carried_over() -> None:
    _, _, _, tables = _due_pair(STEPPED)
    tables.refresh_step(0.0)  # the first table's new basis
    job = tables._job
    assert job is not None and job.new is not None
    far = job.old.grid[-1] + 1.0  # a point no lookup had asked for yet
    position = job.old.position
    tables.gittins(APP, at_elapsed(position, far))
    while tables.refresh_step(0.0)[0] == 0:
        pass
    rebuilt = tables._tables[job.old.key]  # type: ignore[index]
    assert rebuilt is job.new and rebuilt.points[-1] is not None
    inline, points = tables.inline_rebuilds, tables.lookup_points
    tables.gittins(APP, at_elapsed(position, far))
    assert (tables.inline_rebuilds, tables.lookup_points) == (inline, points)


def test_a_lookup_past_the_hard_bound_replaces_a_rebuild_under_way() -> None:
    _, _, reg, tables = _due_pair(STEPPED)
    tables.refresh_step(0.0)
    job = tables._job
    assert job is not None
    rebuilds = tables.rebuilds
    _learn(reg, 40, seed=11)  # now past 2 x the allowance: the lookup rebuilds inline
    position = job.old.position
    tables.gittins(APP, position)
    assert tables.rebuilds == rebuilds + 1 and tables._job is None
    replaced = tables._tables[job.old.key]  # type: ignore[index]
    assert replaced is not job.old and replaced.version == reg.graph(APP).version
