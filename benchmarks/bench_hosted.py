"""Hosted-API benchmark: agent runs sharing one rate-limited provider, direct vs through Hermes.

Run one seed (about 10 minutes; it also rewrites the summary over every seed file of the same
configuration): ``.venv/bin/python benchmarks/bench_hosted.py --seed N``; the committed result is
seeds 1-4. ``--summarize`` only rebuilds hosted.json/png from the seed files. ``--ways`` measures
other sets of ways (e.g. ``hermes_fcfs,hermes_gittins,hermes_gittins_run,hermes_oracle_run``: the
gap analysis against a clairvoyant order, :mod:`hosted_oracle`) into hosted_oracle.seedN.json
(committed: full runs of ``hermes_fcfs,hermes_gittins,hermes_oracle_run`` on seeds 1-5, summed up
by ``hosted_oracle_summary.py``; ``hosted_orders.py`` replays the same runs offline).

The provider is ``hermes sim-engine --rate-limit tpm=N,window_s=S`` in its own process: it
answers 429 with ``Retry-After``/``retry-after-ms`` when its token bucket (N per minute, enforced
over S seconds, as OpenAI may enforce a minute's limit over shorter periods) lacks a request's
prompt + output tokens, and sends ``x-ratelimit-*`` headers. The apps are the light suite's ten
apps at their weights (:mod:`hosted_workload`: multi-call runs, tool steps slept); runs arrive
as a Poisson process offering ``--load`` (90%) of the provider's TPM (300k), times scaled so the
drawn runs offer exactly that; the summary also gives each seed's floor, the mean time of the same
runs with no wait at all (``Run.standalone_s``). Four ways to call it, each
from a fresh provider process, with the same seeded runs:

(a) direct: the ``openai`` client straight at the provider with its default retries (2 retries,
    waiting ``retry-after-ms``/``Retry-After`` when given, else 0.5 s x 2^n with jitter: openai
    ``_base_client._calculate_retry_timeout``). A 429 it gives up on raises RateLimitError: the
    app breaks (its parallel calls are cancelled), the run counts as FAILED, not as completed;
(a') direct_retry: the same client with ``max_retries=100`` and nothing else changed (its own
    backoff: retries until success in practice), what a user who does not want broken apps
    would run: (a)'s ratios are taken over the runs (a) completed, which favours (a) (its
    broken runs free the budget for the rest);
(b) Hermes FCFS: ``hermes serve`` with the upstream's budget (``tpm``, ``window_s``), fcfs;
(c) Hermes Gittins: the same with the Gittins policy, on graphs learned from the runs
    themselves: each run is opened with POST /v1/runs and ended with /end carrying its path as
    the SDK sends it (tool stages and model calls; a call's service is its time answered minus
    the gateway's X-Hermes-Queue-Wait). The first ``--warmup-s`` seconds are not measured.

Per way: runs completed and failed (arriving after ``--warmup-s``), mean and P95 completion of
the completed runs, and the same on the runs completed by every way; each ratio of Gittins to a
baseline is taken on the runs both completed (beside the floor of those runs); 429s the apps'
client saw (each one, retried or not; with (a') none breaks an app unless its 100 retries are
spent), tokens per minute the provider accepted, and budget use: the provider's accepted
tokens/min over the last two thirds of a saturation phase (``--sat-load`` 200% offered for
``--sat-s`` s; a run's tokens are spread over its stages, so demand ramps up) over its TPM.
Over seeds: each seed's paired ratio, their mean and 95% t interval.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
from openai import AsyncOpenAI
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hosted_oracle import dump_runs
from hosted_workload import Run, workload
from plotting import figure, grouped_bars, save

RESULTS = Path(__file__).parent / "results"
MODEL = "sim"
WAYS = ("direct", "direct_retry", "hermes_fcfs", "hermes_gittins")
BASELINES = WAYS[:-1]
"""What Gittins is compared with (each on the runs both completed)."""
RETRIES = {"direct": 2, "direct_retry": 100}
"""The ``openai`` client's ``max_retries`` per direct way (2 is its default; with 10 the
client still gave up on 4 runs of seed 1: retrying at ``retry-after-ms`` under saturation, a
call can lose the race for the refilled tokens ten times running)."""
TOOL_KINDS = {"search": "retriever", "container": "container", "dnn": "dnn"}
"""The unit kind the SDK records for a tool stage on each of the suite's tool backends."""
CONFIG_KEYS = ("tpm", "window_s", "load", "duration_s", "warmup_s", "sat_s", "sat_load", "step_s")
GATEWAY_SCRIPT = """
import sys
from pathlib import Path
from aiohttp import web
from hermes_sdk.server import ServerConfig, create_app
from hermes_sdk.server.gateway_budget import BUDGETS
from hermes_sdk.server.scheduler import SCHEDULER
from hermes_sdk.server.upstreams import UpstreamConfig
port, url, policy, tpm, window, rank, oracle, bench_dir = sys.argv[1:9]
up = UpstreamConfig("hosted", url, max_inflight=4096, tpm=float(tpm), window_s=float(window),
                    budget_rank=rank)
cfg = ServerConfig(port=int(port), store_url="memory://", policy=policy, upstreams=(up,))
app = create_app(cfg)
if oracle != "-":  # the bench-only clairvoyant order, through the same gateway path
    sys.path.insert(0, bench_dir)
    from hosted_oracle import OracleRanker
    ranker = OracleRanker.load(Path(oracle), float(tpm))
    app[BUDGETS].rankers["hosted"] = ranker
    app[SCHEDULER].queue("hosted").budget_rank = ranker.rank
web.run_app(app, host="127.0.0.1", port=int(port), print=None, access_log=None,
            handler_cancellation=True)
"""
EXTRA_WAYS = ("hermes_gittins_run", "hermes_oracle_run")
"""Ways measured only on request (``--ways``, written to ``hosted_oracle.seedN.json``): Gittins
with ``budget_rank=run`` and the bench-only oracle order (true remaining tokens of the run,
:mod:`hosted_oracle`), for the gap analysis in docs/decisions.md."""
GATEWAY_WAYS = {  # way -> (policy, budget_rank, oracle order)
    "hermes_fcfs": ("fcfs", "stage", False),
    "hermes_gittins": ("gittins", "stage", False),
    "hermes_gittins_run": ("gittins", "run", False),
    "hermes_oracle_run": ("gittins", "stage", True),
}
Outcome = tuple[str, str, float, float | None, float, str | None]
"""(run_id, app, arrival_s, completion_s or None if it failed, elapsed_s, error class)."""


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
    """Runs the workload against one base URL as the apps would, recording what they saw."""

    def __init__(self, base_url: str, control: str | None, max_retries: int = 2) -> None:
        self.seen_429 = 0

        async def hook(resp: httpx.Response) -> None:
            if resp.status_code == 429:
                self.seen_429 += 1

        self.http = httpx.AsyncClient(
            event_hooks={"response": [hook]},
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=512),
            timeout=600.0,  # the openai client's default
        )
        # the client's own backoff; 2 retries is its default, as an app would leave it
        self.client = AsyncOpenAI(
            base_url=base_url, api_key="app-key", http_client=self.http, max_retries=max_retries
        )
        self.control = control

    async def call(
        self, run: Run, node: str, prompt_tokens: int, output_tokens: int
    ) -> dict[str, Any]:
        """One model call; the call as the SDK records it in the run's path (service = time
        answered minus the gateway's ``X-Hermes-Queue-Wait``; tokens from ``usage``)."""
        prompt = " ".join(["abc"] * prompt_tokens)  # 1 sim token, 4 chars each
        headers = {"X-Hermes-App": run.app, "X-Hermes-Run": run.run_id, "X-Hermes-Unit": node}
        t0 = time.monotonic()
        raw = await self.client.completions.with_raw_response.create(
            model=MODEL, prompt=prompt, max_tokens=output_tokens, extra_headers=headers
        )
        elapsed = time.monotonic() - t0
        usage = raw.parse().usage
        queued = float(raw.headers.get("x-hermes-queue-wait", 0.0))
        return {
            "service_s": max(0.0, elapsed - queued),
            "input_tokens": None if usage is None else usage.prompt_tokens,
            "output_tokens": None if usage is None else usage.completion_tokens,
        }

    async def run(self, run: Run, start: float) -> Outcome:
        await asyncio.sleep(max(0.0, start + run.arrival_s - time.monotonic()))
        t0 = time.monotonic()
        if self.control:
            body = {"app": run.app, "run_id": run.run_id}
            await self.http.post(f"{self.control}/v1/runs", json=body)
        error = None
        path: list[dict[str, Any]] = []  # what the SDK would send at the run's end
        try:
            for stage in run.stages:
                if not stage.calls:
                    await asyncio.sleep(stage.tool_s)
                    kind = TOOL_KINDS.get(stage.backend, "tool")
                    path.append({"node": stage.node, "kind": kind, "backend": stage.backend})
                    path[-1]["calls"] = [{"service_s": stage.tool_s}]
                    continue
                async with asyncio.TaskGroup() as tg:  # a failed call cancels its siblings
                    tasks = [
                        tg.create_task(self.call(run, stage.node, p, o)) for p, o in stage.calls
                    ]
                llm = {"node": stage.node, "kind": "llm", "backend": "hosted"}
                path.append({**llm, "calls": [t.result() for t in tasks]})
        except* openai.APIError as group:  # the client gave up (retries spent): the app broke
            error = type(group.exceptions[0]).__name__
        elapsed = time.monotonic() - t0
        if self.control:
            end: dict[str, Any] = {"failed": error is not None}
            if path:
                end["path"] = {"app": run.app, "stages": path}
            r = await self.http.post(f"{self.control}/v1/runs/{run.run_id}/end", json=end)
            r.raise_for_status()
        done = None if error else elapsed
        return run.run_id, run.app, run.arrival_s, done, elapsed, error

    async def phase(self, runs: list[Run], start: float) -> list[Outcome]:
        return list(await asyncio.gather(*(self.run(r, start) for r in runs)))


async def _provider_tokens(url: str) -> float:
    async with httpx.AsyncClient() as c:
        tokens: float = (await c.get(url + "/debug/ratelimit")).json()["tokens"]
    return tokens


async def _tokens_between(url: str, start: float, t0: float, t1: float) -> float:
    """Provider tokens accepted between ``start + t0`` and ``start + t1`` (monotonic seconds)."""
    await asyncio.sleep(max(0.0, start + t0 - time.monotonic()))
    a = await _provider_tokens(url)
    await asyncio.sleep(max(0.0, start + t1 - time.monotonic()))
    return await _provider_tokens(url) - a


async def _drive(
    args: argparse.Namespace,
    base_url: str,
    control: str | None,
    provider: str,
    runs: list[Run],
    max_retries: int = 2,
) -> dict[str, Any]:
    driver = Driver(base_url, control, max_retries)
    main, sat = (r for r in runs if r.run_id[0] == "m"), (r for r in runs if r.run_id[0] == "s")
    start = time.monotonic() + 0.5
    window = (args.warmup_s, args.duration_s)
    sampler = asyncio.create_task(_tokens_between(provider, start, *window))
    done = await driver.phase(list(main), start)
    used = await sampler
    main_429 = driver.seen_429
    start = time.monotonic() + 0.5
    sat_window = (args.sat_s / 3.0, args.sat_s)
    sampler = asyncio.create_task(_tokens_between(provider, start, *sat_window))
    sat_done = await driver.phase(list(sat), start)
    sat_used = await sampler
    await driver.http.aclose()
    tpm_sat = sat_used / (sat_window[1] - sat_window[0]) * 60.0
    return {
        "runs": [o for o in done if o[2] >= args.warmup_s],
        "429s_seen_by_apps": main_429,
        "429s_seen_by_apps_saturation": driver.seen_429 - main_429,
        "failed_runs_saturation": sum(o[3] is None for o in sat_done),
        "tokens_per_min_main": used / (window[1] - window[0]) * 60.0,
        "tokens_per_min_saturation": tpm_sat,
        "budget_use_saturation": tpm_sat / args.tpm,
    }


async def measure(way: str, args: argparse.Namespace, runs: list[Run]) -> dict[str, Any]:
    """One way over the seed's runs, on a fresh provider (and gateway)."""
    eport, gport = _free_port(), _free_port()
    engine = [
        sys.executable, "-m", "hermes_sdk", "sim-engine", "--port", str(eport),
        "--model", MODEL, "--step-s", str(args.step_s), "--step-per-request-s", "0",
        "--prefill-per-token-s", "0", "--max-batch", "4096",
        "--rate-limit", f"tpm={args.tpm},window_s={args.window_s}",
    ]  # fmt: skip
    provider = f"http://127.0.0.1:{eport}"
    with _process(engine, eport):
        if way in RETRIES:
            return await _drive(args, provider + "/v1", None, provider, runs, RETRIES[way])
        policy, rank, oracle = GATEWAY_WAYS[way]
        oracle_file = "-"
        if oracle:
            oracle_file = str(
                Path(tempfile.gettempdir()) / f"hosted_oracle_runs.{os.getpid()}.json"
            )
            dump_runs(runs, Path(oracle_file))
        gw = [sys.executable, "-c", GATEWAY_SCRIPT, str(gport), provider + "/v1", policy]
        gw += [str(args.tpm), str(args.window_s), rank, oracle_file, str(Path(__file__).parent)]
        with _process(gw, gport):
            base = f"http://127.0.0.1:{gport}"
            return await _drive(args, base + "/v1", base, provider, runs)


def run_seed(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every way on seed ``args.seed``'s runs."""
    runs = workload(args.seed, args.tpm, args.load, args.duration_s, "m")
    runs += workload(args.seed + 1000, args.tpm, args.sat_load, args.sat_s, "s")
    doc: dict[str, Any] = {k: getattr(args, k) for k in CONFIG_KEYS}
    doc |= {"seed": args.seed, "offered_runs": sum(r.run_id[0] == "m" for r in runs)}
    doc |= {"max_retries": RETRIES, "ways": {}}
    for way in args.ways:
        load_before = os.getloadavg()[0]
        res = asyncio.run(measure(way, args, runs))
        res["load_average_1m"] = [load_before, os.getloadavg()[0]]  # before, after (2 cores)
        doc["ways"][way] = res
        brief = {k: v for k, v in res.items() if k != "runs"}
        failed = sum(o[3] is None for o in res["runs"])
        print(json.dumps({"seed": args.seed, "way": way, "failed": failed, **brief}), flush=True)
    return doc


def _mean_ci(values: list[float]) -> dict[str, float | int | None]:
    """Mean of per-seed values with its 95% t interval (None with one seed)."""
    arr = np.asarray(values, dtype=float)
    n, mean = len(arr), float(arr.mean())
    if n < 2:
        return {"mean": mean, "lo": None, "hi": None, "n": n}
    half = float(stats.t.ppf(0.975, n - 1) * arr.std(ddof=1) / np.sqrt(n))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}


def _way_view(res: dict[str, Any], common: set[str]) -> dict[str, Any]:
    runs = res["runs"]
    done = np.array([o[3] for o in runs if o[3] is not None])
    paired = np.array([o[3] for o in runs if o[0] in common])
    apps = sorted({o[1] for o in runs})
    return {
        "measured_runs": len(runs),
        "completed_runs": len(done),
        "failed_runs": len(runs) - len(done),
        "failures": sorted({o[5] for o in runs if o[5]}),
        "mean_completion_s": float(done.mean()) if len(done) else None,
        "p95_completion_s": float(np.quantile(done, 0.95)) if len(done) else None,
        "paired_mean_completion_s": float(paired.mean()),
        "paired_p95_completion_s": float(np.quantile(paired, 0.95)),
        "paired_mean_by_app_s": {
            a: float(np.mean([o[3] for o in runs if o[1] == a and o[0] in common]))
            for a in apps
            if any(o[1] == a and o[0] in common for o in runs)
        },
        **{k: v for k, v in res.items() if k != "runs"},
    }


def _beside_floor(
    name: str, target: float, ratio: dict[str, Any], per_seed: list[dict[str, Any]]
) -> dict[str, Any]:
    """A target beside its floor and the measured ratio, over seeds and per seed."""
    return {
        "target": target,
        "floor": ratio[f"floor_vs_{name}_mean"],
        "measured": ratio[f"gittins_vs_{name}_mean"],
        "per_seed": {
            str(s["seed"]): {
                "floor": s[f"floor_vs_{name}_mean"],
                "measured": s[f"gittins_vs_{name}_mean"],
                "target_below_floor": target < s[f"floor_vs_{name}_mean"],
            }
            for s in per_seed
        },
    }


def summarize(args: argparse.Namespace) -> dict[str, Any]:
    """hosted.json from every seed file of this configuration."""
    config = {k: getattr(args, k) for k in CONFIG_KEYS}
    seeds = []
    for path in sorted(args.out_dir.glob("hosted.seed*.json")):
        doc = json.loads(path.read_text())
        if {k: doc[k] for k in CONFIG_KEYS} == config and set(doc["ways"]) == set(WAYS):
            seeds.append(doc)
        else:
            print(f"{path.name}: another configuration or other ways, left out", file=sys.stderr)
    per_seed = []
    for doc in seeds:
        ways = doc["ways"]
        done = {w: {o[0]: o[3] for o in ways[w]["runs"] if o[3] is not None} for w in WAYS}
        common = set.intersection(*(set(d) for d in done.values()))
        view = {w: _way_view(ways[w], common) for w in WAYS}
        drawn = workload(doc["seed"], args.tpm, args.load, args.duration_s, "m")
        alone = {r.run_id: r.standalone_s(args.step_s) for r in drawn}
        row: dict[str, Any] = {
            "seed": doc["seed"],
            "offered_runs": doc["offered_runs"],
            "paired_runs": len(common),
            "paired_standalone_mean_s": float(np.mean([alone[r] for r in common])),
            "max_retries": doc.get("max_retries"),
        }
        gittins = done["hermes_gittins"]
        for base in BASELINES:  # Gittins vs each baseline on the runs both completed
            both = sorted(set(gittins) & set(done[base]))
            name = base.removeprefix("hermes_")
            c = np.array([gittins[r] for r in both])
            x = np.array([done[base][r] for r in both])
            floor = float(np.mean([alone[r] for r in both]))
            row[f"runs_vs_{name}"] = len(both)
            row[f"floor_vs_{name}_mean"] = floor / float(x.mean())
            row[f"gittins_vs_{name}_mean"] = float(c.mean() / x.mean())
            row[f"gittins_vs_{name}_p95"] = float(np.quantile(c, 0.95) / np.quantile(x, 0.95))
            # the wait above the floor (no wait at all) Gittins keeps of the baseline's
            row[f"gittins_wait_vs_{name}_wait_mean"] = (c.mean() - floor) / (x.mean() - floor)
        per_seed.append({**row, "ways": view})
    keys = [k for k in per_seed[0] if k.endswith(("_mean", "_p95"))] if per_seed else []
    ratio = {k: _mean_ci([s[k] for s in per_seed if k in s]) for k in keys}
    hermes = [s["ways"][w] for s in per_seed for w in WAYS[2:]]
    direct = [s["ways"]["direct"] for s in per_seed]
    retry = [s["ways"]["direct_retry"] for s in per_seed]
    return {
        "commands": [f"benchmarks/bench_hosted.py --seed {s['seed']}" for s in per_seed],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        **config,
        "seeds": [s["seed"] for s in per_seed],
        "ratios": ratio,
        "direct_failed_runs": sum(v["failed_runs"] for v in direct),
        "direct_measured_runs": sum(v["measured_runs"] for v in direct),
        "direct_retry_failed_runs": sum(v["failed_runs"] for v in retry),
        "direct_retry_measured_runs": sum(v["measured_runs"] for v in retry),
        "per_seed": per_seed,
        # each target beside the same runs' floor (no wait at all): no order can go below it
        "targets_beside_floor": {
            f"gittins_vs_{name}_mean": _beside_floor(name, target, ratio, per_seed)
            for name, target in (("direct", 0.6), ("direct_retry", 0.6), ("fcfs", 0.8))
        },
        "targets": {
            "gittins_vs_direct_mean<=0.6": ratio["gittins_vs_direct_mean"]["mean"] <= 0.6,
            "gittins_vs_direct_retry_mean<=0.6": ratio["gittins_vs_direct_retry_mean"]["mean"]
            <= 0.6,
            "gittins_vs_fcfs_mean<=0.8": ratio["gittins_vs_fcfs_mean"]["mean"] <= 0.8,
            "no_429s_reach_apps_b_c": sum(v["429s_seen_by_apps"] for v in hermes) == 0
            and sum(v["failed_runs"] for v in hermes) == 0,
            "budget_use>=0.95_b_c": min(v["budget_use_saturation"] for v in hermes) >= 0.95,
        },
    }


def compare(doc: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Each way's mean completion over the runs every way completed, its ratio to FCFS's (when
    measured) and the same runs' floor (no wait at all)."""
    ways = doc["ways"]
    done = {w: {o[0]: o[3] for o in ways[w]["runs"] if o[3] is not None} for w in ways}
    common = sorted(set.intersection(*(set(d) for d in done.values())))
    drawn = workload(doc["seed"], args.tpm, args.load, args.duration_s, "m")
    alone = {r.run_id: r.standalone_s(args.step_s) for r in drawn}
    mean = {w: float(np.mean([done[w][r] for r in common])) for w in ways}
    out: dict[str, Any] = {
        "paired_runs": len(common),
        "floor_mean_s": float(np.mean([alone[r] for r in common])),
        "mean_completion_s": mean,
        "429s_seen_by_apps": {w: ways[w]["429s_seen_by_apps"] for w in ways},
        "budget_use_saturation": {w: ways[w]["budget_use_saturation"] for w in ways},
    }
    if "hermes_fcfs" in mean:
        fcfs = mean["hermes_fcfs"]
        out["vs_fcfs_mean"] = {w: m / fcfs for w, m in mean.items()}
        out["floor_vs_fcfs_mean"] = out["floor_mean_s"] / fcfs
    return out


def _plot(doc: dict[str, Any], png: Path) -> None:
    seeds = doc["per_seed"]
    ways = list(WAYS)

    def avg(key: str, way: str) -> float:
        return float(np.mean([s["ways"][way][key] for s in seeds]))

    title = f"Hosted API at {doc['load']:.0%} of {doc['tpm']:,} TPM, seeds {doc['seeds']}"
    fig, axes = figure(1, 2, (11, 3.8), title)
    grouped_bars(
        axes[0],
        ways,
        {
            "mean": [avg("paired_mean_completion_s", w) for w in ways],
            "p95": [avg("paired_p95_completion_s", w) for w in ways],
        },
        axis_label="run completion (s), runs all ways completed",
        title="completion (lower is better)",
    )
    grouped_bars(
        axes[1],
        ways,
        {
            "failed runs %": [
                100 * avg("failed_runs", w) / max(1.0, avg("measured_runs", w)) for w in ways
            ],
            "budget use % (saturated)": [100 * avg("budget_use_saturation", w) for w in ways],
        },
        axis_label="%",
        title="runs failed by 429s, budget use",
    )
    save(fig, png)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, help="measure this seed, then summarize")
    p.add_argument("--summarize", action="store_true", help="only rebuild hosted.json/png")
    p.add_argument("--quick", action="store_true", help="shorter phases (~6 min a seed)")
    p.add_argument("--tpm", type=int, default=300_000)
    p.add_argument("--window-s", type=float, default=1.0)
    p.add_argument("--load", type=float, default=0.9)
    p.add_argument("--duration-s", type=float, default=120.0)
    p.add_argument("--warmup-s", type=float, default=30.0)
    p.add_argument("--sat-s", type=float, default=30.0, help="saturation phase seconds")
    p.add_argument("--sat-load", type=float, default=2.0, help="offered load when saturated")
    p.add_argument("--step-s", type=float, default=0.005, help="provider seconds per token")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="for seed files and summary")
    p.add_argument(
        "--ways",
        default=",".join(WAYS),
        help=f"comma-separated ways (default: the summary's {','.join(WAYS)}; also "
        f"{','.join(EXTRA_WAYS)}); other sets go to hosted_oracle.seedN.json, not the summary",
    )
    args = p.parse_args()
    args.ways = tuple(args.ways.split(","))
    unknown = set(args.ways) - set(WAYS) - set(EXTRA_WAYS)
    if unknown:
        p.error(f"unknown ways {sorted(unknown)}")
    if args.quick:
        args.duration_s, args.warmup_s, args.sat_s = 60.0, 20.0, 21.0
    if args.seed is None and not args.summarize:
        p.error("give --seed N (or --summarize)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.seed is not None:
        doc = run_seed(args)
        if args.ways != WAYS:  # a gap analysis: its own file, with its paired ratios
            doc["quick"] = args.quick
            doc["analysis"] = compare(doc, args)
            out = args.out_dir / f"hosted_oracle.seed{args.seed}.json"
            out.write_text(json.dumps(doc) + "\n")
            print(json.dumps(doc["analysis"], indent=1))
            return
        (args.out_dir / f"hosted.seed{args.seed}.json").write_text(json.dumps(doc) + "\n")
    summary = summarize(args)
    (args.out_dir / "hosted.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot(summary, args.out_dir / "hosted.png")
    print(json.dumps(summary["ratios"]))
    print(json.dumps(summary["targets"]))


if __name__ == "__main__":
    main()
