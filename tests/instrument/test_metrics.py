"""The run-queue counters on Prometheus: the scheduler's /metrics and an app's own registry."""

from __future__ import annotations

import threading
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import hermes_sdk.instrument as hi
from hermes_sdk.instrument.prometheus import register
from hermes_sdk.server import ServerConfig
from tests.instrument.test_learner import GatedStore, produce
from tests.server.conftest import start_server


def _values(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("hermes_sdk_")
    }


def test_registry_of_an_app_exposes_the_run_queue(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "h.db")
    hi.configure(store=store, learn_queue_bytes=30_000)  # type: ignore[arg-type]
    registry = CollectorRegistry()
    register(registry)
    produce(300, seed=1)  # the store is blocked: the queue fills, the rest is dropped
    held = _values(generate_latest(registry).decode())
    store.gate.set()
    assert hi.flush(30)
    stats = hi.stats()
    after = _values(generate_latest(registry).decode())
    assert held["hermes_sdk_runs_dropped_total"] == stats.runs_dropped > 0
    assert 0 < held["hermes_sdk_run_queue_bytes"] <= held["hermes_sdk_run_queue_max_bytes"]
    assert held["hermes_sdk_runs_pending"] + stats.runs_dropped == 300
    assert (
        after["hermes_sdk_runs_learned_total"] == stats.runs_completed == 300 - stats.runs_dropped
    )
    assert after["hermes_sdk_runs_pending"] == after["hermes_sdk_run_queue_bytes"] == 0
    assert after["hermes_sdk_run_queue_max_bytes"] == 30_000


async def test_scheduler_metrics_include_the_process_counters(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "h.db")
    hi.configure(store=store, learn_queue_bytes=30_000)  # type: ignore[arg-type]
    worker = threading.Thread(target=produce, args=(200, 2))  # off the event loop
    worker.start()
    worker.join()
    server = await start_server(ServerConfig(store_url=f"sqlite:///{tmp_path}/server.db", port=0))
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as resp:
            assert resp.status == 200
            values = _values(await resp.text())
    finally:
        await server.runner.cleanup()
        store.gate.set()
    assert hi.flush(30)
    assert values["hermes_sdk_runs_dropped_total"] == hi.stats().runs_dropped > 0


def test_runs_the_learner_process_cannot_encode_are_counted_apart(tmp_path: Path) -> None:
    """With ``learner="process"`` a run ``marshal`` refuses (a ``str`` subclass as a name) is
    dropped at the queue: counted in ``runs_unencodable`` (of ``runs_dropped``), in
    ``hermes.stats()`` and on /metrics; the runs around it are stored and learned."""
    from hermes_sdk.graph.records import Call, RunPath, Stage
    from hermes_sdk.instrument import runtime as rt

    class Name(str):
        pass

    hi.configure(store=f"sqlite:///{tmp_path}/p.db", learner="process")
    registry = CollectorRegistry()
    register(registry)
    try:
        produce(3, seed=2)
        rt.current_runtime().deliver(RunPath("a", (Stage(Name("n"), (Call(0.1),)),), run_id="bad"))
        produce(2, seed=3)
        assert hi.flush(60)
        stats = hi.stats()
        metrics = _values(generate_latest(registry).decode())
    finally:
        hi.configure(store="memory://")
    assert (stats.runs_unencodable, stats.runs_dropped, stats.runs_completed) == (1, 1, 5)
    assert metrics["hermes_sdk_runs_unencodable_total"] == 1
    assert metrics["hermes_sdk_runs_dropped_total"] == 1
