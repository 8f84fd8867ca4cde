"""PDGraph benchmark: observe throughput and remaining_demand latency for 5/20/100-node graphs.

Run: ``.venv/bin/python benchmarks/bench_graph.py [--quick] [--plot-only]``. Prints a table and
writes ``benchmarks/results/graph.json`` and ``graph.png``. Baseline (same run): a
straightforward per-path Python Monte Carlo over the same graph (``next_stage_probs`` +
per-stage sampling), to show what the vectorised, precompiled sampler buys. Targets: cached
lookup p99 <= 20 us; uncached 1000-path Monte Carlo on the 20-node graph <= 2 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from hermes_sdk import Call, PDGraph, RunPath, RunState, Stage
from hermes_sdk.graph.compiled_graph import GraphCompiler

RESULTS = Path(__file__).parent / "results" / "graph.json"
PNG = RESULTS.with_suffix(".png")
CACHED_P99_TARGET_US = 20.0
UNCACHED_20_P99_TARGET_MS = 2.0


def synthetic_paths(n_nodes: int, runs: int, seed: int) -> list[RunPath]:
    """Runs of a random app: each node has 3 successors, END w.p. ~0.2, loops allowed."""
    rng = np.random.default_rng(seed)
    succ = [rng.choice(n_nodes, size=3) for _ in range(n_nodes)]
    means_s = rng.lognormal(-1.0, 1.0, n_nodes)
    widths = rng.integers(1, 4, n_nodes)
    paths = []
    for i in range(runs):
        stages = []
        node = int(rng.integers(0, min(n_nodes, 3)))
        for _ in range(40):
            w = int(rng.integers(1, widths[node] + 1))
            calls = tuple(
                Call(float(rng.exponential(means_s[node])), int(rng.integers(50, 2000)), 100)
                for _ in range(w)
            )
            stages.append(Stage(f"unit {node}", calls, "llm", f"b{node % 4}"))
            if rng.random() < 0.2:
                break
            node = int(succ[node][rng.integers(0, 3)])
        paths.append(RunPath("bench", tuple(stages), run_id=str(i), started_at=float(i)))
    return paths


def naive_remaining(graph: PDGraph, state: RunState, n: int, rng: np.random.Generator) -> float:
    """Baseline: per-path Python walk; returns the mean (what a simple implementation does)."""
    stats = {name: graph.node_stats(name).stage_service_s for name in graph.nodes}
    total = 0.0
    for _ in range(n):
        counts = dict(state.visits)
        node = state.node
        for _ in range(64):
            probs = graph.next_stage_probs(RunState(node, tuple(sorted(counts.items()))))
            if not probs:
                break
            names = list(probs)
            node = names[int(rng.choice(len(names), p=list(probs.values())))]
            if node == "END":
                break
            counts[node] = counts.get(node, 0) + 1
            total += float(stats[node].sample(rng, 1)[0])
    return total / n


def _percentiles_us(samples_s: list[float]) -> dict[str, float]:
    arr = np.asarray(samples_s) * 1e6
    return {
        "min_us": float(arr.min()),
        "p50_us": float(np.percentile(arr, 50)),
        "p99_us": float(np.percentile(arr, 99)),
    }


def bench_size(n_nodes: int, runs: int, reps: int, baseline_paths: int) -> dict[str, object]:
    """All measurements for one graph size."""
    paths = synthetic_paths(n_nodes, runs, seed=n_nodes)
    graph = PDGraph("bench")
    t0 = time.perf_counter()
    for p in paths:
        graph.observe(p)
    observe_s = time.perf_counter() - t0
    states = [RunState()] + [
        RunState(s.node, ((s.node, 1),), running=True, elapsed_s=0.1) for s in paths[0].stages[:3]
    ]

    full_compile: list[float] = []
    for _ in range(max(5, reps // 20)):
        graph._compiler = GraphCompiler()  # what a freshly loaded graph pays once
        t = time.perf_counter()
        graph._compiler.get(graph)
        full_compile.append(time.perf_counter() - t)

    after_observe: list[float] = []  # incremental recompile + MC: the first query after a run
    extra = synthetic_paths(n_nodes, max(5, reps // 10), seed=n_nodes)
    for p in extra:
        graph.observe(p)
        t = time.perf_counter()
        graph.remaining_demand(states[0])
        after_observe.append(time.perf_counter() - t)

    uncached: list[float] = []
    uncached_cpu: list[float] = []  # thread CPU time: excludes waiting for a busy core
    for i in range(reps):
        graph._cache.clear()
        c = time.thread_time()
        t = time.perf_counter()
        graph.remaining_demand(states[i % len(states)], n=1000)
        uncached.append(time.perf_counter() - t)
        uncached_cpu.append(time.thread_time() - c)

    rerank: list[float] = []  # a running unit re-ranked with a new elapsed_s: walk is cached
    first = paths[0].stages[0].node
    graph.remaining_demand(RunState(first, ((first, 1),), running=True, elapsed_s=0.0))
    for i in range(reps):
        st = RunState(first, ((first, 1),), running=True, elapsed_s=0.001 * (i + 1))
        t = time.perf_counter()
        graph.remaining_demand(st)
        rerank.append(time.perf_counter() - t)

    cached: list[float] = []
    for st in states:
        graph.remaining_demand(st)
    for i in range(reps * 10):
        st = states[i % len(states)]
        t = time.perf_counter()
        graph.remaining_demand(st)
        cached.append(time.perf_counter() - t)

    rng = np.random.default_rng(0)
    t = time.perf_counter()
    naive_mean = naive_remaining(graph, states[0], baseline_paths, rng)
    naive_s = (time.perf_counter() - t) / baseline_paths * 1000  # per 1000 paths
    vec_mean = float(graph.remaining_demand(states[0], n=20_000).mean())
    return {
        "nodes": len(graph.nodes),
        "runs": runs,
        "mean_stages": float(np.mean([len(p.stages) for p in paths])),
        "observe_paths_per_s": runs / observe_s,
        "full_compile": _percentiles_us(full_compile),
        "first_query_after_observe": _percentiles_us(after_observe),
        "uncached_mc_1000": _percentiles_us(uncached),
        "uncached_mc_1000_cpu": _percentiles_us(uncached_cpu),
        "rerank_running_new_elapsed": _percentiles_us(rerank),
        "cached_lookup": _percentiles_us(cached),
        "baseline_python_mc_1000_ms": naive_s * 1e3,
        "speedup_vs_baseline": naive_s / float(np.median(uncached)),
        "mean_check": {"vectorised_s": vec_mean, "baseline_s": naive_mean},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs and repetitions")
    from plotting import add_plot_only, redraw

    add_plot_only(parser, PNG, RESULTS)
    args = parser.parse_args()
    if args.plot_only:
        redraw(plot, RESULTS, PNG)
        return
    runs, reps, base = (500, 100, 100) if args.quick else (3000, 500, 400)
    console = Console(width=max(140, Console().width))
    load_before = os.getloadavg()[0]
    results = {str(n): bench_size(n, runs, reps, base) for n in (5, 20, 100)}
    table = Table(
        title="PDGraph: remaining_demand p50/p99 in us (MC = uncached, 1000 paths)",
        caption="rerank = running unit with a new elapsed_s; py MC = per-path Python baseline",
    )
    for col in (
        "nodes",
        "obs/s",
        "compile ms",
        "after obs",
        "MC",
        "MC cpu",
        "rerank",
        "cached",
        "py MC ms",
        "x",
    ):
        table.add_column(col, justify="right", no_wrap=True)
    for r in results.values():
        unc, cpu, cac = r["uncached_mc_1000"], r["uncached_mc_1000_cpu"], r["cached_lookup"]
        fc, ao, rr = (
            r["full_compile"],
            r["first_query_after_observe"],
            r["rerank_running_new_elapsed"],
        )
        assert isinstance(rr, dict)
        assert isinstance(unc, dict) and isinstance(cpu, dict) and isinstance(cac, dict)
        assert isinstance(fc, dict) and isinstance(ao, dict)
        table.add_row(
            str(r["nodes"]),
            f"{r['observe_paths_per_s']:,.0f}",
            f"{fc['p50_us'] / 1e3:.1f}",
            f"{ao['p50_us']:.0f}/{ao['p99_us']:.0f}",
            f"{unc['p50_us']:.0f}/{unc['p99_us']:.0f}",
            f"{cpu['p50_us']:.0f}/{cpu['p99_us']:.0f}",
            f"{rr['p50_us']:.0f}/{rr['p99_us']:.0f}",
            f"{cac['p50_us']:.1f}/{cac['p99_us']:.1f}",
            f"{r['baseline_python_mc_1000_ms']:.0f}",
            f"{r['speedup_vs_baseline']:.0f}x",
        )
    console.print(table)
    cached_p99 = max(r["cached_lookup"]["p99_us"] for r in results.values())  # type: ignore[index]
    uncached_20 = results["20"]["uncached_mc_1000"]["p99_us"] / 1e3  # type: ignore[index]
    uncached_20_cpu = results["20"]["uncached_mc_1000_cpu"]["p99_us"] / 1e3  # type: ignore[index]
    targets = {
        "cached_p99_us": cached_p99,
        "cached_p99_target_us": CACHED_P99_TARGET_US,
        "cached_ok": cached_p99 <= CACHED_P99_TARGET_US,
        "uncached_20_nodes_p99_ms": uncached_20,
        "uncached_target_ms": UNCACHED_20_P99_TARGET_MS,
        "uncached_ok": uncached_20 <= UNCACHED_20_P99_TARGET_MS,
        "uncached_20_nodes_cpu_p99_ms": uncached_20_cpu,
        "uncached_cpu_ok": uncached_20_cpu <= UNCACHED_20_P99_TARGET_MS,
        "uncached_20_nodes_cpu_min_ms": results["20"]["uncached_mc_1000_cpu"]["min_us"] / 1e3,  # type: ignore[index]
        "note": "wall-clock numbers include waiting for a core; see machine.load_avg_1m_*",
    }
    console.print(targets)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "graph",
        "quick": args.quick,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_1m_before": load_before,
            "load_avg_1m_after": os.getloadavg()[0],
        },
        "sizes": results,
        "targets": targets,
    }
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    plot(doc, PNG)
    console.print(f"wrote {RESULTS} and {PNG}")


def plot(result: dict[str, Any], path: Path) -> None:
    """Per graph size: cached lookup and uncached Monte Carlo latency against their targets
    (the latter next to the per-path Python baseline), the latencies that follow an observed
    run, and observe throughput."""
    from plotting import figure, grouped_bars, save, us

    sizes = result["sizes"]
    targets = result["targets"]
    graphs = [f"{r['nodes']} nodes" for r in sizes.values()]
    fig, (cached_ax, mc_ax, after_ax, observe_ax) = figure(
        2, 2, (14, 8.5), "PDGraph remaining_demand latency and observe throughput per graph size"
    )

    def q(key: str, p: str, scale: float = 1.0) -> list[float | None]:
        return [r[key][f"{p}_us"] * scale for r in sizes.values()]

    cached_target = targets.get("cached_p99_target_us", CACHED_P99_TARGET_US)
    grouped_bars(
        cached_ax,
        graphs,
        {"p50": q("cached_lookup", "p50"), "p99": q("cached_lookup", "p99")},
        axis_label="us per lookup",
        title="Cached lookup (same state asked again)",
        fmt=us,
        targets=[(cached_target, f"target: p99 <= {cached_target:g} us")],
        legend="center right",
    )
    mc_target = targets.get("uncached_target_ms", UNCACHED_20_P99_TARGET_MS)
    grouped_bars(
        mc_ax,
        graphs,
        {
            "p50": q("uncached_mc_1000", "p50", 1e-3),
            "p99": q("uncached_mc_1000", "p99", 1e-3),
            "baseline: per-path Python MC": [
                r["baseline_python_mc_1000_ms"] for r in sizes.values()
            ],
        },
        log=True,
        axis_label="ms per query (log)",
        title="Uncached Monte Carlo, 1000 paths, vs per-path Python",
        fmt=us,
        targets=[(mc_target, f"target: p99 <= {mc_target:g} ms (19/20-node graph)")],
        legend="outside",
    )
    grouped_bars(
        after_ax,
        graphs,
        {
            "full compile": q("full_compile", "p50", 1e-3),
            "first query after observe": q("first_query_after_observe", "p50", 1e-3),
            "re-rank running unit": q("rerank_running_new_elapsed", "p50", 1e-3),
        },
        axis_label="p50 ms",
        title="After a change: compile, query after observe, re-rank (p50)",
        fmt=us,
        legend="outside",
    )
    grouped_bars(
        observe_ax,
        graphs,
        {"observe": [r["observe_paths_per_s"] for r in sizes.values()]},
        axis_label="observed run paths per second",
        title="observe() throughput",
        legend=None,
    )
    save(fig, path)


if __name__ == "__main__":
    main()
