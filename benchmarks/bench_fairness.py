"""Fairness across tenants and the starvation guard, measured in the simulator.

Two scenarios, each against a baseline measured in the same run on the same apps and arrivals:

* ``guard``: the workload suites at load 0.95, plain Gittins vs Gittins with the aging guard
  (``gittins_aging``), with FCFS and the clairvoyant ``srpt_oracle`` as references: mean, p99
  and the worst slowdown (completion / own standalone time), next to the lower bound no policy
  can beat on that run (:func:`hermes_sdk.sim.bounds.max_slowdown_lower_bound`).
* ``tenants``: the light suite's app mix sent by two tenants of weight 1, ``heavy`` at 10x the
  rate of ``light`` (together ~8.8x the engine's capacity): the engine's service split with and
  without fair sharing; then ``light`` alone with and without the wrapper (no change expected).

    .venv/bin/python benchmarks/bench_fairness.py [--quick]

Writes ``benchmarks/results/fairness.json`` as ``{"command", "rows": [{"policy", "mean", "p99",
"max_slowdown", "tenant_share", ...}], "checks": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hermes_sdk.sim import simulate
from hermes_sdk.sim.bench import run_tenants
from hermes_sdk.sim.bounds import max_slowdown_lower_bound
from hermes_sdk.sim.workloads import SUITES
from hermes_sdk.sim.workloads.spec import JsonValue

OUT = Path(__file__).parent / "results" / "fairness.json"
GUARD_POLICIES = ("gittins", "gittins_aging", "srpt_oracle", "fcfs")


def _row(scenario: str, suite: str, label: str, result: Any, **extra: JsonValue) -> dict[str, Any]:
    share = result.tenant_share("llm")
    return {
        "scenario": scenario,
        "suite": suite,
        "policy": label,
        "n": int(result.n),
        "mean": round(float(result.mean), 3),
        "p99": round(float(result.p99), 3),
        "max_slowdown": round(float(result.slowdowns.max()), 3),
        "mean_slowdown": round(float(result.mean_slowdown), 3),
        "tenant_share": {t: round(s, 4) for t, s in share.items()},
        "wall_s": round(float(result.wall_s), 2),
        **extra,
    }


def guard_rows(suites: list[str], n_apps: int, warmup: int, seeds: int) -> list[dict[str, Any]]:
    """Gittins vs Gittins + aging at load 0.95 on each suite (online learning), with references
    and the run's worst-slowdown lower bound."""
    rows = []
    for suite in suites:
        for seed in range(1, seeds + 1):
            wl = SUITES[suite](load=0.95, seed=seed, n_apps=n_apps, warmup_apps=warmup)
            bound = round(max_slowdown_lower_bound(wl).value, 3)
            for policy in GUARD_POLICIES:
                r = simulate(wl, policy)
                rows.append(
                    _row("guard", suite, policy, r, load=0.95, seed=seed, max_slowdown_bound=bound)
                )
                print(f"guard {suite} seed {seed} {policy}: done", file=sys.stderr)
    return rows


def tenant_rows(n_apps: int, warmup: int) -> list[dict[str, Any]]:
    """Fair sharing off vs on under a 10x flood; the light tenant alone with and without it
    (the same code as ``hermes bench --tenants``)."""
    rows = [dict(r) for r in run_tenants("light", n_apps=n_apps, warmup_apps=warmup)]
    for r in rows:
        r["scenario"] = {"flood": "tenants", "alone": "light_alone"}[str(r["scenario"])]
    print("tenants: done", file=sys.stderr)
    return rows


def checks(rows: list[dict[str, Any]]) -> dict[str, JsonValue]:
    """The issue's targets, measured."""
    out: dict[str, JsonValue] = {}
    fair = next(r for r in rows if r["scenario"] == "tenants" and r["policy"].endswith("+fair"))
    out["flood_min_share"] = min(fair["tenant_share"].values())
    out["flood_min_share_target"] = 0.45
    plain_alone, fair_alone = (r for r in rows if r["scenario"] == "light_alone")
    out["light_alone_mean_ratio"] = round(fair_alone["mean"] / plain_alone["mean"], 6)
    for suite in sorted({r["suite"] for r in rows if r["scenario"] == "guard"}):
        g = [r for r in rows if r["scenario"] == "guard" and r["suite"] == suite]
        plain = {r["seed"]: r for r in g if r["policy"] == "gittins"}
        aged = {r["seed"]: r for r in g if r["policy"] == "gittins_aging"}
        worst_plain = max(r["max_slowdown"] for r in plain.values())
        worst_aged = max(r["max_slowdown"] for r in aged.values())
        mean_plain = sum(r["mean"] for r in plain.values()) / len(plain)
        mean_aged = sum(r["mean"] for r in aged.values()) / len(aged)
        out[f"{suite}_max_slowdown_drop"] = round(worst_plain / worst_aged, 3)
        out[f"{suite}_mean_rise"] = round(mean_aged / mean_plain - 1.0, 4)
        per_seed: dict[str, JsonValue] = {}
        for seed, p in sorted(plain.items()):
            a, bound = aged[seed], p["max_slowdown_bound"]
            per_seed[str(seed)] = {
                "drop": round(p["max_slowdown"] / a["max_slowdown"], 3),
                "mean_rise": round(a["mean"] / p["mean"] - 1.0, 4),
                "largest_possible_drop": round(p["max_slowdown"] / bound, 3),
                "gap_closed": round(
                    (p["max_slowdown"] - a["max_slowdown"]) / max(p["max_slowdown"] - bound, 1e-9),
                    3,
                ),
            }
        out[f"{suite}_per_seed"] = per_seed
    out["max_slowdown_drop_target"] = 5.0
    out["mean_rise_target"] = 0.10
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small apps counts, one seed")
    args = parser.parse_args()
    if args.quick:
        n_apps, warmup, seeds, suites = 400, 80, 1, ["light"]
    else:
        n_apps, warmup, seeds, suites = 1200, 250, 4, ["light", "paper"]
    started = time.perf_counter()
    rows = tenant_rows(n_apps * 2, warmup * 2) + guard_rows(suites, n_apps, warmup, seeds)
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
    console.print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
