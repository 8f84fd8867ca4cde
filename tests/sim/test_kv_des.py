"""The simulator's LLM backend with a prefix KV cache: reuse on revisits, policies' hints."""

from __future__ import annotations

from hermes_sdk.policy import DemandModel
from hermes_sdk.prewarm.retention import GraphRetention, NoRetention, RetentionPolicy
from hermes_sdk.sim import simulate
from hermes_sdk.sim.kv_des import KVCacheHook
from hermes_sdk.sim.workload import parse_workload
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
