"""Prewarm benchmark: how much cold-start wait each warm policy hides, and at what idle cost.

Run: ``.venv/bin/python benchmarks/bench_prewarm.py [--quick] [--plot-only]``. Apps come from
the paper suite (``hermes_sdk.sim.workloads.suites.paper_suite``: its app mix, bursty trace
arrivals and its cold-start backends ``container`` (2 s start-up) and ``dnn`` (5 s)), sampled as
standalone runs and replayed over the cold-start backends by ``hermes_sdk.prewarm.replay`` (no LLM
queueing: the only delay studied is the cold start). Same runs, same arrivals for every policy:

- ``none``: cold on demand, released as soon as idle (keep-alive 0): the cold-wait reference;
- ``always-warm``: warm from t=0, never released: the idle-seconds reference;
- ``fixed keep-alive``: cold on demand, the suite backends' own fixed keep-alive (60 s / 120 s);
- ``histogram keep-alive``: cold on demand, hybrid-histogram keep-alive (p99 of idle gaps);
- ``hermes``: prewarm when P(need within C) >= c_idle / (c_idle + c_delay) from the learned
  PDGraphs, histogram keep-alive over the gaps the forecast does not cover.

Reports mean/P95 app completion time, ``cold_wait_hidden`` = 1 - cold wait / cold wait of none,
and ``idle_seconds_vs_always_warm``. Target: hermes hides >= 90% of the cold-start wait at <= 50%
of always-warm's idle seconds. Writes ``benchmarks/results/prewarm.json`` and ``prewarm.png``.
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
from hermes_sdk.prewarm.ledger import PrewarmMetrics
from hermes_sdk.prewarm.planner import PrewarmConfig, PrewarmPlanner
from hermes_sdk.prewarm.replay import ReplayResult, replay
from hermes_sdk.prewarm.sim_des import simulate_prewarm
from hermes_sdk.sim.workloads.paths import sample_path
from hermes_sdk.sim.workloads.suites import paper_suite

RESULTS = Path(__file__).parent / "results" / "prewarm.json"
PNG = RESULTS.with_suffix(".png")
HIDDEN_TARGET = 0.90
IDLE_TARGET = 0.50
C_IDLE, C_DELAY = 1.0, 15.0


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


def planner_config(policy: str, cold: dict[str, float], seed: int) -> PrewarmConfig:
    """The planner settings that make the planner behave as ``policy``."""
    never = 10**9
    if policy == "none":
        ka = KeepAliveConfig(fixed_s=0.0, min_samples=never)
    elif policy == "always-warm":
        ka = KeepAliveConfig(fixed_s=1e9, max_s=1e9, min_samples=never)
    elif policy == "fixed keep-alive":
        ka = KeepAliveConfig(fixed_s=60.0, min_samples=never)  # per backend below (replay)
    else:
        ka = KeepAliveConfig()
    return PrewarmConfig(
        c_idle=C_IDLE,
        c_delay=C_DELAY,
        predictive=policy == "hermes",
        default_cold_start_s=max(cold.values()),
        keep_alive=ka,
        seed=seed,
    )


def run_policy(
    policy: str, runs: list[tuple[float, RunPath]], params: dict[str, float], seed: int
) -> ReplayResult:
    """Replay ``runs`` under one warm policy."""
    cold = {k[2:]: v for k, v in params.items() if k.startswith("C:")}
    keep = {k[2:]: v for k, v in params.items() if k.startswith("K:")}
    registry = GraphRegistry()
    planner = PrewarmPlanner(registry.get, sorted(cold), planner_config(policy, cold, seed))
    if policy == "fixed keep-alive":  # each backend its own platform keep-alive
        for b, k in keep.items():
            planner.ledger.get(b).idle.config = KeepAliveConfig(fixed_s=k, min_samples=10**9)
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


def replay_rows(n_apps: int, seed: int, console: Console) -> list[dict[str, Any]]:
    """Rows of the cold-start replay (standalone stage times, no LLM queueing)."""
    runs, params = workload_runs(n_apps, seed)
    measured: dict[str, tuple[np.ndarray, float, PrewarmMetrics, float]] = {}
    for policy in POLICIES:
        t0 = time.perf_counter()
        res = run_policy(policy, runs, params, seed)
        total = sum(res.metrics.values(), PrewarmMetrics())
        wall = time.perf_counter() - t0
        measured[policy] = (res.completion_s, float(res.cold_wait_s.sum()), total, wall)
        console.log(f"replay {policy}: {wall:.1f} s")
    return rows_of(measured)


def des_rows(n_apps: int, seed: int, console: Console) -> list[dict[str, Any]]:
    """Rows of the full simulator (LLM engine queueing, FCFS admission, pooled backends)."""
    wl = paper_suite(0.85, seed, n_apps=n_apps, warmup_apps=n_apps // 10)
    measured: dict[str, tuple[np.ndarray, float, PrewarmMetrics, float]] = {}
    for policy in POLICIES:
        t0 = time.perf_counter()

        def build(lookup: Any, cold: list[str], policy: str = policy) -> PrewarmPlanner:
            spec = cast(dict[str, dict[str, Any]], wl["backends"])
            c = {b: float(spec[b]["cold_start_s"]) for b in cold}
            planner = PrewarmPlanner(lookup, cold, planner_config(policy, c, seed))
            if policy == "fixed keep-alive":
                for b in cold:
                    k = float(spec[b].get("keep_alive_s", 60.0))
                    planner.ledger.get(b).idle.config = KeepAliveConfig(
                        fixed_s=k, min_samples=10**9
                    )
            return planner

        res = simulate_prewarm(wl, "fcfs", build, always_warm=policy == "always-warm", seed=seed)
        wall = time.perf_counter() - t0
        totals = res.planner.ledger.totals(res.end_s)
        measured[policy] = (res.completion_s, float(res.cold_wait_s.sum()), totals, wall)
        console.log(f"simulator {policy}: {wall:.1f} s")
    return rows_of(measured)


def rows_of(
    measured: dict[str, tuple[np.ndarray, float, PrewarmMetrics, float]],
) -> list[dict[str, Any]]:
    """Result rows relative to none (cold wait) and always-warm (idle seconds)."""
    base_wait = measured["none"][1]
    idle_ref = measured["always-warm"][2].warm_idle_s
    rows: list[dict[str, Any]] = []
    for policy, (completion, wait_s, m, wall) in measured.items():
        rows.append(
            {
                "policy": policy,
                "mean": float(completion.mean()),
                "p95": float(np.quantile(completion, 0.95)),
                "cold_wait_hidden": 1.0 - wait_s / base_wait if base_wait > 0 else 1.0,
                "idle_seconds_vs_always_warm": m.warm_idle_s / idle_ref if idle_ref > 0 else 0.0,
                "cold_wait_s": wait_s,
                "warm_idle_s": m.warm_idle_s,
                "prewarms": m.prewarms,
                "prewarm_hits": m.prewarm_hits,
                "misses": m.misses,
                "wasted_warms": m.wasted_warms,
                "wall_s": round(wall, 2),
            }
        )
    return rows


def render(console: Console, title: str, rows: list[dict[str, Any]]) -> bool:
    """Print one table; True when hermes meets the target."""
    table = Table(title=title)
    for col in ("policy", "mean s", "p95 s", "hidden", "idle vs warm", "prewarms", "hits",
                "misses", "wasted"):  # fmt: skip
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
    ok = bool(
        hermes["cold_wait_hidden"] >= HIDDEN_TARGET
        and hermes["idle_seconds_vs_always_warm"] <= IDLE_TARGET
    )
    console.print(
        f"target (hidden >= {HIDDEN_TARGET}, idle <= {IDLE_TARGET} x always-warm): "
        + ("[green]met[/green]" if ok else "[red]missed[/red]")
    )
    return ok


def main() -> None:
    global C_DELAY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer apps (a smoke run)")
    parser.add_argument("--apps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--c-delay", type=float, default=C_DELAY, help="cost of an app-delay second (c_idle = 1)"
    )
    from plotting import add_plot_only, redraw

    add_plot_only(parser, PNG, RESULTS)
    args = parser.parse_args()
    if args.plot_only:
        redraw(plot, RESULTS, PNG)
        return
    C_DELAY = args.c_delay
    n_apps = args.apps or (400 if args.quick else 3000)
    console = Console(width=130)
    ratio = C_DELAY / C_IDLE
    rows = replay_rows(n_apps, args.seed, console)
    ok = render(
        console, f"cold-start replay: paper suite, {n_apps} apps, c_delay/c_idle = {ratio:g}", rows
    )
    sim_rows = des_rows(n_apps, args.seed, console)
    sim_ok = render(console, f"full simulator (LLM queueing): paper suite, {n_apps} apps", sim_rows)
    command = "python benchmarks/bench_prewarm.py" + (" --quick" if args.quick else "")
    if args.apps:
        command += f" --apps {args.apps}"
    if args.c_delay != 15.0:
        command += f" --c-delay {args.c_delay:g}"
    doc = {
        "command": command,
        "rows": rows,
        "simulator_rows": sim_rows,
        "apps": n_apps,
        "seed": args.seed,
        "c_idle": C_IDLE,
        "c_delay": C_DELAY,
        "target_met": ok,
        "simulator_target_met": sim_ok,
        "notes": "rows: cold-start replay of the paper suite's runs (stage times standalone); "
        "simulator_rows: the full discrete-event simulator with LLM engine queueing (FCFS).",
        "python": sys.version.split()[0],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    plot(doc, PNG)
    console.print(f"wrote {RESULTS} and {PNG}")


def plot(result: dict[str, Any], path: Path) -> None:
    """Per warm strategy: the share of the cold-start wait it hides (vs none) and its idle warm
    seconds (vs always-warm), in the cold-start replay and in the full simulator."""
    from plotting import figure, grouped_bars, save, shared_legend

    panels = [("cold-start replay (no LLM queueing)", result["rows"])]
    if result.get("simulator_rows"):
        panels.append(("full simulator (LLM queueing, FCFS)", result["simulator_rows"]))
    ratio = result["c_delay"] / result["c_idle"]
    fig, axes = figure(
        1,
        len(panels),
        (6.5 * len(panels), 4.6),
        "Prewarm strategies: cold-start wait hidden vs idle warm seconds "
        f"(paper suite, {result['apps']} apps, c_delay/c_idle = {ratio:g})",
    )
    for ax, (title, rows) in zip(axes, panels, strict=True):
        hidden = [100 * r["cold_wait_hidden"] for r in rows]
        idle = [100 * r["idle_seconds_vs_always_warm"] for r in rows]
        grouped_bars(
            ax,
            [r["policy"] for r in rows],
            {"cold wait hidden (% of none's)": hidden, "idle seconds (% of always-warm's)": idle},
            axis_label="% of the reference strategy",
            title=title,
            labels={
                "cold wait hidden (% of none's)": [
                    f"{h:.1f}% ({r['cold_wait_s']:,.0f} s left)"
                    for h, r in zip(hidden, rows, strict=True)
                ],
                "idle seconds (% of always-warm's)": [
                    f"{i:.1f}% ({r['warm_idle_s']:,.0f} s)" for i, r in zip(idle, rows, strict=True)
                ],
            },
            targets=[
                (100 * HIDDEN_TARGET, f"target (hermes): hidden >= {HIDDEN_TARGET:.0%}"),
                (100 * IDLE_TARGET, f"target (hermes): idle <= {IDLE_TARGET:.0%}"),
            ],
            legend=None,
        )
        ax.set_xlim(0, 135)
    shared_legend(fig, axes)
    save(fig, path)


if __name__ == "__main__":
    main()
