"""The demo's engine-load view: batch occupancy, full-batch time and queues from engine records
and the gateway's queue-wait histogram."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from hermes_langgraph.demo.load import engine_load, gateway_waits
from prometheus_client import generate_latest

from hermes_sdk.server.metrics import ServerMetrics
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine


def _record(priority: int, arrival: float, start: float, finish: float) -> dict[str, object]:
    return {
        "priority": priority,
        "arrival_s": arrival,
        "start_s": start,
        "finish_s": finish,
        "completion_tokens": 10,
        "preemptions": 1 if priority else 0,
    }


def test_occupancy_full_time_and_queues_follow_the_intervals() -> None:
    records = [_record(0, 0.0, 0.0, 2.0), _record(1, 0.5, 1.0, 3.0), _record(1, 3.0, 3.5, 4.5)]
    # arrivals end at 4 s, the pass at 5 s; a full batch of 2 steps in 0.1 s
    load = engine_load("fast", records, (2, 0.1), (0.0, 4.0, 5.0), (2.0, 4))
    assert load.requests == 3 and load.priorities == 2 and load.preemptions == 2
    assert load.mean_batch == pytest.approx((2.0 + 2.0 + 0.5) / 4.0)  # clipped to the span
    assert load.utilisation == pytest.approx(load.mean_batch / 2)
    assert load.full_share == pytest.approx(1.0 / 4.0)  # both running from 1 s to 2 s
    assert load.offered_load == pytest.approx(30 * 0.1 / (2 * 4.0))
    assert load.engine_queue == pytest.approx((0.0 + 0.5 + 0.5) / 5.0)
    assert load.gateway_wait_s == pytest.approx(0.5)
    assert load.gateway_queue == pytest.approx(2.0 / 5.0)
    idle = engine_load("slow", [], (2, 0.1), (0.0, 4.0, 5.0), (0.0, 0))
    assert idle.requests == idle.mean_batch == idle.full_share == idle.gateway_wait_s == 0


def test_gateway_waits_read_the_schedulers_histogram_per_upstream() -> None:
    metrics = ServerMetrics()
    for backend, wait in (("fast", 0.25), ("fast", 0.75), ("slow", 2.0)):
        metrics.queue_wait_s.labels(backend).observe(wait)
    waits = gateway_waits(generate_latest(metrics.registry).decode())
    assert waits == {"fast": (1.0, 2), "slow": (2.0, 1)}


async def test_a_real_engine_batches_and_records_what_the_view_needs() -> None:
    config = SimEngineConfig(
        model="m", step_base_s=0.01, step_per_request_s=0.0, max_batch=2, priority_scheduling=True
    )
    async with serve_sim_engine(config) as base, httpx.AsyncClient(timeout=30) as client:
        t0 = time.monotonic()

        async def call(priority: int) -> None:
            body = {
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 10,
                "priority": priority,
            }
            (await client.post(f"{base}/chat/completions", json=body)).raise_for_status()

        await asyncio.gather(*(call(p) for p in (3, 1, 2, 0)))
        t1 = time.monotonic()
        root = base.removesuffix("/v1")
        records = (await client.get(f"{root}/debug/requests")).json()["requests"]
    load = engine_load("fast", records, (2, 0.01), (t0, t1, t1), (0.0, 0))
    assert load.requests == 4 and load.priorities == 4
    assert 0 < load.mean_batch <= 2.0  # never more than a batch decodes at once
    assert load.full_share > 0  # four requests through a batch of two fill it
    assert load.engine_queue > 0  # two of them waited inside the engine
    assert load.offered_load == pytest.approx(40 * 0.01 / (2 * (t1 - t0)))
