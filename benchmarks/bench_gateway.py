"""Gateway benchmark: latency the gateway adds over calling the simulated engine directly.

Run: ``.venv/bin/python benchmarks/bench_gateway.py [--quick]``. Starts ``hermes sim-engine``
(zero-cost steps, so the engine's own time is ~HTTP only) and a `hermes serve` app with one
upstream in separate processes, then measures from this process:

- non-streaming chat completion latency p50/p99, direct vs gateway (no hints: FCFS path) and
  gateway with hints (a hint-only run: the policy ranks the request and a priority is sent);
- streaming time to first token (first content chunk) p50/p99, direct vs gateway;
- throughput at 1/32/256 concurrent streams (requests/s, chunks/s), direct vs gateway.

Direct and gateway requests alternate so drift hits both alike. The baseline is the direct
engine in the same run. Target: added p50 <= 1 ms. Writes ``benchmarks/results/gateway.json``.
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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import numpy as np
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "gateway.json"
ADDED_P50_TARGET_MS = 1.0
MODEL = "sim"
GATEWAY_SCRIPT = """
import sys
from aiohttp import web
from hermes_sdk.server import ServerConfig, create_app
from hermes_sdk.server.upstreams import UpstreamConfig
port, engine_url = int(sys.argv[1]), sys.argv[2]
up = UpstreamConfig("sim", engine_url, engine="vllm", max_inflight=4096)
cfg = ServerConfig(port=port, store_url="memory://", upstreams=(up,))
web.run_app(create_app(cfg), host="127.0.0.1", port=port, print=None, access_log=None)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _process(args: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else "died"
                    raise RuntimeError(err) from None
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _body(stream: bool, max_tokens: int) -> dict[str, object]:
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "benchmark the gateway please"}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
    return body


async def _one(
    s: aiohttp.ClientSession, url: str, stream: bool, headers: dict[str, str] | None = None
) -> tuple[float, int]:
    """(seconds to the full response, or to the first content chunk when streaming; chunks)."""
    t0 = time.perf_counter()
    async with s.post(f"{url}/chat/completions", json=_body(stream, 8), headers=headers) as r:
        if not stream:
            await r.read()
            return time.perf_counter() - t0, 1
        first = 0.0
        chunks = 0
        async for line in r.content:
            if line.startswith(b"data: {") and _has_content(line):
                chunks += 1
                if not first:
                    first = time.perf_counter() - t0
        return first, chunks


def _has_content(line: bytes) -> bool:
    return b'"content": "' in line and b'"content": ""' not in line


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


async def latency(direct: str, gateway: str, n: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        for stream in (False, True):
            for _ in range(20):  # warm connections and code paths
                await _one(s, direct, stream)
                await _one(s, gateway, stream)
            d, g, h = [], [], []
            for i in range(n):
                d.append((await _one(s, direct, stream))[0])
                g.append((await _one(s, gateway, stream))[0])
                hints = {"X-Hermes-App": "bench", "X-Hermes-Run": f"r{i}"}
                h.append((await _one(s, gateway, stream, hints))[0])
            kind = "ttft" if stream else "nonstream"
            out[f"{kind}_direct"] = _pct(d)
            out[f"{kind}_gateway"] = _pct(g)
            out[f"{kind}_gateway_hints"] = _pct(h)
    return out


async def throughput(url: str, concurrency: int, duration_s: float) -> dict[str, float]:
    done = chunks = 0
    stop_at = time.perf_counter() + duration_s
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def worker() -> None:
            nonlocal done, chunks
            while time.perf_counter() < stop_at:
                chunks += (await _one(s, url, True))[1]
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"requests_per_s": done / elapsed, "chunks_per_s": chunks / elapsed}


async def run(quick: bool, engine: str, gateway: str) -> dict[str, object]:
    n = 100 if quick else 500
    lat = await latency(engine, gateway, n)
    tput: dict[str, dict[str, float]] = {}
    for c in (1, 32, 256):
        for name, url in (("direct", engine), ("gateway", gateway)):
            tput[f"{c}_{name}"] = await throughput(url, c, 1.0 if quick else 3.0)
    added = {
        kind: {
            q: lat[f"{kind}_gateway"][q] - lat[f"{kind}_direct"][q] for q in ("p50_ms", "p99_ms")
        }
        for kind in ("nonstream", "ttft")
    }
    return {"latency": lat, "added": added, "throughput": tput, "samples": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples, 1 s throughput runs")
    args = parser.parse_args()
    console = Console()
    e_port, g_port = _free_port(), _free_port()
    engine = f"http://127.0.0.1:{e_port}/v1"
    gateway = f"http://127.0.0.1:{g_port}/v1"
    hermes = str(Path(sys.executable).with_name("hermes"))
    engine_cmd = [hermes, "sim-engine", "--port", str(e_port), "--model", MODEL, "--step-s", "0"]
    engine_cmd += ["--step-per-request-s", "0", "--prefill-per-token-s", "0", "--max-batch", "4096"]
    gateway_cmd = [sys.executable, "-c", GATEWAY_SCRIPT, str(g_port), engine]
    with _process(engine_cmd, e_port), _process(gateway_cmd, g_port):
        doc = asyncio.run(run(args.quick, engine, gateway))

    table = Table(title="Gateway added latency (ms) over the direct sim engine")
    for col in ("measure", "direct p50", "gateway p50", "+hints p50", "added p50", "added p99"):
        table.add_column(col, justify="right")
    lat = doc["latency"]
    added = doc["added"]
    assert isinstance(lat, dict) and isinstance(added, dict)
    for kind, label in (("nonstream", "non-streaming"), ("ttft", "TTFT streaming")):
        table.add_row(
            label,
            f"{lat[f'{kind}_direct']['p50_ms']:.3f}",
            f"{lat[f'{kind}_gateway']['p50_ms']:.3f}",
            f"{lat[f'{kind}_gateway_hints']['p50_ms']:.3f}",
            f"{added[kind]['p50_ms']:+.3f}",
            f"{added[kind]['p99_ms']:+.3f}",
        )
    console.print(table)
    t2 = Table(title="Streaming throughput (8-token streams)")
    for col in ("concurrency", "direct req/s", "gateway req/s", "gateway/direct"):
        t2.add_column(col, justify="right")
    tput = doc["throughput"]
    assert isinstance(tput, dict)
    for c in (1, 32, 256):
        d, g = tput[f"{c}_direct"]["requests_per_s"], tput[f"{c}_gateway"]["requests_per_s"]
        t2.add_row(str(c), f"{d:.0f}", f"{g:.0f}", f"{g / d:.2f}")
    console.print(t2)
    worst = max(added[k]["p50_ms"] for k in ("nonstream", "ttft"))
    verdict = "met" if worst <= ADDED_P50_TARGET_MS else "MISSED"
    console.print(f"target added p50 <= {ADDED_P50_TARGET_MS} ms: {verdict} ({worst:.3f} ms)")
    doc.update(
        {
            "benchmark": "gateway",
            "quick": args.quick,
            "target_added_p50_ms": ADDED_P50_TARGET_MS,
            "target_met": worst <= ADDED_P50_TARGET_MS,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            "setup": "sim engine (zero step cost) and gateway in separate processes; client here",
        }
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
