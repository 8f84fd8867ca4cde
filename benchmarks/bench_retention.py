"""KV-cache retention benchmark: prefill saved by LRU alone, a tuned fixed TTL and PDGraph hints.

Run: ``.venv/bin/python benchmarks/bench_retention.py [--quick] [--plot-only]``. The paper suite
(``hermes_sdk.sim.workloads.suites.paper_suite``, load 0.85, online learning, policy gittins)
runs in the discrete-event simulator with a prefix KV cache of fixed capacity on its LLM engine
(:mod:`hermes_sdk.sim.kv_des`); the same apps and arrivals for every retention policy:

- ``lru``: no hints, the cache's LRU alone;
- ``ttl``: every prefix pinned a fixed T seconds; T is tuned on this same run over a grid and
  only the best T is compared (an optimistic baseline);
- ``pdgraph``: the hint of :class:`hermes_sdk.prewarm.retention.GraphRetention`, keep for the T
  maximising P(run calls this node again within T) - c E[min(gap, T)] (0: drop first).

Reports prompt tokens reused (prefill saved), mean completion time, and PDGraph's gain over LRU
and over the tuned TTL at each cache size. Target: PDGraph saves >= 20% more prefill than LRU
at equal cache size and more than the tuned TTL. Writes ``benchmarks/results/retention.json``
(with the command) and ``retention.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hermes_sdk.policy import DemandModel
from hermes_sdk.prewarm.retention import FixedTTL, GraphRetention, NoRetention, RetentionPolicy
from hermes_sdk.sim import simulate
from hermes_sdk.sim.kv_des import KVCacheHook
from hermes_sdk.sim.workload import Workload, parse_workload
from hermes_sdk.sim.workloads.suites import paper_suite

RESULTS = Path(__file__).parent / "results" / "retention.json"
PNG = RESULTS.with_suffix(".png")
GAIN_TARGET = 0.20
COST_RATIO_PER_S = 0.01
TTL_GRID_S = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


def run_one(
    wl: Workload, capacity: int, make: Any, policy: str = "gittins"
) -> dict[str, float | int | str]:
    """Simulate ``wl`` with a cache of ``capacity`` tokens and the policy ``make(model)``."""
    hooks: list[KVCacheHook] = []

    def hook(model: DemandModel) -> KVCacheHook:
        retention: RetentionPolicy = make(model)
        hooks.append(KVCacheHook(wl.backends, capacity, retention))
        return hooks[-1]

    started = time.perf_counter()
    result = simulate(wl, policy, hook=hook)
    (kv,) = hooks
    stats = kv.stats()
    return {
        "retention": kv.policy.name,
        "capacity_tokens": capacity,
        "saved_tokens": stats.saved_tokens,
        "prompt_tokens": stats.prompt_tokens,
        "saved_fraction": stats.saved_tokens / max(stats.prompt_tokens, 1),
        "hits": stats.hits,
        "lookups": stats.lookups,
        "evictions": stats.evictions,
        "evicted_pinned": stats.evicted_pinned,
        "saved_prefill_s": kv.saved_s,
        "saved_tokens_by_app": dict(sorted(kv.saved_tokens_by_app.items())),
        "mean_completion_s": result.mean,
        "p95_completion_s": result.p95,
        "wall_s": time.perf_counter() - started,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    wl = parse_workload(
        paper_suite(args.load, args.seed, n_apps=args.n_apps, warmup_apps=args.warmup_apps)
    )
    rows: list[dict[str, Any]] = []
    summary = []
    for capacity in args.capacities:
        lru = run_one(wl, capacity, lambda m: NoRetention())
        ttls = [run_one(wl, capacity, lambda m, t=t: FixedTTL(t)) for t in args.ttl_grid]
        for row, t in zip(ttls, args.ttl_grid, strict=True):
            row["ttl_s"] = t
        best_ttl = max(ttls, key=lambda r: (r["saved_tokens"], -float(r["ttl_s"])))
        pd = run_one(wl, capacity, lambda m: GraphRetention(m, args.cost_ratio))  # type: ignore[arg-type]
        rows += [lru, *ttls, pd]
        gain_lru = pd["saved_tokens"] / max(lru["saved_tokens"], 1) - 1.0  # type: ignore[operator]
        gain_ttl = pd["saved_tokens"] / max(best_ttl["saved_tokens"], 1) - 1.0  # type: ignore[operator]
        summary.append(
            {
                "capacity_tokens": capacity,
                "lru_saved_tokens": lru["saved_tokens"],
                "best_ttl_s": best_ttl["ttl_s"],
                "best_ttl_saved_tokens": best_ttl["saved_tokens"],
                "pdgraph_saved_tokens": pd["saved_tokens"],
                "pdgraph_gain_vs_lru": gain_lru,
                "pdgraph_gain_vs_best_ttl": gain_ttl,
                "target_met": gain_lru >= GAIN_TARGET and gain_ttl > 0,
            }
        )
        print(
            f"capacity {capacity:>7} tokens: saved lru {lru['saved_tokens']}, "
            f"ttl {best_ttl['ttl_s']:g}s {best_ttl['saved_tokens']}, "
            f"pdgraph {pd['saved_tokens']} ({gain_lru:+.1%} vs lru, {gain_ttl:+.1%} vs ttl); "
            f"mean completion {lru['mean_completion_s']:.2f} / "
            f"{best_ttl['mean_completion_s']:.2f} / {pd['mean_completion_s']:.2f} s",
            flush=True,
        )
    return {
        "command": " ".join([".venv/bin/python", "benchmarks/bench_retention.py", *sys.argv[1:]]),
        "workload": {
            "suite": "paper",
            "load": args.load,
            "seed": args.seed,
            "n_apps": args.n_apps,
            "warmup_apps": args.warmup_apps,
            "scheduling_policy": "gittins",
        },
        "cost_ratio_per_s": args.cost_ratio,
        "ttl_grid_s": list(args.ttl_grid),
        "gain_target": GAIN_TARGET,
        "summary": summary,
        "rows": rows,
    }


def plot(data: dict[str, Any], path: Path) -> None:
    """Bars: prompt tokens reused per cache size and retention policy."""
    summary = data["summary"]
    labels = [f"{s['capacity_tokens'] // 1000}k" for s in summary]
    series = {
        "LRU": [float(s["lru_saved_tokens"]) for s in summary],
        "best fixed TTL": [float(s["best_ttl_saved_tokens"]) for s in summary],
        "PDGraph": [float(s["pdgraph_saved_tokens"]) for s in summary],
    }
    from plotting import figure, grouped_bars, save

    fig, axes = figure(1, 1, (8.0, 4.0), "Prefill saved by KV-cache retention (paper suite)")
    grouped_bars(
        axes[0],
        [f"cache {label} tokens" for label in labels],
        series,
        axis_label="prompt tokens reused (prefill saved)",
    )
    save(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    parser.add_argument("--load", type=float, default=0.85)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n-apps", type=int, default=1200)
    parser.add_argument("--warmup-apps", type=int, default=250)
    parser.add_argument("--cost-ratio", type=float, default=COST_RATIO_PER_S)
    parser.add_argument(
        "--capacities",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[4000, 8000, 16000],
        help="cache sizes in tokens, comma-separated",
    )
    parser.add_argument(
        "--ttl-grid",
        type=lambda s: tuple(float(x) for x in s.split(",")),
        default=TTL_GRID_S,
        help="fixed TTLs tried (seconds); the best one is the baseline",
    )
    from plotting import add_plot_only, redraw

    add_plot_only(parser, PNG, RESULTS)
    args = parser.parse_args()
    if args.plot_only:
        redraw(plot, RESULTS, PNG)
        return
    if args.quick:
        args.n_apps, args.warmup_apps, args.capacities = 200, 40, [8000]
    data = run(args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if not args.quick:
        RESULTS.write_text(json.dumps(data, indent=2) + "\n")
        plot(data, PNG)
    print(json.dumps(data["summary"], indent=2))


if __name__ == "__main__":
    main()
