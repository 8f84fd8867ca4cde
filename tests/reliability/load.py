"""Load scenarios: N concurrent apps x M units through the scheduler and through the gateway.

The server is a real ``hermes serve`` child (so its peak RSS, VmHWM, is its own) and, for the
gateway, the engine a ``hermes sim-engine`` child. Afterwards nothing may be lost, duplicated
or stuck: every slot released exactly once, queues and gauges back to zero, every acknowledged
run path in the store exactly once, every gateway request seen by the engine exactly once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from hermes_sdk.store import open_store

from .harness import HERMES, ServerProcess, free_port

TIMEOUT_S = 300.0


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000.0 if values else float("nan")


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _path(app: str, n_units: int) -> dict[str, object]:
    return {
        "app": app,
        "stages": [
            {"node": f"step{u % 4}", "kind": "llm", "backend": "gpu",
             "calls": [{"service_s": 0.001, "input_tokens": 10, "output_tokens": 5}]}
            for u in range(n_units)
        ],
    }  # fmt: skip


class _Tally:
    def __init__(self) -> None:
        self.overhead_s: list[float] = []
        self.release_s: list[float] = []
        self.granted: list[str] = []
        self.released: list[str] = []
        self.release_failures = 0
        self.acknowledged: list[str] = []
        self.held = 0
        self.max_held = 0
        self.retries = 0


async def _post(http: aiohttp.ClientSession, url: str, body: object) -> tuple[int, Any]:
    async with http.post(url, json=body) as resp:
        return resp.status, await resp.json(content_type=None)


async def _app(http: aiohttp.ClientSession, url: str, i: int, n_units: int, t: _Tally) -> None:
    run_id, app = f"run-{i}", f"app-{i % 10}"
    ev = url + "/v1/events"
    await _post(http, ev, {"events": [{"type": "run_start", "run_id": run_id, "app": app}]})
    for u in range(n_units):
        unit = f"u{u}"
        start = {"type": "unit_start", "run_id": run_id, "unit_id": unit, "node": f"step{u % 4}",
                 "kind": "llm", "backend": "gpu"}  # fmt: skip
        await _post(http, ev, {"events": [start]})
        while True:
            t0 = time.perf_counter()
            status, lease = await _post(http, url + "/v1/backends/gpu/acquire", {"run_id": run_id})
            rtt = time.perf_counter() - t0
            if status == 200:
                break
            t.retries += 1  # 429 queue timeout: ask again
        t.overhead_s.append(max(0.0, rtt - float(lease["waited_s"])))
        t.granted.append(lease["lease_id"])
        t.held += 1
        t.max_held = max(t.max_held, t.held)
        await asyncio.sleep(0.002)  # the unit's work
        t.held -= 1
        t0 = time.perf_counter()
        status, _ = await _post(http, f"{url}/v1/leases/{lease['lease_id']}/release", None)
        t.release_s.append(time.perf_counter() - t0)
        if status == 200:
            t.released.append(lease["lease_id"])
        else:
            t.release_failures += 1
        end = {"type": "unit_end", "run_id": run_id, "unit_id": unit, "service_s": 0.002,
               "input_tokens": 10, "output_tokens": 5, "failed": False}  # fmt: skip
        await _post(http, ev, {"events": [end]})
    status, _ = await _post(
        http, f"{url}/v1/runs/{run_id}/end", {"failed": False, "path": _path(app, n_units)}
    )
    if status == 200:
        t.acknowledged.append(run_id)


async def _light_scheduler(http: aiohttp.ClientSession, url: str, n: int = 300) -> dict[str, float]:
    """One client, free slot: acquire round trip against ``GET /healthz`` (same-run baseline),
    requests alternating so drift hits both alike; the added latency is the difference."""
    acq: list[float] = []
    base: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with http.get(url + "/healthz") as resp:
            await resp.read()
        base.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, lease = await _post(http, url + "/v1/backends/gpu/acquire", {})
        acq.append(time.perf_counter() - t0)
        await _post(http, f"{url}/v1/leases/{lease['lease_id']}/release", None)
    return {
        "idle_baseline_healthz_p50_ms": round(_pct(base, 50), 3),
        "idle_acquire_p50_ms": round(_pct(acq, 50), 3),
        "idle_acquire_p99_ms": round(_pct(acq, 99), 3),
        "idle_added_p50_ms": round(_pct(acq, 50) - _pct(base, 50), 3),
        "idle_added_p99_ms": round(_pct(acq, 99) - _pct(base, 99), 3),
    }


async def scenario_scheduler_load(
    tmp: Path, *, n_apps: int = 500, n_units: int = 20, max_inflight: int = 64
) -> dict[str, Any]:
    """``n_apps`` concurrent apps x ``n_units`` units of events + acquire/release."""
    db = tmp / "load.db"
    proc = ServerProcess("--store", f"sqlite:///{db}", "--backend", f"gpu={max_inflight}")
    t = _Tally()
    stuck = 0
    try:
        url = proc.url
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            light = await _light_scheduler(http, url)
            t0 = time.perf_counter()
            tasks = [asyncio.create_task(_app(http, url, i, n_units, t)) for i in range(n_apps)]
            done, pending = await asyncio.wait(tasks, timeout=TIMEOUT_S)
            elapsed_s = time.perf_counter() - t0
            stuck = len(pending)
            for task in pending:
                task.cancel()
            errors = [repr(task.exception()) for task in done if task.exception() is not None]
            async with http.get(url + "/v1/backends") as resp:
                backend = (await resp.json())["backends"][0]
            async with http.get(url + "/metrics") as resp:
                metrics = await resp.text()
        peak_rss_kib = proc.peak_rss_kib()
    finally:
        proc.stop()
    store = open_store(f"sqlite:///{db}")
    try:
        stored = Counter(p.run_id for p in store.load_paths())
    finally:
        store.close()
    acked = set(t.acknowledged)
    lost = sorted(r for r in acked if stored[r] == 0)
    duplicated = sorted(r for r, n in stored.items() if n > 1)
    n_requests = n_apps * n_units
    dup_grants = len(t.granted) - len(set(t.granted))
    figures = {
        "apps": n_apps,
        "units_per_app": n_units,
        "max_inflight": max_inflight,
        "acquires": len(t.granted),
        "released": len(t.released),
        "release_failures": t.release_failures,
        "duplicate_grants": dup_grants,
        "queue_timeouts_retried": t.retries,
        "stuck_apps": stuck,
        "errors": errors[:5],
        "acknowledged_paths": len(acked),
        "stored_paths": sum(stored.values()),
        "lost_paths": len(lost),
        "duplicated_paths": len(duplicated),
        "inflight_after": backend["inflight"],
        "waiting_after": backend["waiting"],
        "metric_queue_depth_after": _metric(metrics, "hermes_queue_depth"),
        "metric_inflight_after": _metric(metrics, "hermes_inflight"),
        "metric_runs_active_after": _metric(metrics, "hermes_runs_active"),
        "max_held_seen_by_clients": t.max_held,
        "server_peak_rss_mib": round(peak_rss_kib / 1024, 1),
        "elapsed_s": round(elapsed_s, 2),
        "units_per_s": round(n_requests / elapsed_s, 1),
        **light,
        "acquire_added_p50_ms": round(_pct(t.overhead_s, 50), 3),
        "acquire_added_p99_ms": round(_pct(t.overhead_s, 99), 3),
        "release_p99_ms": round(_pct(t.release_s, 99), 3),
    }
    passed = (
        not errors and stuck == 0 and len(t.granted) == n_requests
        and len(t.released) == n_requests and dup_grants == 0 and t.release_failures == 0
        and len(acked) == n_apps and not lost and not duplicated
        and backend["inflight"] == 0 and backend["waiting"] == 0
        and figures["metric_queue_depth_after"] == 0 and figures["metric_inflight_after"] == 0
        and figures["metric_runs_active_after"] == 0 and t.max_held <= max_inflight
    )  # fmt: skip
    return {"name": "load_scheduler", "passed": passed, **figures}


class EngineProcess:
    """A ``hermes sim-engine`` child on a free port."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(HERMES), "sim-engine", "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}/v1"

    async def ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/health") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("sim engine did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


async def _chat(
    http: aiohttp.ClientSession, url: str, i: int, u: int, stream: bool
) -> tuple[int, str | None, float, float]:
    """(status, engine request id, client seconds, gateway queue wait seconds)."""
    headers = {"X-Hermes-App": f"app-{i % 10}", "X-Hermes-Run": f"run-{i}",
               "X-Hermes-Unit": f"run-{i}/u{u}"}  # fmt: skip
    body = {"model": "sim-model", "messages": [{"role": "user", "content": f"q {i} {u}"}],
            "max_tokens": 4, "stream": stream}  # fmt: skip
    t0 = time.perf_counter()
    async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
        raw = await resp.read()
        status = resp.status
        waited_s = float(resp.headers.get("X-Hermes-Queue-Wait", "0"))
    total_s = time.perf_counter() - t0
    rid = None
    if status == 200 and stream:
        for line in raw.decode().splitlines():
            if line.startswith("data: {"):
                rid = json.loads(line[6:]).get("id")
                break
    elif status == 200:
        rid = json.loads(raw).get("id")
    return status, rid, total_s, waited_s


async def _light_gateway(
    http: aiohttp.ClientSession, url: str, engine: str, n: int = 200
) -> dict[str, float]:
    """One client: the same chat request straight to the engine (same-run baseline) and through
    the gateway, alternating; the added latency is the difference."""
    body = {"model": "sim-model", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    direct: list[float] = []
    via: list[float] = []
    for _ in range(n):
        for target, out in ((engine, direct), (url, via)):
            t0 = time.perf_counter()
            async with http.post(target + "/v1/chat/completions", json=body) as resp:
                await resp.read()
            out.append(time.perf_counter() - t0)
    return {
        "idle_direct_p50_ms": round(_pct(direct, 50), 3),
        "idle_gateway_p50_ms": round(_pct(via, 50), 3),
        "idle_added_p50_ms": round(_pct(via, 50) - _pct(direct, 50), 3),
        "idle_added_p99_ms": round(_pct(via, 99) - _pct(direct, 99), 3),
    }


async def scenario_gateway_load(
    tmp: Path, *, n_apps: int = 500, n_units: int = 20, max_inflight: int = 64
) -> dict[str, Any]:
    """``n_apps`` concurrent apps x ``n_units`` chat calls through the gateway to a sim engine."""
    engine = EngineProcess("--max-batch", str(max_inflight), "--step-s", "0.002")
    proc: ServerProcess | None = None
    results: list[tuple[int, str | None, float, float]] = []
    stuck = 0
    try:
        await engine.ready()
        proc = ServerProcess(
            "--store", f"sqlite:///{tmp}/gw.db",
            "--upstream", f"sim={engine.url},max_inflight={max_inflight}",
        )  # fmt: skip
        url = proc.url

        async def app(http: aiohttp.ClientSession, i: int) -> None:
            for u in range(n_units):
                results.append(await _chat(http, url, i, u, stream=u % 4 == 3))

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            light = await _light_gateway(http, url, engine.url.removesuffix("/v1"))
            async with http.delete(f"http://127.0.0.1:{engine.port}/debug/requests"):
                pass  # count only the load's requests below
            t0 = time.perf_counter()
            tasks = [asyncio.create_task(app(http, i)) for i in range(n_apps)]
            done, pending = await asyncio.wait(tasks, timeout=TIMEOUT_S)
            elapsed_s = time.perf_counter() - t0
            stuck = len(pending)
            for task in pending:
                task.cancel()
            errors = [repr(task.exception()) for task in done if task.exception() is not None]
            async with http.get(url + "/v1/backends") as resp:
                backend = (await resp.json())["backends"][0]
            async with http.get(url + "/metrics") as resp:
                metrics = await resp.text()
            async with http.get(f"http://127.0.0.1:{engine.port}/debug/requests") as resp:
                records = (await resp.json())["requests"]
        peak_rss_kib = proc.peak_rss_kib()
    finally:
        if proc is not None:
            proc.stop()
        engine.stop()
    engine_s = {
        r["id"]: r["finish_s"] - r["arrival_s"] for r in records if r["finish_s"] is not None
    }
    added = [
        total - waited - engine_s[rid]
        for status, rid, total, waited in results
        if status == 200 and rid in engine_s
    ]
    units_seen = Counter(r["headers"].get("x-hermes-unit") for r in records)
    n_requests = n_apps * n_units
    ok = sum(1 for r in results if r[0] == 200)
    figures = {
        "apps": n_apps,
        "units_per_app": n_units,
        "max_inflight": max_inflight,
        "requests": len(results),
        "ok": ok,
        "non_200": len(results) - ok,
        "engine_saw": len(records),
        "engine_duplicates": sum(n - 1 for n in units_seen.values() if n > 1),
        "engine_missing": n_requests - len(units_seen),
        "stuck_apps": stuck,
        "errors": errors[:5],
        "inflight_after": backend["inflight"],
        "waiting_after": backend["waiting"],
        "metric_inflight_after": _metric(metrics, "hermes_inflight"),
        "metric_queue_depth_after": _metric(metrics, "hermes_queue_depth"),
        "server_peak_rss_mib": round(peak_rss_kib / 1024, 1),
        "elapsed_s": round(elapsed_s, 2),
        "requests_per_s": round(n_requests / elapsed_s, 1),
        **light,
        "added_p50_ms": round(_pct(added, 50), 3),
        "added_p99_ms": round(_pct(added, 99), 3),
    }
    passed = (
        not errors and stuck == 0 and ok == n_requests and len(records) == n_requests
        and figures["engine_duplicates"] == 0 and figures["engine_missing"] == 0
        and backend["inflight"] == 0 and backend["waiting"] == 0
        and figures["metric_inflight_after"] == 0 and figures["metric_queue_depth_after"] == 0
    )  # fmt: skip
    return {"name": "load_gateway", "passed": passed, **figures}
