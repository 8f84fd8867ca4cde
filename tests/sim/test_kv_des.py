"""The simulator's LLM backend with a prefix KV cache: reuse on revisits, policies' hints."""

from __future__ import annotations

from types import SimpleNamespace

from hermes_sdk.prewarm.retention import GraphRetention, NoRetention
from hermes_sdk.sim.kv_des import PathOracleRetention
from hermes_sdk.sim.programs import RealStage
from hermes_sdk.sim.workload import UnitSpec
from tests.sim.kv_runs import WL, run_with_cache


def test_no_cache_saves_nothing_and_a_cache_saves_on_revisits() -> None:
    none = run_with_cache(0, lambda m: NoRetention())
    assert none.stats().saved_tokens == 0 and none.saved_s == 0.0
    big = run_with_cache(10**9, lambda m: NoRetention())
    stats = big.stats()
    assert stats.lookups == none.stats().lookups > 0
    assert 0 < stats.saved_tokens <= stats.prompt_tokens
    assert stats.evictions == 0 and big.saved_s > 0
    # only apps whose LLM node is called again by the same run reuse a prefix
    assert set(big.saved_tokens_by_app) <= {a.name for a in WL.apps}
    assert big.saved_tokens_by_app.get("react_alfw", 0) > 0


def test_pdgraph_hints_are_given_once_the_graph_has_learned() -> None:
    small = run_with_cache(8000, lambda m: GraphRetention(m, 0.01))
    stats = small.stats()
    assert stats.evictions > 0 and 0 < stats.saved_tokens <= stats.prompt_tokens


def test_density_eviction_beats_lru_where_only_short_prefixes_fit_and_stays_under_the_ceiling() -> (
    None
):
    """At 1500 tokens no react_alfw prefix fits: what is saved is reuse across tool calls, which
    LRU loses to the churn of prefixes nobody reads again and the learned law keeps."""
    ceiling = run_with_cache(10**9, lambda m: NoRetention()).stats().saved_tokens
    lru = run_with_cache(1500, lambda m: NoRetention()).stats().saved_tokens
    learned = run_with_cache(1500, lambda m: GraphRetention(m, 0.01)).stats().saved_tokens
    oracle = run_with_cache(1500, lambda m: PathOracleRetention()).stats().saved_tokens
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
