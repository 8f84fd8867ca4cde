"""GraphRegistry.observe_many: one batch write, the same graphs as observing one by one."""

from __future__ import annotations

import numpy as np
import pytest

from hermes_sdk import Call, GraphRegistry, RunPath, Stage, Store, StoreError, open_store
from tests.graph import generator as gen


def _paths(n: int) -> list[RunPath]:
    rng = np.random.default_rng(11)
    out = []
    for i in range(n):
        p = gen.make_path(rng, i)
        out.append(RunPath(f"app{i % 3}", p.stages, run_id=f"r{i}", started_at=p.started_at))
    return out


def test_batch_learns_and_stores_like_one_by_one(store: Store, store_url: str) -> None:
    paths = _paths(120)
    batched = GraphRegistry(store)
    assert batched.observe_many(paths[:70]) == []
    assert batched.observe_many(paths[70:]) == []
    single = GraphRegistry()
    for p in paths:
        single.observe(p)
    for app in ("app0", "app1", "app2"):
        assert batched.graph(app).to_dict() == single.graph(app).to_dict()
    # the apps' pooled prior got the run totals in the paths' order, as one by one
    assert batched.prior().sketch._values_list == single.prior().sketch._values_list
    assert list(store.load_paths()) == paths
    if not store_url.startswith("memory"):
        again = GraphRegistry(open_store(store_url))
        for app in ("app0", "app1", "app2"):
            assert again.graph(app).to_dict() == single.graph(app).to_dict()


def test_rejected_paths_are_neither_stored_nor_learned(store: Store) -> None:
    good = _paths(4)
    bad = RunPath("app0", (Stage("x", (Call(1.0),)),), run_id="bad")
    object.__setattr__(bad.stages[0].calls[0], "service_s", float("nan"))
    reg = GraphRegistry(store)
    rejected = reg.observe_many([good[0], bad, good[1], "nope", good[2]])  # type: ignore[list-item]
    assert [p for p, _ in rejected] == ["nope", bad]
    assert list(store.load_paths()) == good[:3]
    assert sum(reg.graph(a).runs for a in ("app0", "app1", "app2")) == 3


def test_a_failed_write_learns_nothing(tmp_path: object) -> None:
    store = open_store("memory://")
    reg = GraphRegistry(store)
    store.close()
    with pytest.raises(StoreError):
        reg.observe_many(_paths(3))
    assert all(reg.graph(a).runs == 0 for a in ("app0", "app1", "app2"))
