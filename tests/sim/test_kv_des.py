"""The simulator's LLM backend with a prefix KV cache: reuse on revisits, policies' hints."""

from __future__ import annotations

from types import SimpleNamespace

from hermes_sdk.policy import DemandModel
from hermes_sdk.prewarm.retention import GraphRetention, NoRetention, RetentionPolicy
from hermes_sdk.sim import simulate
from hermes_sdk.sim.kv_des import KVCacheHook, PathOracleRetention
from hermes_sdk.sim.programs import RealStage
from hermes_sdk.sim.workload import UnitSpec, parse_workload
from hermes_sdk.sim.workloads.suites import paper_suite

WL = parse_workload(paper_suite(0.7, 3, n_apps=150, warmup_apps=30))


def _run(capacity: int, make: object) -> KVCacheHook:
    hooks: list[KVCacheHook] = []

    def hook(model: DemandModel) -> KVCacheHook:
        policy: RetentionPolicy = make(model)  # type: ignore[operator]
        hooks.append(KVCacheHook(WL.backends, capacity, policy))
        return hooks[-1]

    simulate(WL, "gittins", hook=hook)
    return hooks[0]


def test_no_cache_saves_nothing_and_a_cache_saves_on_revisits() -> None:
    none = _run(0, lambda m: NoRetention())
    assert none.stats().saved_tokens == 0 and none.saved_s == 0.0
    big = _run(10**9, lambda m: NoRetention())
    stats = big.stats()
    assert stats.lookups == none.stats().lookups > 0
    assert 0 < stats.saved_tokens <= stats.prompt_tokens
    assert stats.evictions == 0 and big.saved_s > 0
    # only apps whose LLM node is called again by the same run reuse a prefix
    assert set(big.saved_tokens_by_app) <= {a.name for a in WL.apps}
    assert big.saved_tokens_by_app.get("react_alfw", 0) > 0


def test_pdgraph_hints_are_given_once_the_graph_has_learned() -> None:
    small = _run(8000, lambda m: GraphRetention(m, 0.01))
    stats = small.stats()
    assert stats.evictions > 0 and 0 < stats.saved_tokens <= stats.prompt_tokens


def test_density_eviction_beats_lru_where_only_short_prefixes_fit_and_stays_under_the_ceiling() -> (
    None
):
    """At 1500 tokens no react_alfw prefix fits: what is saved is reuse across tool calls, which
    LRU loses to the churn of prefixes nobody reads again and the learned law keeps."""
    ceiling = _run(10**9, lambda m: NoRetention()).stats().saved_tokens
    lru = _run(1500, lambda m: NoRetention()).stats().saved_tokens
    learned = _run(1500, lambda m: GraphRetention(m, 0.01)).stats().saved_tokens
    oracle = _run(1500, lambda m: PathOracleRetention()).stats().saved_tokens
    assert 0 < lru < learned <= ceiling and 0 < oracle <= ceiling


def test_the_path_oracle_law_is_the_runs_true_gap() -> None:
    """think -> tool (3 s, and a 5 s call beside it) -> other llm (2 s) -> think -> END."""
    think = UnitSpec("think", "llm", "llm", None)
    tool = UnitSpec("tool", "tool", "box", None)
    stages = [
        RealStage("think", think, 1, (1.0,)),
        RealStage("tool", tool, 1, (3.0, 5.0)),
        RealStage("other", think, 1, (2.0,)),
        RealStage("think", think, 2, (1.0,)),
    ]
    app = SimpleNamespace(stages=stages)
    oracle = PathOracleRetention()
    law = oracle.law_for(app, 0)  # type: ignore[arg-type]
    assert law.gaps_s == (7.0,) * oracle.samples and law.p_reuse == 1.0
    assert oracle.law_for(app, 3).p_reuse == 0.0  # type: ignore[arg-type]  # the run ends
