"""A small paper-suite run with a prefix KV cache, shared by the KV-cache and cache-bound tests."""

from __future__ import annotations

from collections.abc import Callable

from hermes_sdk.policy import DemandModel
from hermes_sdk.prewarm.retention import RetentionPolicy
from hermes_sdk.sim import simulate
from hermes_sdk.sim.kv_des import KVCacheHook
from hermes_sdk.sim.workload import parse_workload
from hermes_sdk.sim.workloads.suites import paper_suite

WL = parse_workload(paper_suite(0.7, 3, n_apps=150, warmup_apps=30))


def run_with_cache(capacity: int, make: Callable[[DemandModel], RetentionPolicy]) -> KVCacheHook:
    """Simulate :data:`WL` under Gittins with a ``capacity``-token cache on each LLM backend,
    retention by ``make(model)``; returns the cache hook (stats and traces)."""
    hooks: list[KVCacheHook] = []

    def hook(model: DemandModel) -> KVCacheHook:
        hooks.append(KVCacheHook(WL.backends, capacity, make(model)))
        return hooks[-1]

    simulate(WL, "gittins", hook=hook)
    return hooks[0]
