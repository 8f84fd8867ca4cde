"""Hosted-API benchmark: agent runs sharing one rate-limited provider, direct vs through Hermes.

Run: ``.venv/bin/python benchmarks/bench_hosted.py [--quick]`` (about 9 minutes; --quick ~4).

The provider is ``hermes sim-engine --rate-limit tpm=N,window_s=S`` in its own process: it
answers 429 with ``Retry-After``/``retry-after-ms`` when its token bucket (N per minute, enforced
over S seconds, as OpenAI may enforce a minute's limit over shorter periods) lacks a request's
prompt + output tokens, and sends ``x-ratelimit-*`` headers. The apps are a reduced light suite
(the LLM-only apps of :mod:`hermes_sdk.sim.workloads.light` with its token laws: multi-turn chat
(weight 5), mapreduce_light and got_light (weight 1 each)); runs arrive as a Poisson process
offering 90% of the provider's TPM, each stage's calls in parallel, stages in sequence. Three ways
to call the provider, each from a fresh provider process, with the same seeded runs:

(a) direct: the ``openai`` client straight at the provider with its own retries (2, honouring
    ``retry-after-ms``); a 429 it gives up on reaches the app, which waits 1 s and calls again;
(b) Hermes FCFS: ``hermes serve`` with the upstream's budget (``tpm``, ``window_s``), policy fcfs;
(c) Hermes Gittins: the same with the Gittins policy (graphs learned from the runs themselves:
    each run is opened with POST /v1/runs and ended with /end; the gateway records its calls).

Reported per way: mean and P95 run completion (arrival to last answer) over the runs arriving
after the first ``--warmup-s`` seconds, 429 responses that reached the apps (an httpx response
hook counts every one the client saw), and the provider's accepted tokens per minute -- over the
arrival window of the 90% phase, and in a saturation phase (150% offered for ``--sat-s`` s, the
window where requests always wait) as budget use = tokens/min / TPM. Writes
benchmarks/results/hosted.json and hosted.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from openai import AsyncOpenAI, RateLimitError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plotting import figure, grouped_bars, save

RESULTS = Path(__file__).parent / "results" / "hosted.json"
PLOT = RESULTS.with_suffix(".png")
MODEL = "sim"
GATEWAY_SCRIPT = """
import sys
from aiohttp import web
from hermes_sdk.server import ServerConfig, create_app
from hermes_sdk.server.upstreams import UpstreamConfig
port, url, policy, tpm, window = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
up = UpstreamConfig("hosted", url, max_inflight=4096, tpm=float(tpm), window_s=float(window))
cfg = ServerConfig(port=int(port), store_url="memory://", policy=policy, upstreams=(up,))
web.run_app(create_app(cfg), host="127.0.0.1", port=int(port), print=None, access_log=None,
            handler_cancellation=True)
"""
Stage = list[tuple[int, int]]
"""The calls of one stage: (prompt tokens, output tokens) each."""


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    app: str
    arrival_s: float
    stages: tuple[Stage, ...]

    @property
    def tokens(self) -> int:
        return sum(i + o for stage in self.stages for i, o in stage)


def _u(rng: random.Random, lo: float, hi: float) -> int:
    return int(rng.uniform(lo, hi))


def _chat(rng: random.Random) -> tuple[Stage, ...]:
    """multiturn_chat, reduced: 1-3 turns, each one call."""
    return tuple([(_u(rng, 150, 600), _u(rng, 50, 200))] for _ in range(rng.randint(1, 3)))


def _mapreduce(rng: random.Random) -> tuple[Stage, ...]:
    """mapreduce_light: map (w3-8) -> collapse (w2, p .5) -> final."""
    stages = [[(_u(rng, 250, 580), _u(rng, 57, 150)) for _ in range(rng.randint(3, 8))]]
    if rng.random() < 0.5:
        stages.append([(_u(rng, 310, 1000), _u(rng, 100, 300)) for _ in range(2)])
    stages.append([(_u(rng, 640, 1500), _u(rng, 200, 500))])
    return tuple(stages)


def _got(rng: random.Random) -> tuple[Stage, ...]:
    """got_light: generate (w2) -> score (w3-6) -> aggregate."""
    return (
        [(_u(rng, 940, 1516), _u(rng, 200, 400)) for _ in range(2)],
        [(_u(rng, 1700, 2100), _u(rng, 60, 120)) for _ in range(rng.randint(3, 6))],
        [(_u(rng, 1300, 1600), _u(rng, 200, 400))],
    )


APPS = (("chat", 5.0, _chat), ("mapreduce_light", 1.0, _mapreduce), ("got_light", 1.0, _got))


def workload(seed: int, tpm: float, load: float, duration_s: float, tag: str) -> list[Run]:
    """Poisson arrivals of the app mix offering ``load`` x ``tpm`` tokens per minute."""
    rng = random.Random(seed)
    probe = random.Random(seed + 1)
    weights = [w for _, w, _ in APPS]
    mean_tokens = float(
        np.mean(
            [
                Run("", "", 0, make(probe)).tokens
                for name, _, make in APPS
                for _ in range(int(200 * weights[[a[0] for a in APPS].index(name)]))
            ]
        )
    )
    rate = load * tpm / 60.0 / mean_tokens
    runs, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration_s:
            return runs
        name, _, make = rng.choices(APPS, weights=weights)[0]
        runs.append(Run(f"{tag}-{len(runs)}", name, t, make(rng)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _process(args: list[str], port: int) -> Iterator[None]:
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
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Driver:
    """Runs the workload against one base URL and records what the apps saw."""

    def __init__(self, base_url: str, control: str | None) -> None:
        self.seen_429 = 0
        self.app_errors = 0

        async def hook(resp: httpx.Response) -> None:
            if resp.status_code == 429:
                self.seen_429 += 1

        self.http = httpx.AsyncClient(
            event_hooks={"response": [hook]},
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=512),
            timeout=600.0,
        )
        self.client = AsyncOpenAI(base_url=base_url, api_key="app-key", http_client=self.http)
        self.control = control

    async def call(self, run: Run, prompt_tokens: int, output_tokens: int, node: str) -> None:
        prompt = " ".join(["abc"] * prompt_tokens)  # 1 sim token, ~4 chars each
        headers = {"X-Hermes-App": run.app, "X-Hermes-Run": run.run_id, "X-Hermes-Unit": node}
        while True:
            try:
                await self.client.completions.create(
                    model=MODEL, prompt=prompt, max_tokens=output_tokens, extra_headers=headers
                )
                return
            except RateLimitError:  # the client's own retries gave up: the app sees it
                self.app_errors += 1
                await asyncio.sleep(1.0)

    async def run(self, run: Run, start: float) -> tuple[str, float, float]:
        await asyncio.sleep(max(0.0, start + run.arrival_s - time.monotonic()))
        t0 = time.monotonic()
        if self.control:
            await self.http.post(
                f"{self.control}/v1/runs", json={"app": run.app, "run_id": run.run_id}
            )
        for i, stage in enumerate(run.stages):
            node = f"{run.app}-s{i}"
            await asyncio.gather(*(self.call(run, p, o, node) for p, o in stage))
        if self.control:
            await self.http.post(f"{self.control}/v1/runs/{run.run_id}/end", json={})
        return run.app, run.arrival_s, time.monotonic() - t0

    async def phase(self, runs: list[Run]) -> tuple[list[tuple[str, float, float]], float]:
        start = time.monotonic() + 0.5
        done = await asyncio.gather(*(self.run(r, start) for r in runs))
        return list(done), start


async def _provider_stats(url: str) -> dict[str, float]:
    async with httpx.AsyncClient() as c:
        stats: dict[str, float] = (await c.get(url + "/debug/ratelimit")).json()
    return stats


async def _tokens_between(url: str, start: float, t0: float, t1: float) -> float:
    """Provider tokens accepted between ``start + t0`` and ``start + t1`` (sampled)."""
    await asyncio.sleep(max(0.0, start + t0 - time.monotonic()))
    a = (await _provider_stats(url))["tokens"]
    await asyncio.sleep(max(0.0, start + t1 - time.monotonic()))
    b = (await _provider_stats(url))["tokens"]
    return b - a


async def measure(way: str, args: argparse.Namespace, main: list[Run], sat: list[Run]) -> dict:
    eport, gport = _free_port(), _free_port()
    engine = [
        sys.executable, "-m", "hermes_sdk", "sim-engine", "--port", str(eport),
        "--model", MODEL, "--step-s", str(args.step_s), "--step-per-request-s", "0",
        "--prefill-per-token-s", "0", "--max-batch", "4096",
        "--rate-limit", f"tpm={args.tpm},window_s={args.window_s}",
    ]  # fmt: skip
    provider = f"http://127.0.0.1:{eport}"
    with _process(engine, eport):
        if way == "direct":
            return await _drive(way, args, provider + "/v1", None, provider, main, sat)
        policy = "fcfs" if way == "hermes_fcfs" else "gittins"
        gw = [sys.executable, "-c", GATEWAY_SCRIPT, str(gport), provider + "/v1", policy]
        with _process([*gw, str(args.tpm), str(args.window_s)], gport):
            base = f"http://127.0.0.1:{gport}"
            return await _drive(way, args, base + "/v1", base, provider, main, sat)


async def _drive(
    way: str,
    args: argparse.Namespace,
    base_url: str,
    control: str | None,
    provider: str,
    main: list[Run],
    sat: list[Run],
) -> dict:
    driver = Driver(base_url, control)
    window = (args.warmup_s, args.duration_s)
    sampler = None
    t_start = time.monotonic() + 0.5
    sampler = asyncio.create_task(_tokens_between(provider, t_start, *window))
    done, _ = await driver.phase(main)
    used = await sampler
    kept = [(app, c) for app, arrival, c in done if arrival >= args.warmup_s]
    completion = np.array([c for _, c in kept])
    per_app = {
        name: float(np.mean([c for app, c in kept if app == name]))
        for name, _, _ in APPS
        if any(app == name for app, _ in kept)
    }
    main_429 = driver.seen_429
    sat_window = (args.sat_s * 0.5, args.sat_s)
    t_sat = time.monotonic() + 0.5
    sampler = asyncio.create_task(_tokens_between(provider, t_sat, *sat_window))
    await driver.phase(sat)
    sat_used = await sampler
    stats = await _provider_stats(provider)
    await driver.http.aclose()
    tpm_main = used / (window[1] - window[0]) * 60.0
    tpm_sat = sat_used / (sat_window[1] - sat_window[0]) * 60.0
    return {
        "way": way,
        "runs": len(kept),
        "mean_completion_s": float(completion.mean()),
        "p95_completion_s": float(np.quantile(completion, 0.95)),
        "mean_completion_by_app_s": per_app,
        "429s_reaching_apps": main_429,
        "429s_reaching_apps_saturation": driver.seen_429 - main_429,
        "app_level_errors": driver.app_errors,
        "tokens_per_min_90pct_phase": tpm_main,
        "tokens_per_min_saturation": tpm_sat,
        "budget_use_saturation": tpm_sat / args.tpm,
        "provider_429s_total": stats["limited"],
    }


def _plot(doc: dict, png: Path = PLOT) -> None:
    ways = [r["way"] for r in doc["results"]]
    fig, axes = figure(1, 2, (11, 3.8), f"Hosted API at 90% of {doc['tpm']:,} TPM")
    grouped_bars(
        axes[0],
        ways,
        {
            "mean": [r["mean_completion_s"] for r in doc["results"]],
            "p95": [r["p95_completion_s"] for r in doc["results"]],
        },
        axis_label="run completion (s)",
        title="completion (lower is better)",
    )
    grouped_bars(
        axes[1],
        ways,
        {
            "429s to apps": [float(r["429s_reaching_apps"]) for r in doc["results"]],
            "budget use % (saturated)": [100 * r["budget_use_saturation"] for r in doc["results"]],
        },
        axis_label="count / %",
        title="429s reaching apps, budget use",
    )
    save(fig, png)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter phases (~4 min)")
    p.add_argument("--tpm", type=int, default=240_000)
    p.add_argument("--window-s", type=float, default=1.0)
    p.add_argument("--load", type=float, default=0.9)
    p.add_argument("--duration-s", type=float, default=100.0)
    p.add_argument("--warmup-s", type=float, default=25.0)
    p.add_argument("--sat-s", type=float, default=30.0)
    p.add_argument("--step-s", type=float, default=0.005, help="provider seconds per token")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON path (PNG beside it)")
    args = p.parse_args()
    if args.quick:
        args.duration_s, args.warmup_s, args.sat_s = 50.0, 15.0, 15.0
    main_runs = workload(args.seed, args.tpm, args.load, args.duration_s, "m")
    sat_runs = workload(args.seed + 7, args.tpm, 1.5, args.sat_s, "s")
    results = []
    for way in ("direct", "hermes_fcfs", "hermes_gittins"):
        res = asyncio.run(measure(way, args, main_runs, sat_runs))
        print(json.dumps(res), flush=True)
        results.append(res)
    by = {r["way"]: r for r in results}
    c, a, b = by["hermes_gittins"], by["direct"], by["hermes_fcfs"]
    doc = {
        "command": "benchmarks/bench_hosted.py " + " ".join(sys.argv[1:]),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "tpm": args.tpm,
        "window_s": args.window_s,
        "load": args.load,
        "duration_s": args.duration_s,
        "warmup_s": args.warmup_s,
        "offered_runs": len(main_runs),
        "results": results,
        "gittins_vs_direct_mean": c["mean_completion_s"] / a["mean_completion_s"],
        "gittins_vs_fcfs_mean": c["mean_completion_s"] / b["mean_completion_s"],
        "targets": {
            "gittins_vs_direct_mean<=0.6": c["mean_completion_s"] <= 0.6 * a["mean_completion_s"],
            "gittins_vs_fcfs_mean<=0.8": c["mean_completion_s"] <= 0.8 * b["mean_completion_s"],
            "no_429s_reach_apps_b_c": b["429s_reaching_apps"] + c["429s_reaching_apps"] == 0,
            "budget_use>=0.95_b_c": min(b["budget_use_saturation"], c["budget_use_saturation"])
            >= 0.95,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    _plot(doc, args.out.with_suffix(".png"))
    print(json.dumps({k: doc[k] for k in ("gittins_vs_direct_mean", "gittins_vs_fcfs_mean")}))
    print(json.dumps(doc["targets"]))


if __name__ == "__main__":
    main()
