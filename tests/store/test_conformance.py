"""One conformance suite every Store backend passes: sqlite, memory and a real redis-server."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from hermes_sdk import (
    Call,
    ConfigError,
    GraphRegistry,
    RunPath,
    RunState,
    Stage,
    Store,
    StoreError,
    open_store,
)
from hermes_sdk.graph.records import path_to_dict
from tests.graph import generator as gen


def _path(i: int, app: str = "a", tenant: str = "default") -> RunPath:
    return RunPath(
        app,
        (Stage("x", (Call(0.1 * (i + 1), input_tokens=i, output_tokens=2 * i),), "llm", "m"),),
        run_id=f"r{i}",
        tenant=tenant,
        started_at=1000.0 + i,
    )


def _inject_raw(store: Store, store_url: str, raw: str | bytes) -> None:
    """Write a row that bypasses validation, as a crash or a bad migration would leave it."""
    if store_url.startswith("sqlite://"):
        conn = sqlite3.connect(store_url[len("sqlite://") :])
        conn.execute(
            "INSERT INTO paths (tenant, app, json, created_at) VALUES ('default', 'a', ?, 0)",
            (raw,),
        )
        conn.commit()
        conn.close()
    else:
        store.append_raw(raw)  # type: ignore[attr-defined]


def test_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)
    assert store.corrupt_rows == 0
    assert list(store.load_paths()) == []


def test_paths_round_trip_in_order(store: Store) -> None:
    paths = [_path(i, app=f"app{i % 3}", tenant=f"t{i % 2}") for i in range(25)]
    for p in paths:
        store.append_path(p)
    assert list(store.load_paths()) == paths


def test_many_paths_load_in_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import hermes_sdk.store.redis as redis_store
    import hermes_sdk.store.sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "_BATCH", 7)
    monkeypatch.setattr(redis_store, "_BATCH", 7)
    paths = [_path(i) for i in range(50)]
    for p in paths:
        store.append_path(p)
    assert list(store.load_paths()) == paths


def test_corrupt_and_truncated_rows_are_skipped_and_counted(store: Store, store_url: str) -> None:
    import json

    good_text = json.dumps(path_to_dict(_path(1)))
    store.append_path(_path(0))
    _inject_raw(store, store_url, good_text[: len(good_text) // 2])  # truncated
    _inject_raw(store, store_url, b"\xff\xfe not utf-8")
    _inject_raw(
        store, store_url, '{"app": "a", "stages": [{"node": "x", "calls": [{"service_s": -1}]}]}'
    )
    _inject_raw(store, store_url, "[1, 2, 3]")
    store.append_path(_path(2))
    assert list(store.load_paths()) == [_path(0), _path(2)]
    assert store.corrupt_rows == 4


def test_key_value_documents(store: Store) -> None:
    assert store.get_json("keys", "k1") is None
    assert store.list_keys("keys") == []
    store.put_json("keys", "k2", {"tenant": "t", "n": [1, 2]})
    store.put_json("keys", "k1", {"tenant": "u"})
    store.put_json("other", "k9", {})
    assert store.get_json("keys", "k2") == {"tenant": "t", "n": [1, 2]}
    assert store.list_keys("keys") == ["k1", "k2"]
    store.put_json("keys", "k1", {"tenant": "v"})
    assert store.get_json("keys", "k1") == {"tenant": "v"}
    assert store.list_keys("other") == ["k9"]


@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": object()}, ["not", "a", "dict"]])
def test_bad_values_raise_store_error(store: Store, bad: object) -> None:
    with pytest.raises(StoreError):
        store.put_json("ns", "k", bad)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.put_json("", "k", {})
    with pytest.raises(StoreError):
        store.append_path({"app": "a"})  # type: ignore[arg-type]


def test_concurrent_appends_from_threads(store: Store) -> None:
    def worker(base: int) -> None:
        for i in range(40):
            store.append_path(_path(base + i))

    threads = [threading.Thread(target=worker, args=(1000 * t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loaded = list(store.load_paths())
    assert len(loaded) == 240
    assert {p.run_id for p in loaded} == {f"r{1000 * t + i}" for t in range(6) for i in range(40)}


def test_closed_store_raises(store_url: str) -> None:
    s = open_store(store_url)
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError):
        s.append_path(_path(0))


def test_registry_rebuilds_identical_graphs_after_restart(backend: str, store_url: str) -> None:
    if backend == "memory":
        pytest.skip("memory:// does not survive a reopen by design")
    rng = np.random.default_rng(2)
    reg = GraphRegistry(open_store(store_url))
    for i in range(150):
        reg.observe(gen.make_path(rng, i))
    for i in range(20):
        reg.observe(_path(i, app="other", tenant="t2"))
    before = {(t, a): reg.graph(a, t).to_json() for t in ("default", "t2") for a in reg.apps(t)}
    state = RunState("plan", (("plan", 1),))
    demand = reg.remaining_demand(gen.APP, state)
    reg.close()

    again = GraphRegistry(open_store(store_url))
    after = {(t, a): again.graph(a, t).to_json() for t in again.tenants() for a in again.apps(t)}
    assert after == before
    assert again.loaded_paths == 170
    assert np.array_equal(again.remaining_demand(gen.APP, state), demand)
    again.close()


def test_registry_skips_corrupt_rows_on_rebuild(store: Store, store_url: str) -> None:
    reg = GraphRegistry(store)
    reg.observe(_path(0))
    _inject_raw(store, store_url, '{"app": "a", "stages": [')
    reg.observe(_path(1))
    if store_url == "memory://":
        again = GraphRegistry(store)
    else:
        again = GraphRegistry(open_store(store_url))
    assert again.graph("a").runs == 2
    assert again.store is not None and again.store.corrupt_rows == 1
    again.close()


def test_rejected_path_is_not_stored(store: Store) -> None:
    reg = GraphRegistry(store)
    reg.observe(_path(0))
    bad_call = Call(1.0)
    object.__setattr__(bad_call, "service_s", -3.0)
    with pytest.raises(ValueError, match="service_s"):
        reg.observe(RunPath("a", (Stage("x", (bad_call,)),)))
    assert len(list(store.load_paths())) == 1


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = open_store(f"sqlite://{tmp_path}/a/b.db")
    s.close()
    assert (tmp_path / "a" / "b.db").exists()
    monkeypatch.setenv("HOME", str(tmp_path))
    s = open_store("sqlite:///~/.hermes/hermes.db")
    s.close()
    assert (tmp_path / ".hermes" / "hermes.db").exists()
    monkeypatch.setenv("HERMES_STORE", f"sqlite://{tmp_path}/env.db")
    open_store().close()
    assert (tmp_path / "env.db").exists()
    open_store("sqlite://:memory:").close()
    for bad in ("ftp://x", "", "sqlite://relative.db"):
        with pytest.raises(ConfigError):
            open_store(bad)
    with pytest.raises(StoreError):
        open_store("redis://127.0.0.1:1/0")
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        open_store(f"sqlite://{tmp_path}/garbage.db")


def test_documents_survive_reopen(backend: str, store_url: str) -> None:
    if backend == "memory":
        pytest.skip("memory:// does not survive a reopen by design")
    s = open_store(store_url)
    s.put_json("api_keys", "h1", {"tenant": "acme", "scopes": ["runs"]})
    s.close()
    again = open_store(store_url)
    assert again.get_json("api_keys", "h1") == {"tenant": "acme", "scopes": ["runs"]}
    assert again.list_keys("api_keys") == ["h1"]
    again.close()


def test_append_paths_batches_all_or_none(store: Store) -> None:
    if not hasattr(store, "append_paths"):  # optional capability (sqlite, redis)
        pytest.skip(f"{type(store).__name__} has no batch append")
    batch = [_path(i) for i in range(5)]
    store.append_paths([])  # type: ignore[attr-defined]
    store.append_paths(batch[:2])  # type: ignore[attr-defined]
    store.append_path(batch[2])
    store.append_paths(batch[3:])  # type: ignore[attr-defined]
    with pytest.raises(StoreError):
        store.append_paths([_path(9), "not a path"])  # type: ignore[attr-defined,list-item]
    assert list(store.load_paths()) == batch


def test_append_paths_large_batch_keeps_order(store: Store) -> None:
    """A batch bigger than one RPUSH / one SELECT page is written whole and read back in order."""
    from hermes_sdk.store.base import BatchStore, append_all

    assert isinstance(store, BatchStore)  # every built-in backend writes batches
    batch = [_path(i, app=f"app{i % 5}") for i in range(2_345)]
    append_all(store, batch[:2_300])
    append_all(store, batch[2_300:])
    assert list(store.load_paths()) == batch
