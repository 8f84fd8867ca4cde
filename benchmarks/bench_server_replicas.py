"""bench_server's replicas section: admission through 1, 2 and 3 replicas on one Redis.

Run: ``.venv/bin/python benchmarks/bench_server.py --replicas [--quick] [--plot-only]``. Starts
a ``redis-server`` (no persistence) and, per point, N scheduler processes on it (gittins,
backend ``free`` with 100,000 slots, one extra plain aiohttp echo route as the same-run
baseline), once with the global admission order (``global_order = true``, the default) and once
with today's per-replica local queues (``global_order = false``). It measures:

- free-slot ``acquire`` latency p50/p99 from one client, requests alternating over the replicas
  and with the echo route (so drift hits all alike);
- acquire+release round trips/s with 50 clients spread over the replicas;
- hand-off: a backend with one slot held through one replica while a request waits at the next;
  the time from sending the release until the waiter's answer arrives (p50/p99).

Target: the global order adds <= 2 ms p50 to a free-slot acquire over the local-queue mode with
the same number of replicas. Writes ``benchmarks/results/server_replicas.json`` and ``.png``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from bench_server import _free_port, _wait_up
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "server_replicas.json"
PNG = RESULTS.with_suffix(".png")
ADDED_P50_TARGET_MS = 2.0
REPLICAS = (1, 2, 3)
RATE_CLIENTS = 50

REPLICA_SCRIPT = """
import sys
from aiohttp import web
from hermes_sdk.server import BackendConfig, ServerConfig, create_app
port, store, global_order = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
cfg = ServerConfig(port=port, store_url=store, global_order=global_order,
                   backends={"free": BackendConfig(100_000), "one": BackendConfig(1)})
app = create_app(cfg)
async def echo(request):
    return web.json_response(await request.json())
app.router.add_post("/bench/echo", echo)
web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
            handler_cancellation=True)
"""


def _redis(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
        stdout=subprocess.DEVNULL,
    )
    return proc, f"redis://127.0.0.1:{port}/0"


async def _latency(http: aiohttp.ClientSession, urls: list[str], n: int) -> dict[str, float]:
    acquire_ms, echo_ms = [], []
    body = {"run_id": "lat-1", "app": "bench"}
    for i in range(n + 50):
        url = urls[i % len(urls)]
        t0 = time.perf_counter()
        async with http.post(url + "/v1/backends/free/acquire", json=body) as r:
            lease = await r.json()
        t1 = time.perf_counter()
        async with http.post(url + f"/v1/leases/{lease['lease_id']}/release") as r:
            await r.read()
        t2 = time.perf_counter()
        async with http.post(url + "/bench/echo", json=body) as r:
            await r.read()
        t3 = time.perf_counter()
        if i >= 50:  # warm-up
            acquire_ms.append((t1 - t0) * 1e3)
            echo_ms.append((t3 - t2) * 1e3)
    a, e = np.array(acquire_ms), np.array(echo_ms)
    return {
        "acquire_p50_ms": float(np.percentile(a, 50)),
        "acquire_p99_ms": float(np.percentile(a, 99)),
        "echo_p50_ms": float(np.percentile(e, 50)),
        "echo_p99_ms": float(np.percentile(e, 99)),
    }


async def _handoff(http: aiohttp.ClientSession, urls: list[str], n: int) -> list[float]:
    """Release-to-grant times (ms): a lease of backend ``one`` (1 slot) held through one replica
    is released while a request waits at the next replica; from sending the release until the
    waiter's answer arrives."""
    out: list[float] = []
    for i in range(n):
        a, b = urls[i % len(urls)], urls[(i + 1) % len(urls)]
        async with http.post(a + "/v1/backends/one/acquire", json={}) as r:
            held = await r.json()
        waiter = asyncio.ensure_future(http.post(b + "/v1/backends/one/acquire", json={}))
        while True:  # queued at b
            async with http.get(b + "/v1/backends") as r:
                one = next(x for x in (await r.json())["backends"] if x["name"] == "one")
            if one["waiting"] == 1:
                break
            await asyncio.sleep(0.002)
        t0 = time.perf_counter()
        async with http.post(a + f"/v1/leases/{held['lease_id']}/release") as r:
            await r.read()
        resp = await waiter
        lease = await resp.json()
        out.append((time.perf_counter() - t0) * 1e3)
        resp.release()
        async with http.post(b + f"/v1/leases/{lease['lease_id']}/release") as r:
            await r.read()
    return out


async def _rate(http: aiohttp.ClientSession, urls: list[str], secs: float) -> float:
    total = 0
    stop_at = time.perf_counter() + secs

    async def client(c: int) -> None:
        nonlocal total
        url = urls[c % len(urls)]
        while time.perf_counter() < stop_at:
            async with http.post(url + "/v1/backends/free/acquire", json={"run_id": f"c{c}"}) as r:
                lease = await r.json()
            async with http.post(url + f"/v1/leases/{lease['lease_id']}/release") as r:
                assert r.status == 200
            total += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(RATE_CLIENTS)))
    return total / (time.perf_counter() - t0)


async def _point(store: str, replicas: int, global_order: bool, quick: bool) -> dict[str, Any]:
    ports = [_free_port() for _ in range(replicas)]
    flag = "1" if global_order else "0"
    procs = [
        subprocess.Popen([sys.executable, "-c", REPLICA_SCRIPT, str(p), store, flag]) for p in ports
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for url in urls:
            await _wait_up(url)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            lat = await _latency(http, urls, 300 if quick else 1500)
            rate = await _rate(http, urls, 1.0 if quick else 3.0)
            handoff = np.array(await _handoff(http, urls, 30 if quick else 100))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    return {
        "replicas": replicas,
        "mode": "global" if global_order else "local",
        **lat,
        "acquire_release_per_s": rate,
        "handoff_p50_ms": float(np.percentile(handoff, 50)),
        "handoff_p99_ms": float(np.percentile(handoff, 99)),
    }


async def _run(quick: bool) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        redis_proc, store = _redis(tmp)
        try:
            for n in REPLICAS:
                for global_order in (False, True):
                    points.append(await _point(store, n, global_order, quick))
        finally:
            redis_proc.terminate()
            redis_proc.wait(10)
    added = {}
    for n in REPLICAS:
        local, glob = (
            next(p for p in points if p["replicas"] == n and p["mode"] == m)
            for m in ("local", "global")
        )
        added[str(n)] = glob["acquire_p50_ms"] - local["acquire_p50_ms"]
    return {
        "benchmark": "server_replicas",
        "command": "python benchmarks/bench_server.py --replicas" + (" --quick" if quick else ""),
        "quick": quick,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
        },
        "setup": {
            "store": "redis-server (loopback, no persistence)",
            "policy": "gittins",
            "backend_slots": 100_000,
            "rate_clients": RATE_CLIENTS,
        },
        "points": points,
        "added_global_p50_ms": added,
        "targets": {
            "added_global_p50_ms": ADDED_P50_TARGET_MS,
            "met": all(v <= ADDED_P50_TARGET_MS for v in added.values()),
        },
    }


def run_replicas(quick: bool) -> dict[str, Any]:
    """Measure, print, write the JSON and PNG; returns the result."""
    result = asyncio.run(_run(quick))
    console = Console()
    table = Table(title="free-slot acquire through N replicas on one Redis (same run)")
    cols = ("replicas", "order", "acquire p50 ms", "p99 ms", "echo p50 ms", "acq+rel/s")
    for col in (*cols, "hand-off p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    for p in result["points"]:
        table.add_row(
            str(p["replicas"]),
            p["mode"],
            f"{p['acquire_p50_ms']:.3f}",
            f"{p['acquire_p99_ms']:.3f}",
            f"{p['echo_p50_ms']:.3f}",
            f"{p['acquire_release_per_s']:,.0f}",
            f"{p['handoff_p50_ms']:.2f}",
            f"{p['handoff_p99_ms']:.2f}",
        )
    console.print(table)
    ok = "met" if result["targets"]["met"] else "MISSED"
    added = ", ".join(f"{n}: {v:+.3f}" for n, v in result["added_global_p50_ms"].items())
    console.print(f"global order added p50 ms by replicas ({added}); <= 2 ms: {ok}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, PNG)
    console.print(f"wrote {RESULTS} and {PNG}")
    return result


def plot(result: dict[str, Any], path: Path) -> None:
    """Acquire p50 (left, with the echo baseline) and acquire+release/s (right) per replica
    count, local-queue order next to the global order."""
    from plotting import figure, grouped_bars, save

    fig, (lat_ax, rate_ax, hand_ax) = figure(
        1, 3, (19, 4.8), "hermes serve replicas on one Redis: global order vs local queues"
    )
    labels = [f"{n} replica{'s' if n > 1 else ''}" for n in REPLICAS]

    def series(mode: str, key: str) -> list[float]:
        return [
            next(p[key] for p in result["points"] if p["replicas"] == n and p["mode"] == mode)
            for n in REPLICAS
        ]

    grouped_bars(
        lat_ax,
        labels,
        {
            "local queues (today)": series("local", "acquire_p50_ms"),
            "global order": series("global", "acquire_p50_ms"),
            "baseline: plain aiohttp echo": series("global", "echo_p50_ms"),
        },
        horizontal=False,
        axis_label="free-slot acquire p50 (ms)",
        title="Acquire latency p50 (same run)",
        fmt=lambda v: f"{v:.2f}",
        legend="upper left",
    )
    grouped_bars(
        rate_ax,
        labels,
        {
            "local queues (today)": series("local", "acquire_release_per_s"),
            "global order": series("global", "acquire_release_per_s"),
        },
        horizontal=False,
        axis_label="acquire+release per second",
        title=f"Throughput, {result['setup']['rate_clients']} clients over the replicas",
        fmt=lambda v: f"{v:,.0f}",
        legend="upper left",
    )
    if "handoff_p50_ms" in result["points"][0]:
        grouped_bars(
            hand_ax,
            labels,
            {
                "local queues (today): retry every 20 ms": series("local", "handoff_p50_ms"),
                "global order: pub/sub hand-off": series("global", "handoff_p50_ms"),
            },
            horizontal=False,
            axis_label="release sent -> waiter answered, p50 (ms)",
            title="Hand-off of a freed slot to a waiter at the next replica",
            fmt=lambda v: f"{v:.2f}",
            legend="upper left",
        )
    save(fig, path)
