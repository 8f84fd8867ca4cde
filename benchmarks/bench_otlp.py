"""OTLP ingestion benchmark: spans per second learned by ``POST /v1/traces`` on one core.

Run: ``.venv/bin/python benchmarks/bench_otlp.py [--quick] [--plot-only]``. The workload is the
e2e app's trace shape (``tests/otlp/apps/openai_app.py``): a root span, 3 to 5 step spans, each
holding one chat span with the attributes ``opentelemetry-instrumentation-openai-v2`` sets, built
with the OTel SDK and encoded by the official OTLP encoder in batches of 512 spans (the
``BatchSpanProcessor`` default). Measured in this run:

- in-process, this process pinned to one CPU: the protobuf parse alone (baseline: the floor any
  receiver pays; upb parses lazily, so most of the reading is paid by whoever reads the
  fields), decode (parse + span records), decode + run assembly + paths, and the JSON
  encoding's decode;
- end to end: ``hermes serve``'s app in a subprocess pinned to one CPU (SQLite store: every path
  stored durably before the answer), a client in this process on the other CPU posting the
  bodies over 4 connections; baseline: an echo route on the same server reading the same bodies.

Target: >= 20k spans/s end to end. Writes ``benchmarks/results/otlp.json`` and ``otlp.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hermes_sdk.otlp import JSON, PROTOBUF, SpanMapping, TraceAssembler, decode  # noqa: E402
from hermes_sdk.otlp.spans import parse_protobuf  # noqa: E402
from tests.otlp.traces import Traces, otlp_json, protobuf  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "otlp.json"
PNG = RESULTS.with_suffix(".png")
TARGET_SPANS_PER_S = 20_000.0
BATCH_SPANS = 512
CLIENTS = 4

SERVER_SCRIPT = """
import sys
from aiohttp import web
from hermes_sdk.server import ServerConfig, create_app
port, store = int(sys.argv[1]), sys.argv[2]
cfg = ServerConfig(port=port, store_url=store, max_body_bytes=16 * 1024 * 1024)
app = create_app(cfg)
async def echo(request):
    body = await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")
app.router.add_post("/bench/echo", echo)
web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
"""


def chat_attrs(rng: random.Random, step: str) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):x}",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": rng.randint(50, 2000),
        "gen_ai.usage.output_tokens": rng.randint(5, 500),
        "server.address": "api.openai.com",
        "server.port": 443,
    }


def workload(n_spans: int, seed: int = 1) -> tuple[list[bytes], list[bytes], int]:
    """Protobuf and JSON bodies of whole traces, about ``n_spans`` spans in all."""
    rng = random.Random(seed)
    t = Traces("research-bot")
    spans: list[Any] = []
    while len(spans) < n_spans:
        root = t.span("research request", 0, None)
        clock = 0.0
        for k in range(rng.randint(3, 5)):
            name = ("plan", "search", "search", "search", "answer")[k]
            step = t.span(name, clock, None, root)
            t.span("chat gpt-4o-mini", clock + 0.01, clock + 0.5, step, chat_attrs(rng, name))
            clock += 0.6
            t.end(step, clock)
        t.end(root, clock)
        spans.extend(t.take())
    batches = [spans[i : i + BATCH_SPANS] for i in range(0, len(spans), BATCH_SPANS)]
    pb = [protobuf(b) for b in batches]
    js = [json.dumps(otlp_json(b)).encode() for b in batches]
    return pb, js, len(spans)


def pin(cpu: int) -> int | None:
    """Pin this process to ``cpu`` (when the OS allows); the CPU used, or None."""
    try:
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return None
    return cpu


def measure_in_process(pb: list[bytes], js: list[bytes], n: int) -> dict[str, float]:
    mapping = SpanMapping()
    out: dict[str, float] = {}

    def rate(fn: Any) -> float:
        t0 = time.perf_counter()
        fn()
        return n / (time.perf_counter() - t0)

    out["baseline: protobuf parse only"] = rate(lambda: [parse_protobuf(b) for b in pb])
    out["decode (protobuf)"] = rate(lambda: [decode(b, PROTOBUF, mapping) for b in pb])

    def assemble() -> None:
        asm = TraceAssembler(mapping)
        learned = 0
        for b in pb:
            learned += len(asm.add("default", decode(b, PROTOBUF, mapping).spans).paths)
        assert learned > 0 and asm.open_traces == 0

    out["decode + assemble (protobuf)"] = rate(assemble)
    out["decode (JSON)"] = rate(lambda: [decode(b, JSON, mapping) for b in js])
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _post_all(url: str, bodies: list[bytes]) -> float:
    queue = list(reversed(bodies))
    headers = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession() as http:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                async with http.post(url, data=body, headers=headers) as r:
                    assert r.status == 200, await r.text()
                    await r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        return time.perf_counter() - t0


def measure_http(pb: list[bytes], n: int, server_cpu: int | None) -> dict[str, float]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", SERVER_SCRIPT, str(port), f"sqlite:///{tmp}/h.db"]
        if server_cpu is not None:
            cmd = ["taskset", "-c", str(server_cpu), *cmd]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for _ in range(200):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.05)
            base = f"http://127.0.0.1:{port}"
            echo_s = asyncio.run(_post_all(f"{base}/bench/echo", pb))
            learn_s = asyncio.run(_post_all(f"{base}/v1/traces", pb))
            metrics = asyncio.run(_get(f"{base}/metrics"))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    learned = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith('hermes_otlp_runs_total{outcome="learned"}')
    )
    return {
        "baseline: echo route, same bodies": n / echo_s,
        "POST /v1/traces (protobuf, learned + stored)": n / learn_s,
        "runs_learned": learned,
    }


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return await r.text()


def plot(data: dict[str, Any], png: Path) -> None:
    from plotting import figure, grouped_bars, save

    rates = {**data["in_process"], **data["http"]}
    rates.pop("runs_learned", None)
    cats = list(rates)
    fig, (ax,) = figure(1, 1, (9, 4.2), f"OTLP ingestion on one core ({data['spans']} spans)")
    grouped_bars(
        ax,
        cats,
        {"spans/s": [rates[c] for c in cats]},
        axis_label="spans per second (higher is better)",
        targets=[(TARGET_SPANS_PER_S, "target 20k spans/s")],
        log=True,
        legend="lower right",
    )
    save(fig, png)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from plotting import add_plot_only, redraw

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20k spans instead of 200k")
    add_plot_only(ap, PNG, RESULTS)
    args = ap.parse_args()
    if args.plot_only:
        redraw(plot, RESULTS, PNG)
        return
    n_target = 20_000 if args.quick else 200_000
    pb, js, n = workload(n_target)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    client_cpu = pin(cpus[-1]) if cpus else None
    server_cpu = cpus[0] if len(cpus) > 1 else None
    in_process = measure_in_process(pb, js, n)
    http = measure_http(pb, n, server_cpu)
    data = {
        "spans": n,
        "batches": len(pb),
        "batch_spans": BATCH_SPANS,
        "clients": CLIENTS,
        "target_spans_per_s": TARGET_SPANS_PER_S,
        "in_process": in_process,
        "http": http,
        "meets_target": http["POST /v1/traces (protobuf, learned + stored)"] >= TARGET_SPANS_PER_S,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
        },
    }
    table = Table(title=f"OTLP ingestion, {n} spans in {len(pb)} requests")
    table.add_column("measurement")
    table.add_column("spans/s", justify="right")
    for name, value in {**in_process, **http}.items():
        if name != "runs_learned":
            table.add_row(name, f"{value:,.0f}")
    Console().print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    plot(data, PNG)
    print(f"wrote {RESULTS} and {PNG}")


if __name__ == "__main__":
    main()
