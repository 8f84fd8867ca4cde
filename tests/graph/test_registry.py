"""GraphRegistry: per-tenant graphs, pooled prior for unknown apps, DemandModel, thread safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hermes_sdk import Call, GraphError, GraphRegistry, RunPath, RunState, Stage, open_store
from hermes_sdk.graph.prior import DEFAULT_MEAN_S, MIN_POOLED_SAMPLES
from hermes_sdk.policy.base import DemandModel
from tests.graph import generator as gen


def _run(app: str, seconds: float, tenant: str = "default", i: int = 0) -> RunPath:
    return RunPath(app, (Stage("x", (Call(seconds),)),), run_id=str(i), tenant=tenant)


def test_is_a_demand_model() -> None:
    assert isinstance(GraphRegistry(), DemandModel)


def test_tenants_are_isolated() -> None:
    reg = GraphRegistry(open_store("memory://"))
    reg.observe(_run("a", 1.0, tenant="t1"))
    reg.observe(_run("b", 1.0, tenant="t2"))
    assert reg.apps("t1") == ["a"] and reg.apps("t2") == ["b"] and reg.apps() == []
    assert reg.get("a", "t2") is None
    graph = reg.get("a", "t1")
    assert graph is not None and graph.runs == 1
    assert reg.tenants() == ["t1", "t2"]


def test_unknown_app_uses_default_prior_then_pooled_runs_of_the_tenant() -> None:
    reg = GraphRegistry()
    cold = reg.remaining_demand("new-app", RunState(), n=20_000)
    assert cold.mean() == pytest.approx(DEFAULT_MEAN_S, rel=0.15)
    assert not cold.flags.writeable
    assert reg.apps() == []  # a query does not create graphs
    for i in range(MIN_POOLED_SAMPLES + 30):
        reg.observe(_run(f"app{i % 3}", 2.0, i=i))
        reg.observe(_run("elsewhere", 50.0, tenant="other", i=i))
    warm = reg.remaining_demand("new-app", RunState(), n=1000)
    assert np.allclose(warm, 2.0)  # pooled over this tenant's apps only
    late = reg.remaining_demand("new-app", RunState(running=True, elapsed_s=0.5), n=1000)
    assert np.allclose(late, 1.5)
    assert reg.remaining_demand("new-app", RunState(), tenant="other", n=10).min() == 50.0


def test_graph_without_runs_answers_from_the_pooled_prior() -> None:
    reg = GraphRegistry()
    for i in range(40):
        reg.observe(_run("known", 3.0, i=i))
    empty = reg.graph("fresh")
    assert empty.runs == 0
    assert np.allclose(empty.remaining_demand(RunState()), 3.0)


def test_known_app_is_answered_by_its_graph() -> None:
    reg = GraphRegistry()
    rng = np.random.default_rng(1)
    for i in range(300):
        reg.observe(gen.make_path(rng, i))
    out = reg.remaining_demand(gen.APP, RunState(), n=10_000)
    assert out.mean() == pytest.approx(gen.exact_mean_s(), rel=0.05)


def test_bad_queries_and_paths() -> None:
    reg = GraphRegistry()
    with pytest.raises(GraphError, match="n must be"):
        reg.remaining_demand("x", RunState(), n=-1)
    with pytest.raises(GraphError, match="RunState"):
        reg.remaining_demand("x", None)  # type: ignore[arg-type]
    with pytest.raises(GraphError, match="RunPath"):
        reg.observe("path")  # type: ignore[arg-type]
    with pytest.raises(GraphError):
        GraphRegistry(window=0)


def test_concurrent_observe_and_query() -> None:
    reg = GraphRegistry(open_store("memory://"))
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for i in range(60):
                reg.observe(gen.make_path(rng, i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(60):
                out = reg.remaining_demand(gen.APP, RunState(), n=200)
                assert out.shape == (200,) and np.all(out >= 0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    graph = reg.get(gen.APP)
    assert graph is not None and graph.runs == 180 and graph.version == 180


def test_replay_learns_in_batches_like_one_by_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart folds the store in batches (several here) and gets the graphs and the pooled
    prior that observing each stored path in turn gives; a stored path its graph refuses (an
    older, laxer version stored it) is skipped and logged, and the replay goes on."""
    from hermes_sdk.graph import registry as registry_module
    from hermes_sdk.graph.validation import MAX_PATH_STAGES

    monkeypatch.setattr(registry_module, "REPLAY_BATCH", 7)
    rng = np.random.default_rng(5)
    paths = [gen.make_path(rng, i) for i in range(40)]
    paths += [_run("other", 0.1 * (i + 1), tenant="t2", i=i) for i in range(9)]
    paths += [_run("side", 0.2 * (i + 1), i=i) for i in range(9)]  # shares default's prior
    rng.shuffle(paths)  # type: ignore[arg-type]
    too_long = RunPath(gen.APP, (Stage("x", (Call(0.01),)),) * (MAX_PATH_STAGES + 1), run_id="x")
    paths.insert(23, too_long)
    store = open_store("memory://")
    for path in paths:
        store.append_path(path)  # the store takes it; the graph refuses it
    replayed = GraphRegistry(store)
    single = GraphRegistry()
    for path in paths:
        if path is not too_long:
            single.graph(path.app, path.tenant).observe(path)
    assert replayed.loaded_paths == len(paths) - 1
    for tenant, app in (("default", gen.APP), ("default", "side"), ("t2", "other")):
        assert replayed.graph(app, tenant).to_dict() == single.graph(app, tenant).to_dict()
        assert (
            replayed.prior(tenant).sketch._values_list == single.prior(tenant).sketch._values_list
        )
    assert any("skipping stored path" in r.getMessage() for r in caplog.records)
    refused = replayed.fold([too_long])  # fold() reports, the caller decides what to log
    assert [p for p, _ in refused] == [too_long]
