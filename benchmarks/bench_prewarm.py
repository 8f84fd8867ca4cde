"""Prewarm benchmark: how much cold-start wait each warm policy hides, and at what idle cost.

Run: ``.venv/bin/python benchmarks/bench_prewarm.py [--quick]``. Apps come from the paper suite
(``hermes_sdk.sim.workloads.suites.paper_suite``: its app mix, bursty trace arrivals and its
cold-start backends ``container`` (2 s start-up) and ``dnn`` (5 s)), sampled as standalone runs
and replayed over the cold-start backends by ``hermes_sdk.prewarm.replay`` (no LLM queueing: the
only delay studied is the cold start). Same runs, same arrivals for every policy:

- ``none``: cold on demand, released as soon as idle (keep-alive 0): the cold-wait reference;
- ``always-warm``: warm from t=0, never released: the idle-seconds reference;
- ``fixed keep-alive``: cold on demand, the suite backends' own fixed keep-alive (60 s / 120 s);
- ``histogram keep-alive``: cold on demand, hybrid-histogram keep-alive (p99 of idle gaps);
- ``hermes``: prewarm when P(need within C) >= c_idle / (c_idle + c_delay) from the learned
  PDGraphs, histogram keep-alive over the gaps the forecast does not cover.

Reports mean/P95 app completion time, ``cold_wait_hidden`` = 1 - cold wait / cold wait of none,
and ``idle_seconds_vs_always_warm``. Target: hermes hides >= 90% of the cold-start wait at <= 50%
of always-warm's idle seconds. Writes ``benchmarks/results/prewarm.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
from rich.console import Console
from rich.table import Table

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import RunPath
from hermes_sdk.prewarm.keepalive import KeepAliveConfig
from hermes_sdk.prewarm.planner import PrewarmConfig, PrewarmPlanner
from hermes_sdk.prewarm.replay import ReplayResult, replay
from hermes_sdk.sim.workloads.paths import sample_path
from hermes_sdk.sim.workloads.suites import paper_suite

RESULTS = Path(__file__).parent / "results" / "prewarm.json"
HIDDEN_TARGET = 0.90
IDLE_TARGET = 0.50
C_IDLE, C_DELAY = 1.0, 20.0


def arrivals(arrival: dict[str, Any], n: int, rng: np.random.Generator) -> np.ndarray:
    """Arrival times of ``n`` apps for the suite's arrival process (trace or Poisson)."""
    rate = float(arrival["rate"])
    if arrival.get("process") != "trace":
        return np.cumsum(rng.exponential(1.0 / rate, size=n))
    bucket_s, buckets = float(arrival["bucket_s"]), [float(b) for b in arrival["buckets"]]
    out: list[float] = []
    t = 0.0
    while len(out) < n:
        k = int(t // bucket_s)
        lam = rate * buckets[k % len(buckets)]
        t_next = t + float(rng.exponential(1.0 / lam))
        edge = (k + 1) * bucket_s
        if t_next >= edge:
            t = edge  # memoryless: restart the draw at the bucket edge with the new rate
            continue
        t = t_next
        out.append(t)
    return np.asarray(out)


def workload_runs(n_apps: int, seed: int) -> tuple[list[tuple[float, RunPath]], dict[str, float]]:
    """Runs of the paper suite and its cold-start backends' start-up seconds."""
    wl = paper_suite(0.85, seed, n_apps=max(n_apps, 2), warmup_apps=1)
    rng = np.random.default_rng(seed)
    apps = cast(list[dict[str, Any]], wl["apps"])
    names = [str(a["name"]) for a in apps]
    weights = np.asarray([float(a.get("weight", 1.0)) for a in apps])
    picks = rng.choice(len(names), size=n_apps, p=weights / weights.sum())
    times = arrivals(cast(dict[str, Any], wl["arrival"]), n_apps, rng)
    runs = [
        (float(times[i]), sample_path(wl, names[k], rng, run_id=f"r{i}"))
        for i, k in enumerate(picks)
    ]
    backends = cast(dict[str, dict[str, Any]], wl["backends"])
    cold = {b: float(s["cold_start_s"]) for b, s in backends.items() if "cold_start_s" in s}
    keep = {b: float(backends[b].get("keep_alive_s", 60.0)) for b in cold}
    return runs, {**{f"C:{b}": c for b, c in cold.items()}, **{f"K:{b}": keep[b] for b in cold}}


def run_policy(
    policy: str, runs: list[tuple[float, RunPath]], params: dict[str, float], seed: int
) -> ReplayResult:
    """Replay ``runs`` under one warm policy."""
    cold = {k[2:]: v for k, v in params.items() if k.startswith("C:")}
    keep = {k[2:]: v for k, v in params.items() if k.startswith("K:")}
    never = 10**9
    registry = GraphRegistry()
    if policy == "none":
        ka = KeepAliveConfig(fixed_s=0.0, min_samples=never)
    elif policy == "fixed keep-alive":
        ka = KeepAliveConfig(fixed_s=max(keep.values()), min_samples=never)
    else:
        ka = KeepAliveConfig()
    cfg = PrewarmConfig(
        c_idle=C_IDLE,
        c_delay=C_DELAY,
        predictive=policy == "hermes",
        default_cold_start_s=max(cold.values()),
        keep_alive=ka,
        seed=seed,
    )
    planner = PrewarmPlanner(registry.get, sorted(cold), cfg)
    if policy == "fixed keep-alive":  # each backend its own platform keep-alive
        for b, k in keep.items():
            planner.ledger.get(b).idle.config = KeepAliveConfig(fixed_s=k, min_samples=never)
    startup: dict[str, Callable[[np.random.Generator], float]] = {
        b: (lambda rng, c=c: c) for b, c in cold.items()
    }
    return replay(
        runs,
        planner,
        startup,
        observe=registry.observe,
        always_warm=policy == "always-warm",
        seed=seed,
    )


POLICIES = ("none", "always-warm", "fixed keep-alive", "histogram keep-alive", "hermes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer apps (a smoke run)")
    parser.add_argument("--apps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n_apps = args.apps or (400 if args.quick else 3000)
    console = Console(width=130)
    runs, params = workload_runs(n_apps, args.seed)
    results: dict[str, ReplayResult] = {}
    secs: dict[str, float] = {}
    for policy in POLICIES:
        t0 = time.perf_counter()
        results[policy] = run_policy(policy, runs, params, args.seed)
        secs[policy] = time.perf_counter() - t0
        console.log(f"{policy}: {secs[policy]:.1f} s")
    base_wait = float(results["none"].cold_wait_s.sum())
    idle_ref = sum(m.warm_idle_s for m in results["always-warm"].metrics.values())
    rows: list[dict[str, Any]] = []
    for policy, res in results.items():
        totals = sum_metrics(res)
        rows.append(
            {
                "policy": policy,
                "mean": float(res.completion_s.mean()),
                "p95": float(np.quantile(res.completion_s, 0.95)),
                "cold_wait_hidden": 1.0 - float(res.cold_wait_s.sum()) / base_wait
                if base_wait > 0
                else 1.0,
                "idle_seconds_vs_always_warm": totals["warm_idle_s"] / idle_ref
                if idle_ref > 0
                else 0.0,
                "cold_wait_s": float(res.cold_wait_s.sum()),
                "warm_idle_s": totals["warm_idle_s"],
                "prewarms": int(totals["prewarms"]),
                "prewarm_hits": int(totals["prewarm_hits"]),
                "misses": int(totals["misses"]),
                "wasted_warms": int(totals["wasted_warms"]),
                "wall_s": round(secs[policy], 2),
            }
        )
    ratio = C_DELAY / C_IDLE
    table = Table(title=f"prewarm: paper suite, {n_apps} apps, c_delay/c_idle = {ratio:g}")
    for col in (
        "policy",
        "mean s",
        "p95 s",
        "hidden",
        "idle vs warm",
        "prewarms",
        "hits",
        "misses",
        "wasted",
    ):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for r in rows:
        table.add_row(
            r["policy"],
            f"{r['mean']:.2f}",
            f"{r['p95']:.2f}",
            f"{r['cold_wait_hidden']:.3f}",
            f"{r['idle_seconds_vs_always_warm']:.3f}",
            str(r["prewarms"]),
            str(r["prewarm_hits"]),
            str(r["misses"]),
            str(r["wasted_warms"]),
        )
    console.print(table)
    hermes = next(r for r in rows if r["policy"] == "hermes")
    ok = (
        hermes["cold_wait_hidden"] >= HIDDEN_TARGET
        and hermes["idle_seconds_vs_always_warm"] <= IDLE_TARGET
    )
    console.print(
        f"target (hidden >= {HIDDEN_TARGET}, idle <= {IDLE_TARGET} x always-warm): "
        + ("[green]met[/green]" if ok else "[red]missed[/red]")
    )
    command = "python benchmarks/bench_prewarm.py" + (" --quick" if args.quick else "")
    if args.apps:
        command += f" --apps {args.apps}"
    doc = {
        "command": command,
        "rows": rows,
        "apps": n_apps,
        "seed": args.seed,
        "backends": {k[2:]: {"cold_start_s": v} for k, v in params.items() if k.startswith("C:")},
        "c_idle": C_IDLE,
        "c_delay": C_DELAY,
        "target_met": ok,
        "python": sys.version.split()[0],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {RESULTS}")


def sum_metrics(res: ReplayResult) -> dict[str, float]:
    """Metrics summed over backends."""
    out: dict[str, float] = {}
    for m in res.metrics.values():
        for k, v in m.as_dict().items():
            out[k] = out.get(k, 0.0) + v
    return out


if __name__ == "__main__":
    main()
