"""GraphSync: group commit of paths, and replicas catching up from the store's cursor."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hermes_sdk.graph.records import Call, RunPath, Stage
from hermes_sdk.server.graph_sync import BatchStore, CursorStore, GraphSync
from hermes_sdk.store import open_store


def _path(i: int, app: str = "qa") -> RunPath:
    return RunPath(app=app, run_id=f"r{i}", stages=(Stage("plan", (Call(1.0 + i),), "llm"),))


async def test_concurrent_writes_share_durable_commits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/h.db"
    store = open_store(url)
    assert isinstance(store, BatchStore)
    calls: list[int] = []
    original = store.append_paths

    def counting(paths: list[RunPath]) -> None:
        calls.append(len(paths))
        original(paths)

    store.append_paths = counting  # type: ignore[method-assign]
    sync = GraphSync(store)
    await asyncio.gather(*(sync.write([_path(i)]) for i in range(40)))
    assert sum(calls) == 40
    assert len(calls) < 40, "writers that arrive during a commit must join the next one"
    graph = sync.registry.get("qa")
    assert graph is not None and graph.runs == 40
    sync.registry.close()
    # Everything acknowledged is on disk: a fresh registry rebuilds the same graph.
    again = GraphSync(open_store(url))
    rebuilt = again.registry.get("qa")
    assert rebuilt is not None and rebuilt.to_json() == graph.to_json()
    again.registry.close()


async def test_a_failed_write_fails_every_waiter_and_learns_nothing(tmp_path: Path) -> None:
    store = open_store("memory://")
    sync = GraphSync(store)
    store.close()
    results = await asyncio.gather(
        *(sync.write([_path(i)]) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, Exception) for r in results)
    assert sync.registry.get("qa") is None


def test_pull_folds_only_other_writers_paths(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    a = GraphSync(open_store(url), shared=True)
    b = GraphSync(open_store(url), shared=True)
    a.store_and_fold([_path(1), _path(2)])
    b.store_and_fold([_path(3)])
    assert a.pull() == 1 and b.pull() == 2
    assert a.pull() == 0 and b.pull() == 0
    ga, gb = a.registry.get("qa"), b.registry.get("qa")
    assert ga is not None and gb is not None and ga.runs == gb.runs == 3


def test_pull_is_a_no_op_for_a_private_store() -> None:
    sync = GraphSync(open_store("memory://"))
    sync.store_and_fold([_path(1)])
    assert sync.pull() == 0


@pytest.mark.parametrize("scheme", ["sqlite", "memory"])
def test_append_paths_batches(tmp_path: Path, scheme: str) -> None:
    url = f"sqlite:///{tmp_path}/b.db" if scheme == "sqlite" else "memory://"
    store = open_store(url)
    sync = GraphSync(store)
    sync.store.append_paths([_path(i) for i in range(5)])
    assert [p.run_id for p in store.load_paths()] == [f"r{i}" for i in range(5)]
    assert isinstance(store, BatchStore)  # every built-in store writes a batch at once
    assert not isinstance(store, CursorStore)
