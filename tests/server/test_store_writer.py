"""The store writer thread: one thread persists the server's paths, placed on the CPUs
``HERMES_WRITER_CPUS`` names (so its fsyncs stop preempting the event loop's core)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from hermes_sdk.graph.records import Call, RunPath, Stage
from hermes_sdk.server.graph_sync import WRITER_CPUS_ENV, GraphSync
from hermes_sdk.store import open_store

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity"), reason="thread affinity is Linux-only"
)


def _path(i: int) -> RunPath:
    return RunPath(app="qa", run_id=f"r{i}", stages=(Stage("plan", (Call(1.0),), "llm"),))


def _writer_facts(sync: GraphSync) -> tuple[set[int], str]:
    assert sync._writer is not None
    return sync._writer.submit(
        lambda: (os.sched_getaffinity(0), threading.current_thread().name)
    ).result()


async def test_the_writer_thread_runs_where_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = max(os.sched_getaffinity(0))  # one CPU this process may use (of 2 here: not all)
    monkeypatch.setenv(WRITER_CPUS_ENV, str(cpu))
    sync = GraphSync(open_store(f"sqlite:///{tmp_path}/w.db"))
    for i in range(3):
        await sync.write([_path(i)])
    graph = sync.registry.get("qa")
    assert graph is not None and graph.runs == 3
    affinity, name = _writer_facts(sync)
    assert affinity == {cpu} and name.startswith("hermes-store-writer")
    sync.close()
    sync.registry.close()


async def test_an_unusable_cpu_list_is_logged_and_the_writes_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(WRITER_CPUS_ENV, "not-a-cpu")
    sync = GraphSync(open_store(f"sqlite:///{tmp_path}/w.db"))
    await sync.write([_path(0)])
    graph = sync.registry.get("qa")
    assert graph is not None and graph.runs == 1
    assert WRITER_CPUS_ENV in caplog.text
    assert _writer_facts(sync)[0] == os.sched_getaffinity(0)  # left where it was
    sync.close()
    sync.registry.close()


async def test_a_lowered_writer_thread_alone_gets_its_niceness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hermes_sdk.server import graph_sync

    monkeypatch.setattr(graph_sync, "WRITER_NICE", 19)
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    if before >= 19:
        pytest.skip("this process already runs at niceness 19")
    sync = GraphSync(open_store(f"sqlite:///{tmp_path}/w.db"))
    await sync.write([_path(0)])
    assert sync._writer is not None
    nice = sync._writer.submit(
        lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    ).result()
    assert nice == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # not the loop's
    sync.close()
    sync.registry.close()
