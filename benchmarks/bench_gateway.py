"""Gateway benchmark: latency and CPU the gateway adds over calling the simulated engine directly.

Run: ``.venv/bin/python benchmarks/bench_gateway.py [--quick]``. Starts ``hermes sim-engine``
(zero-cost steps, so the engine's own time is ~HTTP only), a `hermes serve` app with one upstream,
and -- as a second baseline, the floor of any Python proxy -- a bare aiohttp pass-through proxy,
each in its own process, then measures from this process:

- non-streaming chat completion latency p50/p99: direct, bare proxy, gateway (no hints: FCFS
  path) and gateway with hints (a hint-only run: the policy ranks it and a priority is sent);
- streaming time to first token (first content chunk) p50/p99, same four;
- gateway and bare-proxy process CPU milliseconds per request (from /proc; robust to a loaded
  machine, unlike wall-clock latency);
- throughput at 1/32/256 concurrent streams (requests/s), direct vs bare proxy vs gateway.

Requests to the targets alternate so drift hits all alike. Target: gateway added p50 <= 1 ms.
Writes ``benchmarks/results/gateway.json``.
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
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp
import numpy as np
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "gateway.json"
PLOT = RESULTS.with_suffix(".png")
ADDED_P50_TARGET_MS = 1.0
MODEL = "sim"
HINTS = {"X-Hermes-App": "bench", "X-Hermes-Run": "r1"}
GATEWAY_SCRIPT = """
import sys
from aiohttp import web
from hermes_sdk.server import ServerConfig, create_app
from hermes_sdk.server.upstreams import UpstreamConfig
port, engine_url = int(sys.argv[1]), sys.argv[2]
up = UpstreamConfig("sim", engine_url, engine="vllm", max_inflight=4096)
cfg = ServerConfig(port=port, store_url="memory://", upstreams=(up,))
web.run_app(create_app(cfg), host="127.0.0.1", port=port, print=None, access_log=None,
            handler_cancellation=True)
"""
BARE_PROXY_SCRIPT = """
import sys
import aiohttp
from aiohttp import web
port, engine_url = int(sys.argv[1]), sys.argv[2]
SESSION = web.AppKey("session", aiohttp.ClientSession)
async def ctx(app):
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app[SESSION].close()
async def proxy(request):
    body = await request.read()
    headers = {"Content-Type": "application/json"}
    async with request.app[SESSION].post(engine_url + "/chat/completions", data=body,
                                         headers=headers) as up:
        if b'"stream": true' not in body:
            return web.Response(body=await up.read(), status=up.status,
                                content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        async for chunk in up.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp
app = web.Application()
app.cleanup_ctx.append(ctx)
app.router.add_post("/v1/chat/completions", proxy)
web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _process(args: list[str], port: int) -> Iterator[int]:
    """Run a server process until it accepts connections on ``port``; yields its pid."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else "died"
                    raise RuntimeError(err) from None
                time.sleep(0.05)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _body(stream: bool, max_tokens: int) -> dict[str, object]:
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "benchmark the gateway please"}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
    return body


def _has_content(line: bytes) -> bool:
    return b'"content": "' in line and b'"content": ""' not in line


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


async def latency(
    targets: dict[str, tuple[str, dict[str, str] | None]],
    pids: dict[str, int],
    n: int,
    rounds: int,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, object]], dict[str, float]]:
    """Latency per (kind, target), added latency per (kind, proxy target), proxy CPU ms/request.

    ``rounds`` rounds of ``n`` interleaved requests per target: p50 is the median of the round
    p50s and "added" the median of the per-round p50 differences to direct, so a burst of load
    from other processes moves one round, not the result; p99 pools every sample.
    """
    lat: dict[str, dict[str, float]] = {}
    added: dict[str, dict[str, object]] = {}
    cpu_ms: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        for stream in (False, True):
            kind = "ttft" if stream else "nonstream"
            for _ in range(20):  # warm connections and code paths
                for url, headers in targets.values():
                    await _one(s, url, stream, headers)
            pooled: dict[str, list[float]] = {name: [] for name in targets}
            round_p50: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(rounds):
                samples: dict[str, list[float]] = {name: [] for name in targets}
                for _ in range(n):
                    for name, (url, headers) in targets.items():
                        samples[name].append((await _one(s, url, stream, headers))[0])
                for name, xs in samples.items():
                    pooled[name] += xs
                    round_p50[name].append(float(np.median(xs)) * 1000.0)
            for name in targets:
                p99 = float(np.percentile(np.asarray(pooled[name]) * 1000.0, 99))
                lat[f"{kind}_{name}"] = {"p50_ms": float(np.median(round_p50[name])), "p99_ms": p99}
            for name in targets:
                if name == "direct":
                    continue
                diffs = np.subtract(round_p50[name], round_p50["direct"])
                added[f"{kind}_{name}"] = {
                    "p50_ms": float(np.median(diffs)),
                    "p99_ms": lat[f"{kind}_{name}"]["p99_ms"] - lat[f"{kind}_direct"]["p99_ms"],
                    "round_p50_ms": [float(d) for d in diffs],
                }
            for name, pid in pids.items():  # sequential requests of one target: clean CPU share
                url, headers = targets[name]
                before = _cpu_s(pid)
                for _ in range(n):
                    await _one(s, url, stream, headers)
                cpu_ms[f"{kind}_{name}"] = (_cpu_s(pid) - before) / n * 1000.0
    return lat, added, cpu_ms


async def throughput(url: str, concurrency: int, duration_s: float) -> dict[str, float]:
    done = chunks = 0
    stop_at = time.perf_counter() + duration_s
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def worker() -> None:
            nonlocal done, chunks
            while time.perf_counter() < stop_at:
                chunks += (await _one(s, url, True))[1]
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {"requests_per_s": done / elapsed, "chunks_per_s": chunks / elapsed}


async def run(quick: bool, urls: dict[str, str], pids: dict[str, int]) -> dict[str, object]:
    n, rounds = (50, 3) if quick else (200, 5)
    targets: dict[str, tuple[str, dict[str, str] | None]] = {
        "direct": (urls["direct"], None),
        "bare_proxy": (urls["bare_proxy"], None),
        "gateway": (urls["gateway"], None),
        "gateway_hints": (urls["gateway"], HINTS),
    }
    cpu_pids = {"bare_proxy": pids["bare_proxy"], "gateway": pids["gateway"]}
    cpu_pids["gateway_hints"] = pids["gateway"]
    lat, added, cpu_ms = await latency(targets, cpu_pids, n, rounds)
    tput: dict[str, dict[str, float]] = {}
    for c in (1, 32, 256):
        for name in ("direct", "bare_proxy", "gateway"):
            tput[f"{c}_{name}"] = await throughput(urls[name], c, 1.0 if quick else 3.0)
    return {
        "latency": lat,
        "added": added,
        "cpu_ms_per_request": cpu_ms,
        "throughput": tput,
        "samples_per_round": n,
        "rounds": rounds,
    }


def _print(console: Console, doc: dict[str, object]) -> None:
    lat, added, cpu, tput = (
        doc[k] for k in ("latency", "added", "cpu_ms_per_request", "throughput")
    )
    assert isinstance(lat, dict) and isinstance(added, dict)
    assert isinstance(cpu, dict) and isinstance(tput, dict)
    table = Table(title="Latency (ms): p50 (p99); added = minus direct, same run")
    for col in ("measure", "direct", "bare proxy", "gateway", "gateway+hints", "gw added p50"):
        table.add_column(col, justify="right")
    for kind, label in (("nonstream", "non-streaming"), ("ttft", "TTFT (stream)")):

        def cell(name: str, kind: str = kind) -> str:
            v = lat[f"{kind}_{name}"]
            return f"{v['p50_ms']:.2f} ({v['p99_ms']:.1f})"

        table.add_row(
            label,
            cell("direct"),
            cell("bare_proxy"),
            cell("gateway"),
            cell("gateway_hints"),
            f"{added[f'{kind}_gateway']['p50_ms']:+.3f}",
        )
    console.print(table)
    t_cpu = Table(title="Proxy process CPU per request (ms)")
    for col in ("measure", "bare proxy", "gateway", "gateway+hints"):
        t_cpu.add_column(col, justify="right")
    for kind in ("nonstream", "ttft"):
        t_cpu.add_row(
            kind, *(f"{cpu[f'{kind}_{n}']:.3f}" for n in ("bare_proxy", "gateway", "gateway_hints"))
        )
    console.print(t_cpu)
    t2 = Table(title="Streaming throughput, requests/s (8-token streams)")
    for col in ("concurrency", "direct", "bare proxy", "gateway", "gateway/direct"):
        t2.add_column(col, justify="right")
    for c in (1, 32, 256):
        d, b, g = (tput[f"{c}_{n}"]["requests_per_s"] for n in ("direct", "bare_proxy", "gateway"))
        t2.add_row(str(c), f"{d:.0f}", f"{b:.0f}", f"{g:.0f}", f"{g / d:.2f}")
    console.print(t2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples, 1 s throughput runs")
    args = parser.parse_args()
    console = Console()
    ports = {name: _free_port() for name in ("direct", "bare_proxy", "gateway")}
    urls = {name: f"http://127.0.0.1:{port}/v1" for name, port in ports.items()}
    hermes = str(Path(sys.executable).with_name("hermes"))
    engine_cmd = [hermes, "sim-engine", "--port", str(ports["direct"]), "--model", MODEL]
    engine_cmd += ["--step-s", "0", "--step-per-request-s", "0", "--prefill-per-token-s", "0"]
    engine_cmd += ["--max-batch", "4096"]
    commands = {
        "direct": engine_cmd,
        "bare_proxy": [sys.executable, "-c", BARE_PROXY_SCRIPT, str(ports["bare_proxy"])],
        "gateway": [sys.executable, "-c", GATEWAY_SCRIPT, str(ports["gateway"])],
    }
    commands["bare_proxy"].append(urls["direct"])
    commands["gateway"].append(urls["direct"])
    load_before = os.getloadavg()[0]
    with ExitStack() as stack:
        pids = {n: stack.enter_context(_process(cmd, ports[n])) for n, cmd in commands.items()}
        doc = asyncio.run(run(args.quick, urls, pids))
    _print(console, doc)
    added = doc["added"]
    assert isinstance(added, dict)
    worst = max(added[k]["p50_ms"] for k in ("nonstream_gateway", "ttft_gateway"))
    met = worst <= ADDED_P50_TARGET_MS
    console.print(
        f"target gateway added p50 <= {ADDED_P50_TARGET_MS} ms: "
        f"{'met' if met else 'MISSED'} (worst {worst:.3f} ms; load average {load_before:.1f})"
    )
    doc.update(
        {
            "benchmark": "gateway",
            "quick": args.quick,
            "target_added_p50_ms": ADDED_P50_TARGET_MS,
            "target_met": met,
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average_1m_at_start": load_before,
                "nice": os.nice(0),
            },
            "setup": "sim engine (zero step cost), bare aiohttp proxy and gateway in separate "
            "processes; client in the benchmark process; 8-token completions",
        }
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    _plot(doc)
    console.print(f"wrote {RESULTS} and {PLOT}")


def _plot(doc: dict[str, object]) -> None:
    """Latency p50 per target (left) and streaming throughput per concurrency (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat, tput = doc["latency"], doc["throughput"]
    assert isinstance(lat, dict) and isinstance(tput, dict)
    names = ("direct", "bare_proxy", "gateway", "gateway_hints")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.2
    for i, name in enumerate(names):
        ys = [lat[f"{kind}_{name}"]["p50_ms"] for kind in ("nonstream", "ttft")]
        ax1.bar([k + i * width for k in range(2)], ys, width, label=name.replace("_", " "))
    ax1.set_xticks([k + 1.5 * width for k in range(2)], ["non-streaming", "TTFT (stream)"])
    ax1.set_ylabel("p50 latency (ms)")
    ax1.legend()
    for i, name in enumerate(names[:3]):
        ys = [tput[f"{c}_{name}"]["requests_per_s"] for c in (1, 32, 256)]
        ax2.bar([k + i * width for k in range(3)], ys, width, label=name.replace("_", " "))
    ax2.set_xticks([k + width for k in range(3)], ["1", "32", "256"])
    ax2.set_xlabel("concurrent streams")
    ax2.set_ylabel("requests/s (8-token streams)")
    ax2.legend()
    fig.suptitle("hermes gateway vs direct sim engine (same run)")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
