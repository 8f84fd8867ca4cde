"""A PDGraph and its pooled prior pickle without their locks and caches, and come back whole."""

from __future__ import annotations

import pickle

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.prior import PooledPrior
from hermes_sdk.graph.records import RunState
from tests.instrument.test_learner_process import drift_paths


def test_a_learned_graph_round_trips_with_fresh_lock_and_caches() -> None:
    registry = GraphRegistry(None)
    registry.observe_many(drift_paths(300))
    graph = registry.graph("app0")
    state = RunState(node="search", visits=(("plan", 1), ("search", 1)), running=True)
    graph.remaining_demand(state, n=32)  # fills the Monte Carlo cache
    copy, prior = pickle.loads(pickle.dumps((graph, graph.prior)))
    assert copy.to_dict() == graph.to_dict()
    assert (copy.version, copy.changes) == (graph.version, graph.changes)
    assert copy.prior is prior  # a prior shared by the pickled objects stays shared
    assert copy._lock is not graph._lock and not copy._cache
    assert copy.remaining_demand(state, n=32).tolist() == (
        graph.remaining_demand(state, n=32).tolist()
    )
    with copy._lock:  # a working lock
        pass


def test_an_empty_prior_round_trips() -> None:
    """An empty sketch is falsy: the state must not be, or pickle skips ``__setstate__``."""
    prior = pickle.loads(pickle.dumps(PooledPrior()))
    assert len(prior.sketch) == 0
    prior.add(2.0)
    assert len(prior.sketch) == 1
