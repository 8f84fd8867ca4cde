"""Scheduler service benchmark: event ingest rate, acquire/release rate, added acquire latency.

Run: ``.venv/bin/python benchmarks/bench_server.py [--quick] [--plot-only]``. Starts the
scheduler app (SQLite store in a temp dir, gittins policy) in a separate process, with one extra
route, a plain aiohttp echo endpoint, as the same-run baseline. From this process it measures:

- events/s ingested via ``POST /v1/events`` (batches of 100: unit start/end pairs of known runs,
  one run_end with a path per batch, stored durably before the answer) with 1, 50, 500 clients;
- acquire+release round trips/s on a backend with free slots, with 1, 50, 500 clients;
- free-slot ``acquire`` latency p50/p99 from one client, minus the echo endpoint's latency
  (same body size, requests alternating so drift hits both alike);
- the same events/s against a second server process whose ``POST /v1/events`` decodes with the
  hand-written validation of before issue 26 (``wire_legacy.py``: ``json.loads`` + field checks),
  the two servers measured alternately;
- in this process, decode+validate time of one 100-event batch (bytes to validated events, the
  path built): that legacy code, pydantic v2 (``wire_pydantic.py``, ``TypeAdapter.validate_json``
  then the path's RunPath) and the msgspec models the server uses (``hermes_sdk.wire``), p50 of
  interleaved calls.

Targets: >= 10k events/s; added acquire p50 <= 1 ms. Writes ``benchmarks/results/server.json``
and ``server.png``.

``--replicas``: the replicas section (``bench_server_replicas.py``): 1, 2 and 3 replicas on one
``redis-server``, each with the global admission order and with today's per-replica (local
queue) order in the same run; writes ``server_replicas.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
RESULTS = Path(__file__).parent / "results" / "server.json"
PNG = RESULTS.with_suffix(".png")
EVENTS_TARGET_PER_S = 10_000.0
ADDED_P50_TARGET_MS = 1.0
BATCH = 100
CLIENTS = (1, 50, 500)

SERVER_SCRIPT = """
import sys
from aiohttp import web
from hermes_sdk.server import BackendConfig, ServerConfig, create_app
port, store = int(sys.argv[1]), sys.argv[2]
if len(sys.argv) > 3:  # POST /v1/events decoded as before issue 26
    import hermes_sdk.server.control as control
    sys.path.insert(0, sys.argv[3])
    from wire_legacy import decode_batch
    control.decode_batch = decode_batch
cfg = ServerConfig(port=port, store_url=store, backends={"free": BackendConfig(100_000)},
                   max_body_bytes=16 * 1024 * 1024)
app = create_app(cfg)
async def echo(request):
    return web.json_response(await request.json())
app.router.add_post("/bench/echo", echo)
web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
            handler_cancellation=True)
"""

PATH = {
    "app": "bench",
    "stages": [
        {"node": "plan", "kind": "llm", "calls": [{"service_s": 0.5}]},
        {"node": "search", "kind": "tool", "calls": [{"service_s": 0.2}]},
    ],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(url + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


def _batch(client: int, seq: int) -> list[dict[str, Any]]:
    run_id = f"c{client}"
    events: list[dict[str, Any]] = []
    for i in range((BATCH - 1) // 2):
        uid = f"{seq}-{i}"
        events.append({"type": "unit_start", "run_id": run_id, "unit_id": uid, "node": "plan"})
        events.append({"type": "unit_end", "run_id": run_id, "unit_id": uid, "service_s": 0.01})
    events.append({"type": "run_end", "run_id": f"{run_id}-{seq}", "path": PATH})
    return events


async def _events_rate(http: aiohttp.ClientSession, url: str, clients: int, secs: float) -> float:
    for c in range(clients):  # every client's run exists so unit events are applied
        async with http.post(url + "/v1/runs", json={"app": "bench", "run_id": f"c{c}"}) as r:
            assert r.status == 201, await r.text()
    total = 0
    stop_at = time.perf_counter() + secs

    async def client(c: int) -> None:
        nonlocal total
        seq = 0
        while time.perf_counter() < stop_at:
            body = {"events": _batch(c, seq)}
            async with http.post(url + "/v1/events", json=body) as resp:
                data = await resp.json()
                assert resp.status == 200, data
                total += data["accepted"]
            seq += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return total / (time.perf_counter() - t0)


async def _acquire_rate(http: aiohttp.ClientSession, url: str, clients: int, secs: float) -> float:
    total = 0
    stop_at = time.perf_counter() + secs

    async def client(c: int) -> None:
        nonlocal total
        while time.perf_counter() < stop_at:
            async with http.post(url + "/v1/backends/free/acquire", json={"run_id": f"c{c}"}) as r:
                lease = await r.json()
            async with http.post(url + f"/v1/leases/{lease['lease_id']}/release") as r:
                assert r.status == 200
            total += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return total / (time.perf_counter() - t0)


async def _latency(
    http: aiohttp.ClientSession, url: str, n: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    acquire_ms, echo_ms = [], []
    body = {"run_id": "lat-1", "app": "bench"}
    for i in range(n + 50):
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
    return np.array(acquire_ms), np.array(echo_ms)


def _decode_validate(n: int) -> dict[str, Any]:
    """Per-batch decode+validate time (us) of one 100-event batch, legacy vs pydantic vs
    msgspec, calls interleaved; every candidate must return the same 100 events and path."""
    sys.path.insert(0, str(HERE))
    import wire_legacy
    import wire_pydantic

    from hermes_sdk.graph.records import path_from_dict
    from hermes_sdk.server.wire import decode_batch, own_path

    events = [{"type": "run_start", "run_id": "c0", "app": "bench"}, *_batch(0, 0)]
    raw = json.dumps({"events": events}).encode()

    def pydantic() -> tuple[list[Any], list[Any]]:
        batch = wire_pydantic.BATCH.validate_json(raw)
        paths = [
            own_path(path_from_dict(e.path), tenant="t", run_id=e.run_id)
            for e in batch.events
            if isinstance(e, wire_pydantic.RunEnd) and e.path is not None
        ]
        return list(batch.events), paths

    def paths_of(decoded: tuple[list[Any], int]) -> tuple[list[Any], list[Any]]:
        return decoded[0], [e.path for e in decoded[0] if getattr(e, "path", None) is not None]

    candidates: dict[str, Callable[[], tuple[list[Any], list[Any]]]] = {
        "legacy": lambda: paths_of(wire_legacy.decode_batch(raw, "t")),
        "pydantic": pydantic,
        "msgspec": lambda: paths_of(decode_batch(raw, "t")),
    }
    reference = candidates["legacy"]()
    for name, run in candidates.items():
        got = run()
        assert len(got[0]) == len(events) and got[1] == reference[1], name
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(n):
        for name, run in candidates.items():
            t0 = time.perf_counter_ns()
            run()
            samples[name].append((time.perf_counter_ns() - t0) / 1e3)
    out: dict[str, Any] = {"events": len(events), "body_bytes": len(raw), "calls": n}
    for name, xs in samples.items():
        out[name] = {q: float(np.percentile(xs, int(q[1:]))) for q in ("p50", "p90")}
    return out


async def _run(quick: bool) -> dict[str, Any]:
    secs = 1.0 if quick else 3.0
    n_lat = 500 if quick else 3000
    rounds = 1 if quick else 4
    decode_us = _decode_validate(500 if quick else 3000)
    port, legacy_port = _free_port(), _free_port()
    url, legacy_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{legacy_port}"
    with tempfile.TemporaryDirectory() as tmp:
        script = [sys.executable, "-c", SERVER_SCRIPT]
        procs = [
            subprocess.Popen([*script, str(port), f"sqlite:///{tmp}/bench.db"]),
            subprocess.Popen([*script, str(legacy_port), f"sqlite:///{tmp}/legacy.db", str(HERE)]),
        ]
        try:
            await _wait_up(url)
            await _wait_up(legacy_url)
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                acquire_ms, echo_ms = await _latency(http, url, n_lat)
                events: dict[int, float] = dict.fromkeys(CLIENTS, 0.0)
                legacy: dict[int, float] = dict.fromkeys(CLIENTS, 0.0)
                for u in (url, legacy_url):  # warm-up: first paths, store, rank tables
                    await _events_rate(http, u, 50, secs / 2)
                for c in CLIENTS:  # alternating (order swapped each round): drift hits both
                    for r in range(rounds):
                        pair = [(events, url), (legacy, legacy_url)][:: 1 if r % 2 == 0 else -1]
                        for into, u in pair:
                            into[c] += await _events_rate(http, u, c, secs) / rounds
                acquires = {c: await _acquire_rate(http, url, c, secs) for c in CLIENTS}
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    p50, p99 = (float(np.percentile(acquire_ms, q)) for q in (50, 99))
    e50, e99 = (float(np.percentile(echo_ms, q)) for q in (50, 99))
    return {
        "benchmark": "server",
        "quick": quick,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
        },
        "setup": {
            "store": "sqlite (temp dir)",
            "policy": "gittins",
            "batch_events": BATCH,
            "seconds_per_point": secs,
            "latency_samples": n_lat,
            "events_rounds_per_point": rounds,
        },
        "events_per_s": {str(c): round(v, 1) for c, v in events.items()},
        "events_per_s_legacy_decode": {str(c): round(v, 1) for c, v in legacy.items()},
        "events_vs_legacy": {str(c): round(events[c] / legacy[c], 3) for c in CLIENTS},
        "decode_validate_us_per_batch": decode_us,
        "acquire_release_per_s": {str(c): round(v, 1) for c, v in acquires.items()},
        "acquire_latency_ms": {"p50": p50, "p99": p99},
        "echo_latency_ms": {"p50": e50, "p99": e99},
        "added_acquire_latency_ms": {"p50": p50 - e50, "p99": p99 - e99},
        "targets": {
            "events_per_s": EVENTS_TARGET_PER_S,
            "added_acquire_p50_ms": ADDED_P50_TARGET_MS,
            "events_met": max(events.values()) >= EVENTS_TARGET_PER_S,
            "acquire_met": p50 - e50 <= ADDED_P50_TARGET_MS,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (CI smoke)")
    parser.add_argument(
        "--replicas",
        action="store_true",
        help="the replicas section only: 1-3 replicas on one Redis, global vs local order",
    )
    from plotting import add_plot_only, redraw

    add_plot_only(parser, PNG, RESULTS)
    args = parser.parse_args()
    if args.replicas:
        from bench_server_replicas import PNG as RPNG
        from bench_server_replicas import RESULTS as RRESULTS
        from bench_server_replicas import plot as rplot
        from bench_server_replicas import run_replicas

        if args.plot_only:
            redraw(rplot, RRESULTS, RPNG)
        else:
            run_replicas(args.quick)
        return
    if args.plot_only:
        redraw(plot, RESULTS, PNG)
        return
    result = asyncio.run(_run(args.quick))
    console = Console()
    table = Table(title="hermes serve: throughput (loopback, one server process)")
    table.add_column("clients", justify="right")
    table.add_column("events/s", justify="right")
    table.add_column("events/s, legacy decode", justify="right")
    table.add_column("acquire+release/s", justify="right")
    for c in CLIENTS:
        table.add_row(
            str(c),
            f"{result['events_per_s'][str(c)]:,.0f}",
            f"{result['events_per_s_legacy_decode'][str(c)]:,.0f}",
            f"{result['acquire_release_per_s'][str(c)]:,.0f}",
        )
    console.print(table)
    dv = result["decode_validate_us_per_batch"]
    dec = Table(title=f"decode+validate of one {dv['events']}-event batch (us, same process)")
    for col in ("", "p50 us", "p90 us"):
        dec.add_column(col, justify="right")
    for name in ("legacy", "pydantic", "msgspec"):
        dec.add_row(name, f"{dv[name]['p50']:.1f}", f"{dv[name]['p90']:.1f}")
    console.print(dec)
    lat = Table(title="free-slot acquire latency vs plain aiohttp echo (same server, same run)")
    for col in ("", "p50 ms", "p99 ms"):
        lat.add_column(col, justify="right")
    for name, key in (
        ("acquire", "acquire_latency_ms"),
        ("echo (baseline)", "echo_latency_ms"),
        ("added", "added_acquire_latency_ms"),
    ):
        lat.add_row(name, f"{result[key]['p50']:.3f}", f"{result[key]['p99']:.3f}")
    console.print(lat)
    t = result["targets"]
    events_ok = "met" if t["events_met"] else "MISSED"
    acquire_ok = "met" if t["acquire_met"] else "MISSED"
    console.print(
        f"targets: >= {EVENTS_TARGET_PER_S:,.0f} events/s: {events_ok}; "
        f"added acquire p50 <= {ADDED_P50_TARGET_MS} ms: {acquire_ok}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, PNG)
    console.print(f"wrote {RESULTS} and {PNG}")


def plot(result: dict[str, Any], path: Path) -> None:
    """Free-slot acquire latency vs the plain aiohttp echo on the same server (left, with the
    added-latency target); events/s and acquire+release/s per client count (right)."""
    from plotting import figure, grouped_bars, save

    targets = result["targets"]
    fig, (lat_ax, rate_ax) = figure(
        1, 2, (13, 4.8), "hermes serve: scheduler HTTP API on loopback, one server process"
    )
    quantiles = ("p50", "p99")
    added_target = targets.get("added_acquire_p50_ms", ADDED_P50_TARGET_MS)
    grouped_bars(
        lat_ax,
        quantiles,
        {
            "acquire (free slot)": [result["acquire_latency_ms"][q] for q in quantiles],
            "baseline: plain aiohttp echo": [result["echo_latency_ms"][q] for q in quantiles],
            "added = acquire - echo": [result["added_acquire_latency_ms"][q] for q in quantiles],
        },
        horizontal=False,
        axis_label="latency per request (ms)",
        title="Acquire latency vs plain aiohttp echo (same run)",
        fmt=lambda v: f"{v:.3f}",
        targets=[(added_target, f"target: added p50 <= {added_target:g} ms")],
        legend="upper left",
    )
    clients = list(result["events_per_s"])
    events_target = targets.get("events_per_s", EVENTS_TARGET_PER_S)
    batch = result.get("setup", {}).get("batch_events", BATCH)
    grouped_bars(
        rate_ax,
        [f"{c} client{'s' if c != '1' else ''}" for c in clients],
        {
            f"events/s (batches of {batch})": [result["events_per_s"][c] for c in clients],
            **(
                {
                    "events/s, legacy decode (same run)": [
                        result["events_per_s_legacy_decode"][c] for c in clients
                    ]
                }
                if "events_per_s_legacy_decode" in result
                else {}
            ),
            "acquire+release/s": [result["acquire_release_per_s"][c] for c in clients],
        },
        horizontal=False,
        log=True,
        axis_label="per second (log)",
        title="Throughput per concurrent clients",
        targets=[(events_target, f"target: >= {events_target:,.0f} events/s")],
        legend="upper left",
    )
    save(fig, path)


if __name__ == "__main__":
    main()
