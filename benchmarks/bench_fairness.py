"""Fairness across tenants and the starvation guard, measured in the simulator.

Two scenarios, each against a baseline measured in the same run on the same apps and arrivals:

* ``guard``: the workload suites at load 0.95, plain Gittins vs Gittins with the aging guard
  (``gittins_aging``), with FCFS and the clairvoyant ``srpt_oracle`` as references: mean, p99
  and the worst slowdown (completion / own standalone time), next to the lower bound no policy
  can beat on that run (:func:`hermes_sdk.sim.bounds.max_slowdown_lower_bound`).
* ``tenants``: the light suite's app mix sent by two tenants of weight 1, ``heavy`` at 10x the
  rate of ``light`` (together ~8.8x the engine's capacity): the engine's service split with and
  without fair sharing; then ``light`` alone with and without the wrapper (no change expected).

    .venv/bin/python benchmarks/bench_fairness.py [--quick] [--plot-only]

Writes ``benchmarks/results/fairness.json`` as ``{"command", "rows": [{"policy", "mean", "p99",
"max_slowdown", "tenant_share", ...}], "checks": {...}}`` and ``fairness.png`` (``--plot-only``
redraws the PNG from the JSON).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hermes_sdk.sim.fairness_runs import guard_checks, run_guard, run_tenants
from hermes_sdk.sim.workloads.spec import JsonValue

OUT = Path(__file__).parent / "results" / "fairness.json"
PNG = OUT.with_suffix(".png")


def checks(rows: list[dict[str, Any]]) -> dict[str, JsonValue]:
    """The issue's targets, measured."""
    out: dict[str, JsonValue] = {}
    fair = next(r for r in rows if r["scenario"] == "tenants" and r["policy"].endswith("+fair"))
    out["flood_min_share"] = min(fair["tenant_share"].values())
    out["flood_min_share_target"] = 0.45
    plain_alone, fair_alone = (r for r in rows if r["scenario"] == "light_alone")
    out["light_alone_mean_ratio"] = round(fair_alone["mean"] / plain_alone["mean"], 6)
    out.update(guard_checks(rows))
    out["max_slowdown_drop_target"] = 5.0
    out["mean_rise_target"] = 0.10
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small apps counts, one seed")
    from plotting import add_plot_only, redraw

    add_plot_only(parser, PNG, OUT)
    args = parser.parse_args()
    if args.plot_only:
        redraw(plot, OUT, PNG)
        return
    if args.quick:
        n_apps, warmup, seeds, suites = 400, 80, 1, ["light"]
    else:
        n_apps, warmup, seeds, suites = 1200, 250, 4, ["light", "paper"]
    started = time.perf_counter()

    def note(msg: str) -> None:
        print(f"{msg}: done", file=sys.stderr)

    rows: list[dict[str, Any]] = [*run_tenants("light", n_apps=n_apps * 2, warmup_apps=warmup * 2)]
    for suite in suites:
        seed_list = range(1, seeds + 1)
        rows += run_guard(suite, seeds=seed_list, n_apps=n_apps, warmup_apps=warmup, progress=note)
    result = {
        "command": "python benchmarks/bench_fairness.py " + shlex.join(sys.argv[1:]),
        "rows": rows,
        "checks": checks(rows),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    table = Table(title="fairness and starvation guard (completion times in s)")
    cols = ("scenario", "suite", "seed", "policy", "mean", "p99", "max slowdown", "bound", "share")
    for col in cols:
        table.add_column(col)
    for r in rows:
        share = ", ".join(f"{t} {s:.1%}" for t, s in r["tenant_share"].items())
        table.add_row(
            r["scenario"],
            r["suite"],
            str(r.get("seed", "-")),
            r["policy"],
            f"{r['mean']:.2f}",
            f"{r['p99']:.1f}",
            f"{r['max_slowdown']:.2f}",
            f"{r['max_slowdown_bound']:.2f}" if "max_slowdown_bound" in r else "-",
            share or "-",
        )
    console = Console()
    console.print(table)
    console.print(result["checks"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    plot(result, PNG)
    console.print(f"wrote {OUT} and {PNG}")


GUARD_POLICIES = ("gittins", "gittins_aging", "srpt_oracle")


def plot(result: dict[str, Any], path: Path) -> None:
    """Engine share per tenant with fair sharing off/on (left); per (suite, seed) the worst
    slowdown of the guard's policies next to the run's lower bound (right)."""
    from plotting import BASELINE, figure, grouped_bars, save

    rows = result["rows"]
    fig, (share_ax, guard_ax) = figure(
        1, 2, (13, 5.2), "Fairness and the starvation guard (simulator, same apps and arrivals)"
    )
    flood = [r for r in rows if r["scenario"] == "tenants"]
    tenants = sorted({t for r in flood for t in r["tenant_share"]})
    share_series = {
        ("fair sharing on" if r["policy"].endswith("+fair") else "fair sharing off"): [
            100 * r["tenant_share"].get(t, math.nan) for t in tenants
        ]
        for r in flood
    }
    target = result["checks"].get("flood_min_share_target")
    grouped_bars(
        share_ax,
        [f"{t}\n({'10x rate' if t == 'heavy' else '1x rate'})" for t in tenants],
        share_series,
        horizontal=False,
        axis_label="share of engine service (%)",
        title="Engine share per tenant, heavy floods at 10x (gittins)",
        fmt=lambda v: f"{v:.1f}%",
        targets=[(100 * target, f"target: min share >= {target:.0%}")] if target else [],
        legend="upper right",
    )
    share_ax.set_ylim(0, 112)
    guard = [r for r in rows if r["scenario"] == "guard"]
    runs = sorted({(r["suite"], r["seed"]) for r in guard})
    by_key = {(r["suite"], r["seed"], r["policy"]): r for r in guard}

    def slowdown(policy: str) -> list[float | None]:
        return [
            by_key[(s, k, policy)]["max_slowdown"] if (s, k, policy) in by_key else None
            for s, k in runs
        ]

    series: dict[str, list[float | None]] = {p: slowdown(p) for p in GUARD_POLICIES}
    bounds = {(r["suite"], r["seed"]): r.get("max_slowdown_bound") for r in guard}
    series["lower bound (no policy can beat)"] = [bounds[run] for run in runs]
    load = guard[0].get("load") if guard else None
    grouped_bars(
        guard_ax,
        [f"{s} seed {k}" for s, k in runs],
        series,
        log=True,
        axis_label="worst slowdown (completion / standalone time, log)",
        title="Worst slowdown per run" + (f" at load {load:g}" if load else ""),
        fmt=lambda v: f"{v:.1f}",
        colors={"lower bound (no policy can beat)": BASELINE},
        legend="lower right",
    )
    save(fig, path)


if __name__ == "__main__":
    main()
