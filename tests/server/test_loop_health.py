"""Loop health: GC-pause and loop-lag histograms on /metrics, ``hermes serve``'s collector
settings (applied once, restored), and a timed-out acquire leaving no reference cycles."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from hermes_sdk.server import BackendConfig
from hermes_sdk.server.admission import QueueTimeout
from hermes_sdk.server.gc_setup import NEVER, GcSettings, gc_settings
from hermes_sdk.server.loop_health import Buckets, GcPauses

from .conftest import StartServer

GPU = {"gpu": BackendConfig(max_inflight=1)}


async def _text(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url + "/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


def _sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


async def test_metrics_export_gc_pauses_and_loop_lag_as_histograms(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(backends=GPU)
    before = await _text(http, server.url)
    assert "# TYPE hermes_gc_pause_seconds histogram" in before
    assert "# TYPE hermes_event_loop_lag_seconds histogram" in before
    full = 'hermes_gc_pause_seconds_count{generation="2"}'
    n_full = _sample(before, full)
    assert n_full is not None
    for generation in ("0", "1"):
        assert (
            _sample(before, f'hermes_gc_pause_seconds_count{{generation="{generation}"}}')
            is not None
        )
    gc.collect()
    gc.collect()
    await asyncio.sleep(0.2)  # ~10 lag probes
    after = await _text(http, server.url)
    count = _sample(after, full)
    assert count is not None and count >= n_full + 2  # ours, and any automatic one meanwhile
    inf = _sample(after, 'hermes_gc_pause_seconds_bucket{generation="2",le="+Inf"}')
    assert inf == count
    probes = _sample(after, "hermes_event_loop_lag_seconds_count")
    assert probes is not None and probes >= 3
    assert (_sample(after, "hermes_event_loop_lag_seconds_sum") or 0.0) >= 0.0


async def test_gc_callback_is_removed_when_the_app_stops(serve: StartServer) -> None:
    before = list(gc.callbacks)
    server = await serve(backends=GPU)
    assert len(gc.callbacks) == len(before) + 1
    await server.runner.cleanup()
    assert gc.callbacks == before


def test_gc_pauses_install_once_and_count_per_generation() -> None:
    pauses = GcPauses()
    pauses.install()
    pauses.install()
    try:
        assert gc.callbacks.count(pauses._callback) == 1
        gc.collect(1)
        gc.collect(2)
    finally:
        pauses.uninstall()
    assert pauses._callback not in gc.callbacks
    assert sum(pauses.by_generation[1].counts) >= 1
    assert sum(pauses.by_generation[2].counts) >= 1
    assert pauses.by_generation[2].total_s > 0.0


def test_buckets_are_cumulative_with_inf_last() -> None:
    b = Buckets((0.001, 0.01))
    for v in (0.0005, 0.001, 0.005, 3.0):
        b.observe(v)
    assert b.cumulative() == [("0.001", 2.0), ("0.01", 3.0), ("+Inf", 4.0)]
    assert b.total_s == pytest.approx(3.0065)


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@pytest.mark.usefixtures("restore_gc")
async def test_gc_settings_apply_while_serving_and_restore() -> None:
    thresholds = gc.get_threshold()
    full_runs = gc.get_stats()[2]["collections"]
    async with gc_settings(GcSettings(freeze=True, full_every_s=0.05, threshold1=3)):
        assert gc.get_threshold() == (thresholds[0], 3, NEVER)
        assert gc.get_freeze_count() > 0
        await asyncio.sleep(0.3)
        assert gc.get_stats()[2]["collections"] >= full_runs + 2  # the task's full collections
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0
    for task in asyncio.all_tasks():
        assert "_collect_every" not in repr(task.get_coro())


@pytest.mark.usefixtures("restore_gc")
async def test_gc_settings_off_leave_the_collector_alone() -> None:
    thresholds = gc.get_threshold()
    async with gc_settings(GcSettings(freeze=False, full_every_s=None, threshold1=None)):
        assert gc.get_threshold() == thresholds
        assert gc.get_freeze_count() == 0
    async with gc_settings(GcSettings(freeze=False, full_every_s=0, threshold1=2)):
        assert gc.get_threshold() == (thresholds[0], 2, thresholds[2])
    assert gc.get_threshold() == thresholds


async def _post(http: aiohttp.ClientSession, url: str, body: object = None) -> tuple[int, Any]:
    async with http.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def test_a_timed_out_acquire_leaves_no_reference_cycles(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve(backends=GPU)
    acquire = f"{server.url}/v1/backends/gpu/acquire"
    status, _ = await _post(http, acquire)  # holds the only slot
    assert status == 200
    gc.collect()
    gc.disable()
    try:
        for i in range(5):
            status, body = await _post(http, acquire, {"run_id": f"r{i}", "timeout_s": 0.02})
            assert status == 429 and body["error"]["code"] == "queue_timeout"
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        cyclic = [o for o in gc.garbage if isinstance(o, (QueueTimeout, TimeoutError))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert cyclic == []
