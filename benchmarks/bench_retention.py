"""KV-cache retention benchmark: prefill saved by LRU, a tuned fixed TTL and PDGraph hints.

Run: ``.venv/bin/python benchmarks/bench_retention.py [--quick] [--plot-only]``. The paper suite
(``hermes_sdk.sim.workloads.suites.paper_suite``, load 0.85, online learning, policy gittins)
runs in the discrete-event simulator with a prefix KV cache of fixed capacity on its LLM engine
(:mod:`hermes_sdk.sim.kv_des`); the same apps and arrivals for every retention policy. Per seed
an unbounded cache first measures the ceiling (prefill any policy could save) and the *live
working set*: at each instant, the tokens of cached prefixes whose run will still read them;
its peak ``W`` sets the cache sizes swept, as fractions of ``W``. At each size:

- ``lru``: no hints, the cache's LRU alone;
- ``ttl``: every prefix pinned a fixed T seconds; T is tuned on this same run over a grid and
  only the best T is compared (an optimistic baseline);
- ``pdgraph_ttl``: the PDGraph TTL hint (:class:`hermes_sdk.prewarm.retention.GraphRetention`
  with ``value_eviction=False``): keep for the T maximising P(back within T) - c E[min(gap, T)],
  c fixed (what is sent to stacks that take a TTL);
- ``pdgraph``: the PDGraph reuse law, the cache evicting the entry of lowest reuse density
  (reused tokens per held token-second at its age, :mod:`hermes_sdk.prewarm.reuse_law`);
- ``path_oracle`` (a reference, not a baseline): the same eviction with each run's true gap
  (:class:`hermes_sdk.sim.kv_des.PathOracleRetention`), what perfect knowledge of the run's
  path could add; ``ceiling``: the unbounded cache (no policy saves more).

and the offline bounds at the same size on LRU's recorded trace (:mod:`hermes_sdk.sim.
cache_bounds`): ``offline_opt`` (the clairvoyant optimum, solved exactly), ``pfoo_lower`` /
``pfoo_upper`` and ``fits`` (reads of the prefixes no larger than the cache), plus
``offline_opt_pdgraph`` (the optimum on PDGraph's own trace); every run is checked to save no
more than the optimum of its own trace.

Reports prompt tokens reused (prefill saved) and each policy's gain over LRU with a 95% paired
CI over seeds (t on the per-seed gains; every policy sees the same apps per seed). Target:
PDGraph saves >= 20% more prefill than LRU at equal cache size, and more than the tuned TTL;
restated against the bound (``restated_target_met``): >= 20% on every seed where the optimum
allows >= 25%, and elsewhere PDGraph's share of the gap LRU -> optimum.
Writes ``benchmarks/results/retention.json`` (with the command) and ``retention.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from hermes_sdk.policy import DemandModel
from hermes_sdk.prewarm.retention import FixedTTL, GraphRetention, NoRetention, RetentionPolicy
from hermes_sdk.sim import simulate
from hermes_sdk.sim.cache_bounds import offline_optimum, pfoo_lower, pfoo_upper, segments
from hermes_sdk.sim.kv_cache import PrefixKVCache
from hermes_sdk.sim.kv_des import KVCacheHook, PathOracleRetention, QueuedCall
from hermes_sdk.sim.workload import Workload, parse_workload
from hermes_sdk.sim.workloads.suites import paper_suite

RESULTS = Path(__file__).parent / "results" / "retention.json"
PNG = RESULTS.with_suffix(".png")
GAIN_TARGET = 0.20
COST_RATIO_PER_S = 0.01
TTL_GRID_S = (1.0, 3.0, 10.0, 30.0)
FRACTIONS = (0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5)
UNBOUNDED = 10**12
POLICIES = ("lru", "ttl", "pdgraph_ttl", "pdgraph", "path_oracle", "ceiling")
BOUNDS = ("pfoo_lower", "offline_opt", "pfoo_upper", "fits", "offline_opt_pdgraph")
OPT_TIME_LIMIT_S = 60.0
ROOM_TARGET = 0.25
"""Where the offline optimum allows at least this gain over LRU, PDGraph must reach the target."""

Make = Callable[[DemandModel], RetentionPolicy]


class _LiveLog(PrefixKVCache):
    """An unbounded cache that logs (store seconds, tokens, last read seconds) per stored prefix."""

    def __init__(self) -> None:
        super().__init__(UNBOUNDED)
        self.now_s = 0.0
        self.open: dict[str, list[float]] = {}
        self.closed: list[list[float]] = []

    def lookup(self, key: str, prompt_tokens: int, *, hold_density: float = 0.0) -> int:
        saved = super().lookup(key, prompt_tokens, hold_density=hold_density)
        if saved > 0 and key in self.open:
            self.open[key][2] = self.now_s
        return saved

    def store(self, key: str, tokens: int, now_s: float, *args: Any, **kwargs: Any) -> bool:
        if key in self.open:
            self.closed.append(self.open.pop(key))
        self.open[key] = [now_s, float(tokens), -math.inf]
        return super().store(key, tokens, now_s, *args, **kwargs)


class _LiveHook(KVCacheHook):
    def request_starting(self, req: QueuedCall, t: float) -> None:
        for cache in self.caches.values():
            assert isinstance(cache, _LiveLog)
            cache.now_s = t
        super().request_starting(req, t)


def live_working_set(wl: Workload) -> dict[str, Any]:
    """Unbounded-cache run: prefill saved (the ceiling) and the live working set's peak, mean
    and 99th percentile in time (tokens of prefixes stored and still to be read)."""
    hooks: list[KVCacheHook] = []

    def hook(model: DemandModel) -> KVCacheHook:
        hooks.append(_LiveHook(wl.backends, UNBOUNDED, NoRetention()))
        hooks[-1].caches = {name: _LiveLog() for name in hooks[-1].caches}
        return hooks[-1]

    row = _measure(wl, UNBOUNDED, hook, "ceiling")
    events: list[tuple[float, float]] = []
    for cache in hooks[0].caches.values():
        assert isinstance(cache, _LiveLog)
        for start, tokens, last in [*cache.closed, *cache.open.values()]:
            if last > start:
                events += [(start, tokens), (last, -tokens)]
    events.sort()
    times = np.array([t for t, _ in events])
    live = np.cumsum([d for _, d in events])
    span = np.diff(times, append=times[-1]) if times.size else np.zeros(0)
    order = np.argsort(live)
    cum = np.cumsum(span[order]) / max(float(span.sum()), 1e-12)
    p99 = float(live[order][min(int(np.searchsorted(cum, 0.99)), live.size - 1)])
    return {
        **row,
        "live_peak_tokens": float(live.max()) if live.size else 0.0,
        "live_mean_tokens": float((live * span).sum() / max(float(span.sum()), 1e-12)),
        "live_p99_tokens": p99,
    }


def _measure(
    wl: Workload, capacity: int, hook: Callable[[DemandModel], KVCacheHook], name: str
) -> dict[str, Any]:
    hooks: list[KVCacheHook] = []

    def recording(model: DemandModel) -> KVCacheHook:
        hooks.append(hook(model))
        return hooks[-1]

    started = time.perf_counter()
    result = simulate(wl, "gittins", hook=recording)
    (kv,) = hooks
    st = kv.stats()
    return {
        **({} if capacity >= UNBOUNDED else {"offline": offline_bounds(kv, capacity)}),
        "retention": name,
        "capacity_tokens": capacity,
        "saved_tokens": st.saved_tokens,
        "prompt_tokens": st.prompt_tokens,
        "saved_fraction": st.saved_tokens / max(st.prompt_tokens, 1),
        "hits": st.hits,
        "lookups": st.lookups,
        "evictions": st.evictions,
        "evicted_pinned": st.evicted_pinned,
        "saved_tokens_by_app": dict(sorted(kv.saved_tokens_by_app.items())),
        "mean_completion_s": result.mean,
        "p95_completion_s": result.p95,
        "wall_s": time.perf_counter() - started,
    }


def offline_bounds(kv: KVCacheHook, capacity: int) -> dict[str, Any]:
    """The offline bounds (:mod:`hermes_sdk.sim.cache_bounds`) on the trace this run's caches
    saw, summed over backends: PFOO-L <= OPT <= PFOO-U, and ``fits``, the reads of prefixes no
    larger than the cache (what a cache of this size could save if it never had to evict)."""
    out: dict[str, Any] = dict.fromkeys(
        ("pfoo_lower", "offline_opt", "opt_bound", "pfoo_upper", "fits"), 0.0
    )
    out["opt_optimal"] = True
    for trace in kv.traces.values():
        seg = segments(trace)
        opt = offline_optimum(seg, capacity, OPT_TIME_LIMIT_S)
        out["pfoo_lower"] += pfoo_lower(seg, capacity)[0]
        out["offline_opt"] += opt.value
        out["opt_bound"] += opt.bound
        out["opt_optimal"] = out["opt_optimal"] and opt.optimal
        out["pfoo_upper"] += pfoo_upper(seg, capacity)
        out["fits"] += int(seg.value[seg.size <= capacity].sum())
    return out


def run_one(wl: Workload, capacity: int, make: Make) -> dict[str, Any]:
    """Simulate ``wl`` with a cache of ``capacity`` tokens and the policy ``make(model)``."""

    names: list[str] = []

    def hook(model: DemandModel) -> KVCacheHook:
        kv = KVCacheHook(wl.backends, capacity, make(model))
        names.append(kv.policy.name)
        return kv

    row = _measure(wl, capacity, hook, "")
    row["retention"] = names[0]
    return row


def paired_ci(gains: Sequence[float]) -> tuple[float, float, float]:
    """Mean of per-seed gains and its 95% t interval (the mean twice with one seed)."""
    arr = np.asarray(gains, dtype=np.float64)
    mean = float(arr.mean())
    if arr.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, arr.size - 1) * arr.std(ddof=1) / math.sqrt(arr.size))
    return mean, mean - half, mean + half


def run_seed(args: argparse.Namespace, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ceiling and every policy at every fraction of the live peak, for one seed."""
    wl = parse_workload(
        paper_suite(args.load, seed, n_apps=args.n_apps, warmup_apps=args.warmup_apps)
    )
    ceiling = live_working_set(wl)
    ceiling["seed"] = seed
    rows: list[dict[str, Any]] = []
    for fraction in args.fractions:
        capacity = max(1, round(fraction * ceiling["live_peak_tokens"]))
        point = {"seed": seed, "fraction": fraction, "capacity_tokens": capacity}
        lru = run_one(wl, capacity, lambda m: NoRetention())
        ttls = [run_one(wl, capacity, lambda m, t=t: FixedTTL(t)) for t in args.ttl_grid]
        for row, t in zip(ttls, args.ttl_grid, strict=True):
            row["ttl_s"] = t
        best = max(ttls, key=lambda r: (r["saved_tokens"], -float(r["ttl_s"])))
        pd_ttl = run_one(
            wl, capacity, lambda m: GraphRetention(m, args.cost_ratio, value_eviction=False)
        )
        pd = run_one(wl, capacity, lambda m: GraphRetention(m, args.cost_ratio))
        oracle = run_one(wl, capacity, lambda m: PathOracleRetention())
        for row in (lru, *ttls, pd_ttl, pd, oracle):
            rows.append({**point, **row})
            # every policy's cache is one schedule on its own trace: it cannot beat that optimum
            if row["saved_tokens"] > row["offline"]["opt_bound"] + 1e-6:
                raise AssertionError(f"{row['retention']} beat the offline bound: {row}")
        base = max(lru["saved_tokens"], 1)
        saved = {
            "lru": lru["saved_tokens"],
            "ttl": best["saved_tokens"],
            "pdgraph_ttl": pd_ttl["saved_tokens"],
            "pdgraph": pd["saved_tokens"],
            "path_oracle": oracle["saved_tokens"],
            "ceiling": ceiling["saved_tokens"],
            **{k: lru["offline"][k] for k in BOUNDS[:-1]},
            "offline_opt_pdgraph": pd["offline"]["offline_opt"],
        }
        gap = saved["offline_opt"] - lru["saved_tokens"]
        rows.append(
            {
                **point,
                "retention": "point",
                "best_ttl_s": best["ttl_s"],
                "saved_tokens": saved,
                "gain_vs_lru": {k: v / base - 1.0 for k, v in saved.items()},
                "pdgraph_gain_vs_best_ttl": pd["saved_tokens"] / max(best["saved_tokens"], 1) - 1,
                "opt_optimal": lru["offline"]["opt_optimal"],
                "pdgraph_share_of_opt_gap": (pd["saved_tokens"] - lru["saved_tokens"]) / gap
                if gap > 0
                else None,
            }
        )
        print(
            f"seed {seed} {fraction:>5.2f} W = {capacity:>6} tokens: saved "
            + ", ".join(f"{k} {v:,.0f}" for k, v in saved.items())
            + f"; pdgraph {saved['pdgraph'] / base - 1:+.1%} vs lru (offline opt "
            f"{saved['offline_opt'] / base - 1:+.1%}, ceiling {saved['ceiling'] / base - 1:+.1%}),"
            f" best ttl {best['ttl_s']:g} s",
            flush=True,
        )
    return ceiling, rows


def summarise(points: list[dict[str, Any]], fractions: Sequence[float]) -> list[dict[str, Any]]:
    """Per fraction: mean capacity, mean saved tokens and the paired gain CIs over seeds."""
    out = []
    for fraction in fractions:
        at = [p for p in points if p["fraction"] == fraction]
        gains = {k: paired_ci([p["gain_vs_lru"][k] for p in at]) for k in (*POLICIES, *BOUNDS)}
        vs_ttl = paired_ci([p["pdgraph_gain_vs_best_ttl"] for p in at])
        shares = [p["pdgraph_share_of_opt_gap"] for p in at]
        finite = [x for x in shares if x is not None]
        room = [p for p in at if p["gain_vs_lru"]["offline_opt"] >= ROOM_TARGET]
        out.append(
            {
                "fraction_of_live_peak": fraction,
                "capacity_tokens_mean": float(np.mean([p["capacity_tokens"] for p in at])),
                "seeds": len(at),
                "saved_tokens_mean": {
                    k: float(np.mean([p["saved_tokens"][k] for p in at]))
                    for k in (*POLICIES, *BOUNDS)
                },
                "gain_vs_lru": {k: {"mean": g[0], "ci95": [g[1], g[2]]} for k, g in gains.items()},
                "pdgraph_gain_vs_best_ttl": {"mean": vs_ttl[0], "ci95": [vs_ttl[1], vs_ttl[2]]},
                "best_ttl_s": [p["best_ttl_s"] for p in at],
                "target_met": gains["pdgraph"][1] >= GAIN_TARGET and vs_ttl[1] > 0,
                "opt_optimal": all(p["opt_optimal"] for p in at),
                "pdgraph_share_of_opt_gap": shares,
                "pdgraph_share_of_opt_gap_mean": float(np.mean(finite)) if finite else None,
                "seeds_opt_allows_target": [p["seed"] for p in room],
                "restated_target_met": (
                    all(p["gain_vs_lru"]["pdgraph"] >= GAIN_TARGET for p in room) if room else None
                ),
            }
        )
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every seed, then the summary."""
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    ceilings, rows = [], []
    for seed in args.seeds:
        ceiling, seed_rows = run_seed(args, seed)
        ceilings.append(ceiling)
        rows += seed_rows
    points = [r for r in rows if r["retention"] == "point"]
    return {
        "command": " ".join([".venv/bin/python", "benchmarks/bench_retention.py", *sys.argv[1:]]),
        "workload": {
            "suite": "paper",
            "load": args.load,
            "seeds": list(args.seeds),
            "n_apps": args.n_apps,
            "warmup_apps": args.warmup_apps,
            "scheduling_policy": "gittins",
        },
        "cost_ratio_per_s": args.cost_ratio,
        "ttl_grid_s": list(args.ttl_grid),
        "fractions_of_live_peak": list(args.fractions),
        "gain_target": GAIN_TARGET,
        "wall_s": time.perf_counter() - started,
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "ceilings": ceilings,
        "summary": summarise(points, args.fractions),
        "rows": rows,
    }


def plot(data: dict[str, Any], path: Path) -> None:
    """Left: share of prompt tokens reused vs cache size; right: gain over LRU with CIs (the
    unbounded cache only on the left: its ratio to a tiny LRU is off any useful scale), with
    the offline optimum at the same size (no policy can save more on LRU's trace)."""
    from plotting import TARGET, figure, save, shared_legend

    summary = data["summary"]
    xs = [s["fraction_of_live_peak"] for s in summary]
    prompt = float(np.mean([c["prompt_tokens"] for c in data["ceilings"]]))
    fig, (left, right) = figure(
        1, 2, (11.0, 4.2), "KV-cache retention on the paper suite (prefill saved)"
    )
    labels = {
        "lru": "LRU",
        "ttl": "best fixed TTL",
        "pdgraph_ttl": "PDGraph TTL (fixed c)",
        "pdgraph": "PDGraph reuse density",
        "path_oracle": "true-path oracle",
        "ceiling": "unbounded cache",
        "offline_opt": "offline optimum, same size",
    }
    for i, (key, label) in enumerate(labels.items()):
        color = "black" if key == "offline_opt" else f"C{i}"
        ys = [s["saved_tokens_mean"][key] / prompt for s in summary]
        style = "--" if key in ("ceiling", "path_oracle", "offline_opt") else "-"
        left.plot(xs, ys, style, marker="o", label=label, color=color)
        if key not in ("lru", "ceiling"):
            gain = [100 * s["gain_vs_lru"][key]["mean"] for s in summary]
            low = [100 * s["gain_vs_lru"][key]["ci95"][0] for s in summary]
            high = [100 * s["gain_vs_lru"][key]["ci95"][1] for s in summary]
            right.plot(xs, gain, style, marker="o", label=label, color=color)
            if key == "pdgraph":
                right.fill_between(xs, low, high, alpha=0.2, color=color)
    right.axhline(100 * data["gain_target"], color=TARGET, linestyle=":", label="+20% target")
    right.set_yscale("symlog", linthresh=10)
    right.set_ylim(-300, 1000)
    left.set_xlabel("cache size / peak live working set")
    right.set_xlabel("cache size / peak live working set")
    left.set_ylabel("share of prompt tokens reused")
    right.set_ylabel("prefill saved vs LRU (%, 95% paired CI)")
    shared_legend(fig, [left, right])
    save(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    parser.add_argument("--load", type=float, default=0.85)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3])
    parser.add_argument("--n-apps", type=int, default=1200)
    parser.add_argument("--warmup-apps", type=int, default=250)
    parser.add_argument("--cost-ratio", type=float, default=COST_RATIO_PER_S)
    parser.add_argument(
        "--fractions",
        type=lambda s: [float(x) for x in s.split(",")],
        default=list(FRACTIONS),
        help="cache sizes as fractions of the peak live working set, comma-separated",
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
        args.n_apps, args.warmup_apps, args.seeds, args.fractions = 200, 40, [1], [0.5]
    data = run(args)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(data, indent=2) + "\n")
        plot(data, PNG)
    print(json.dumps(data["summary"], indent=2))


if __name__ == "__main__":
    main()
