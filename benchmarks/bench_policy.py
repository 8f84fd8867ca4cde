"""Policy and simulator benchmark: Gittins rank latency, re-rank after one event, events/s.

Run: ``.venv/bin/python benchmarks/bench_policy.py [--quick] [--plot-only]``. Prints a table and
writes ``benchmarks/results/policy.json`` and ``policy.png``. Baselines measured in the same
run: the textbook definition of the Gittins index evaluated quantum by quantum (O(n^2)), a full
re-rank of every waiting app, and a bare heapq M/M/1 FCFS event loop. Targets: rank p99 <= 50 us
for 1000-sample distributions; re-rank of 1000 waiting apps after one event <= 5 ms.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from hermes_sdk import RunState
from hermes_sdk.policy import AppState, GittinsPolicy, gittins_index
from hermes_sdk.sim import simulate

RESULTS = Path(__file__).parent / "results" / "policy.json"
PNG = RESULTS.with_suffix(".png")
RANK_P99_TARGET_US = 50.0
RERANK_TARGET_MS = 5.0
N_SAMPLES = 1000
TWO_POINT = {"dist": "two_point", "values": [1, 20], "probs": [0.9, 0.1]}


def quantiles_us(times_s: list[float], cpu_s: list[float] | None = None) -> dict[str, float]:
    """Wall-clock percentiles, and thread-CPU-time percentiles (immune to other processes
    preempting this one on a busy machine) when given."""
    arr = np.array(times_s) * 1e6
    out = {
        "p50_us": float(np.percentile(arr, 50)),
        "p99_us": float(np.percentile(arr, 99)),
        "mean_us": float(arr.mean()),
    }
    if cpu_s is not None:
        cpu = np.array(cpu_s) * 1e6
        out["cpu_p50_us"] = float(np.percentile(cpu, 50))
        out["cpu_p99_us"] = float(np.percentile(cpu, 99))
    return out


class Stopwatch:
    """Collects wall and thread CPU time of repeated operations."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._w = 0.0
        self._c = 0.0

    def start(self) -> None:
        self._c = time.thread_time()
        self._w = time.perf_counter()

    def stop(self) -> None:
        self.wall.append(time.perf_counter() - self._w)
        self.cpu.append(time.thread_time() - self._c)

    def summary(self) -> dict[str, float]:
        return quantiles_us(self.wall, self.cpu)


def definition_index(samples: NDArray[np.float64]) -> float:
    """Baseline: max over every candidate quantum of P(R <= D) / E[min(R, D)], one at a time."""
    best = 0.0
    for d in samples:
        best = max(best, float(np.mean(samples <= d) / np.mean(np.minimum(samples, d))))
    return best


class PoolModel:
    """A DemandModel answering from fresh (writeable) arrays: no memo hits, worst case."""

    def __init__(self, pool: list[NDArray[np.float64]]) -> None:
        self.pool = pool
        self.i = 0

    def remaining_demand(
        self, app: str, state: RunState, *, tenant: str = "default", n: int = 1000
    ) -> NDArray[np.float64]:
        self.i = (self.i + 1) % len(self.pool)
        return self.pool[self.i]


def bench_rank(reps: int, rng: np.random.Generator) -> dict[str, dict[str, float]]:
    pool = [rng.lognormal(0.0, 1.5, N_SAMPLES) for _ in range(64)]
    out: dict[str, dict[str, float]] = {}
    watch = Stopwatch()
    for i in range(reps):
        x = pool[i % len(pool)]
        watch.start()
        gittins_index(x)
        watch.stop()
    out["gittins_index"] = watch.summary()
    policy = GittinsPolicy(PoolModel(pool), n=N_SAMPLES)
    app = AppState("bench", "r1", arrival_s=0.0)
    watch = Stopwatch()
    for _ in range(reps):
        watch.start()
        policy.rank(app, 0.0)
        watch.stop()
    out["GittinsPolicy.rank"] = watch.summary()
    times = []
    for i in range(max(5, reps // 200)):
        x = pool[i % len(pool)]
        t0 = time.perf_counter()
        definition_index(x)
        times.append(time.perf_counter() - t0)
    out["baseline: definition O(n^2)"] = quantiles_us(times)
    return out


def bench_rerank(reps: int, rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """1000 waiting apps in rank order; one event changes one app's state."""
    n_apps = 1000
    samples = [rng.lognormal(rng.normal(0, 1), 1.2, N_SAMPLES) for _ in range(n_apps)]
    order = sorted((1.0 / gittins_index(s), i) for i, s in enumerate(samples))
    watch = Stopwatch()
    for k in range(reps):
        i = k % n_apps
        fresh = samples[(i * 7 + 3) % n_apps]
        watch.start()
        # the Gittins index depends only on the app's own state: re-rank it, re-position it
        rank = 1.0 / gittins_index(fresh)
        pos = bisect.bisect_left(order, (rank, i))
        order.insert(pos, (rank, i))
        watch.stop()
        order.pop(pos)
    out = {"incremental (one app)": watch.summary()}
    times = []
    for _ in range(max(3, reps // 500)):
        t0 = time.perf_counter()
        sorted((1.0 / gittins_index(s), i) for i, s in enumerate(samples))
        times.append(time.perf_counter() - t0)
    out["baseline: recompute all 1000"] = quantiles_us(times)
    return out


def bare_mm1(n: int, seed: int) -> tuple[int, float]:
    """Baseline: the smallest possible heapq M/M/1 FCFS event loop (no apps, no policy)."""
    rng = np.random.default_rng(seed)
    inter = rng.exponential(1 / 0.8, n).tolist()
    sizes = rng.exponential(1.0, n).tolist()
    heap: list[tuple[float, int, int]] = [(inter[0], 0, 0)]
    queue: list[int] = []
    busy = False
    t_arr = inter[0]
    events = 0
    started = time.perf_counter()
    while heap:
        t, kind, i = heapq.heappop(heap)
        events += 1
        if kind == 0:
            if i + 1 < n:
                t_arr += inter[i + 1]
                heapq.heappush(heap, (t_arr, 0, i + 1))
            if busy:
                queue.append(i)
            else:
                busy = True
                heapq.heappush(heap, (t + sizes[i], 1, i))
        elif queue:
            j = queue.pop(0)
            heapq.heappush(heap, (t + sizes[j], 1, j))
        else:
            busy = False
    return events, time.perf_counter() - started


def single_unit(service: dict[str, object], rate: float, n: int) -> dict[str, object]:
    return {
        "seed": 1,
        "n_apps": n,
        "warmup_apps": n // 10,
        "arrival": {"process": "poisson", "rate": rate},
        "backends": {"cpu": {"servers": 1, "preemptive": True}},
        "learning": "oracle",
        "apps": [{"name": "a", "start": "u", "units": {"u": {
            "kind": "tool", "backend": "cpu", "service": service,
            "next": [{"to": "END", "p": 1.0}]}}}],
    }  # fmt: skip


def agent_mix(n: int) -> dict[str, object]:
    loop = [[{"to": "act", "p": 0.6}, {"to": "END", "p": 0.4}]]
    return {
        "seed": 1,
        "n_apps": n,
        "warmup_apps": n // 10,
        "arrival": {"process": "load", "load": 0.8},
        "learning": "oracle",
        "backends": {
            "llm": {"servers": 16, "preemptive": True, "batch_slowdown": 0.05,
                    "time_model": {"per_input_token_s": 1e-4, "per_output_token_s": 0.02}},
            "tools": {"servers": 4, "cold_start_s": 2.0, "keep_alive_s": 30.0},
        },
        "apps": [{"name": "agent", "start": "plan", "units": {
            "plan": {"kind": "llm", "backend": "llm",
                     "input_tokens": {"dist": "uniform", "low": 500, "high": 2000},
                     "output_tokens": {"dist": "lognormal", "mean": 100, "cv": 1.0},
                     "prompt_growth_tokens": 200, "next": [{"to": "act", "p": 1.0}]},
            "act": {"kind": "tool", "backend": "tools",
                    "service": {"dist": "exponential", "mean": 1.0},
                    "fanout": {"dist": "empirical", "samples": [1, 2, 4]},
                    "by_visit": [[{"to": "plan", "p": 0.6}, {"to": "END", "p": 0.4}], *loop]},
        }}],
    }  # fmt: skip


SIM_REPEATS = 3
"""Each simulator run is repeated; the median (by events per CPU second) is reported."""


def bench_sim(quick: bool) -> dict[str, Any]:
    scale = 0.2 if quick else 1.0
    runs = {
        "M/M/1 fcfs": (single_unit({"dist": "exponential", "mean": 1.0}, 0.8, 50_000), "fcfs"),
        "M/M/1 las": (single_unit({"dist": "exponential", "mean": 1.0}, 0.8, 20_000), "las"),
        "two-point gittins (oracle)": (single_unit(TWO_POINT, 0.8 / 2.9, 10_000), "gittins"),
        "agent mix, 16-slot LLM, fcfs": (agent_mix(10_000), "fcfs"),
        "agent mix, 16-slot LLM, gittins": (agent_mix(5_000), "gittins"),
    }
    out: dict[str, dict[str, float]] = {}
    for name, (doc, policy) in runs.items():
        doc["n_apps"] = max(200, int(int(doc["n_apps"]) * scale))  # type: ignore[call-overload]
        doc["warmup_apps"] = int(doc["n_apps"]) // 10  # type: ignore[call-overload]
        results = sorted(
            (simulate(doc, policy) for _ in range(SIM_REPEATS)), key=lambda r: r.events_per_cpu_s
        )
        result = results[len(results) // 2]  # the median run: this machine's speed drifts
        out[name] = {
            "apps": float(doc["n_apps"]),  # type: ignore[arg-type]
            "events": float(result.events),
            "wall_s": result.wall_s,
            "events_per_s": result.events_per_s,
            "events_per_cpu_s": result.events_per_cpu_s,
            "events_per_cpu_s_range": [results[0].events_per_cpu_s, results[-1].events_per_cpu_s],
            "mean_s": result.mean,
        }
    baseline = []
    for _ in range(SIM_REPEATS):
        cpu_started = time.process_time()
        events, wall = bare_mm1(int(100_000 * scale), 1)
        baseline.append((events / (time.process_time() - cpu_started), events, wall))
    cpu_rate, events, wall = sorted(baseline)[len(baseline) // 2]
    out["baseline: bare heapq M/M/1"] = {
        "apps": 100_000 * scale,
        "events": float(events),
        "wall_s": wall,
        "events_per_s": events / wall,
        "events_per_cpu_s": cpu_rate,
        "mean_s": float("nan"),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller runs")
    from plotting import add_plot_only, redraw

    add_plot_only(parser, PNG, RESULTS)
    args = parser.parse_args()
    if args.plot_only:
        redraw(plot, RESULTS, PNG)
        return
    reps = 2000 if args.quick else 20_000
    rng = np.random.default_rng(7)
    console = Console()
    rank = bench_rank(reps, rng)
    rerank = bench_rerank(reps // 4, rng)
    sim = bench_sim(args.quick)

    table = Table(title=f"Gittins ranking, {N_SAMPLES}-sample distributions (us)")
    for col in ("operation", "p50", "p99", "mean", "CPU p50", "CPU p99", "target"):
        table.add_column(col, justify="left" if col == "operation" else "right")

    def cpu(q: dict[str, float], key: str) -> str:
        return f"{q[key]:.1f}" if key in q else "-"

    for name, q in rank.items():
        target = f"p99 <= {RANK_P99_TARGET_US:g}" if name == "gittins_index" else ""
        table.add_row(name, f"{q['p50_us']:.1f}", f"{q['p99_us']:.1f}", f"{q['mean_us']:.1f}",
                      cpu(q, "cpu_p50_us"), cpu(q, "cpu_p99_us"), target)  # fmt: skip
    for name, q in rerank.items():
        target = f"p99 <= {RERANK_TARGET_MS * 1000:g}" if name.startswith("incremental") else ""
        table.add_row(f"re-rank 1000 waiting: {name}", f"{q['p50_us']:.1f}",
                      f"{q['p99_us']:.1f}", f"{q['mean_us']:.1f}", cpu(q, "cpu_p50_us"),
                      cpu(q, "cpu_p99_us"), target)  # fmt: skip
    console.print(table)
    sim_table = Table(title="Simulator speed")
    for col in ("run", "apps", "events", "wall s", "events/s", "events/CPU s", "mean s"):
        sim_table.add_column(col, justify="left" if col == "run" else "right")
    for name, r in sim.items():
        sim_table.add_row(name, f"{r['apps']:.0f}", f"{r['events']:.0f}", f"{r['wall_s']:.2f}",
                          f"{r['events_per_s']:,.0f}", f"{r['events_per_cpu_s']:,.0f}",
                          f"{r['mean_s']:.3f}")  # fmt: skip
    console.print(sim_table)
    console.print(
        "events/CPU s divides by this process's CPU time: on a busy machine wall-clock rates "
        "understate the simulator (load average at start: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )

    rank_p99 = rank["gittins_index"]["cpu_p99_us"]
    rerank_p99_ms = rerank["incremental (one app)"]["cpu_p99_us"] / 1000
    doc = {
        "benchmark": "policy",
        "quick": args.quick,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
            "numpy": np.__version__,
        },
        "samples_per_distribution": N_SAMPLES,
        "rank": rank,
        "rerank_1000": rerank,
        "simulator": sim,
        "targets": {
            "measured_on": "thread CPU time (wall-clock p99 on a shared machine is preemption)",
            "rank_p99_us": RANK_P99_TARGET_US,
            "rank_p99_met": rank_p99 <= RANK_P99_TARGET_US,
            "rerank_1000_ms": RERANK_TARGET_MS,
            "rerank_1000_met": rerank_p99_ms <= RERANK_TARGET_MS,
            "sim_events_per_s": 200_000,
            "sim_events_per_s_met": sim["M/M/1 fcfs"]["events_per_cpu_s"] >= 200_000,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    plot(doc, PNG)
    console.print(f"wrote {RESULTS} and {PNG}")


def plot(result: dict[str, Any], path: Path) -> None:
    """Rank and re-rank latency p50/p99 vs their same-run baselines (with the p99 targets) and
    simulator events/s vs the bare heapq event loop (with the events/s target)."""
    from plotting import figure, grouped_bars, save, us

    targets = result["targets"]
    n = result.get("samples_per_distribution", N_SAMPLES)
    fig, (rank_ax, rerank_ax, sim_ax) = figure(
        3, 1, (10, 11), "Gittins policy and simulator vs same-run baselines (latencies: wall clock)"
    )

    def latency(ax: Any, rows: dict[str, dict[str, float]], title: str, target: str) -> None:
        value_us = targets[target] * (1e3 if target.endswith("_ms") else 1)
        grouped_bars(
            ax,
            list(rows),
            {q: [r[f"{q}_us"] for r in rows.values()] for q in ("p50", "p99")},
            log=True,
            axis_label="latency per call (us, log)",
            title=title,
            fmt=us,
            targets=[(value_us, f"target: p99 <= {us(value_us)} us (thread CPU time)")],
            legend="upper right",
        )

    latency(rank_ax, result["rank"], f"Gittins index of a {n}-sample distribution", "rank_p99_us")
    latency(
        rerank_ax,
        result["rerank_1000"],
        "Re-rank of 1000 waiting apps after one event",
        "rerank_1000_ms",
    )
    sim = result["simulator"]
    grouped_bars(
        sim_ax,
        list(sim),
        {
            "events per wall s": [r["events_per_s"] for r in sim.values()],
            "events per CPU s": [r["events_per_cpu_s"] for r in sim.values()],
        },
        log=True,
        axis_label="simulated events per second (log)",
        title="Simulator speed vs a bare heapq M/M/1 loop",
        targets=[(targets["sim_events_per_s"], "target: M/M/1 fcfs, per CPU s")],
        legend="upper right",
    )
    save(fig, path)


if __name__ == "__main__":
    main()
