"""The clairvoyant order beside FCFS and Gittins over seeds: ``results/hosted_oracle.json`` (+PNG).

Reads the full (not ``--quick``) gap-analysis files ``hosted_oracle.seedN.json`` that
``bench_hosted.py --seed N --ways hermes_fcfs,hermes_gittins,hermes_oracle_run`` writes (each
seed's three ways in one invocation, on fresh provider and gateway processes, under the bench
lock). Per seed: each way's mean completion over the runs all three completed, its ratio to
FCFS's, the same runs' floor (no wait at all) and, per way, the share of FCFS's wait above the
floor it keeps. Over seeds: each ratio's mean and 95% t interval (the ratios are paired within a
seed), and where the target (0.8x FCFS) lies against the oracle's interval.

Run: ``.venv/bin/python benchmarks/hosted_oracle_summary.py`` (no measurement; seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hosted import CONFIG_KEYS, RESULTS, _mean_ci, compare
from plotting import figure, grouped_bars, save

WAYS = ("hermes_fcfs", "hermes_gittins", "hermes_oracle_run")
TARGET = 0.8
"""The issue's target: Hermes Gittins' mean completion at most 0.8x Hermes FCFS's."""


def seed_row(doc: dict[str, Any]) -> dict[str, Any]:
    """One seed's paired means, ratios to FCFS, floor and kept wait."""
    args = argparse.Namespace(**{k: doc[k] for k in CONFIG_KEYS})
    analysis = compare({"seed": doc["seed"], "ways": {w: doc["ways"][w] for w in WAYS}}, args)
    mean = analysis["mean_completion_s"]
    floor = analysis["floor_mean_s"]
    fcfs = mean["hermes_fcfs"]
    return {
        "seed": doc["seed"],
        "paired_runs": analysis["paired_runs"],
        "mean_completion_s": mean,
        "floor_mean_s": floor,
        "oracle_vs_fcfs_mean": mean["hermes_oracle_run"] / fcfs,
        "gittins_vs_fcfs_mean": mean["hermes_gittins"] / fcfs,
        "gittins_vs_oracle_mean": mean["hermes_gittins"] / mean["hermes_oracle_run"],
        "floor_vs_fcfs_mean": floor / fcfs,
        "oracle_wait_vs_fcfs_wait_mean": (mean["hermes_oracle_run"] - floor) / (fcfs - floor),
        "gittins_wait_vs_fcfs_wait_mean": (mean["hermes_gittins"] - floor) / (fcfs - floor),
        "429s_seen_by_apps": analysis["429s_seen_by_apps"],
        "budget_use_saturation": analysis["budget_use_saturation"],
        "load_average_1m": {w: doc["ways"][w]["load_average_1m"] for w in WAYS},
    }


def summarize(out_dir: Path) -> dict[str, Any]:
    rows = []
    for path in sorted(out_dir.glob("hosted_oracle.seed*.json")):
        doc = json.loads(path.read_text())
        if doc.get("quick") or not set(WAYS) <= set(doc["ways"]):
            print(f"{path.name}: quick, or not the three ways: left out", file=sys.stderr)
            continue
        rows.append(seed_row(doc))
    keys = [k for k in rows[0] if k.endswith("_mean")]
    ratios = {k: _mean_ci([r[k] for r in rows]) for k in keys}
    oracle = ratios["oracle_vs_fcfs_mean"]
    return {
        "commands": [
            f"benchmarks/bench_hosted.py --seed {r['seed']} --ways {','.join(WAYS)}" for r in rows
        ],
        "seeds": [r["seed"] for r in rows],
        "ratios": ratios,
        "target_gittins_vs_fcfs_mean": TARGET,
        "oracle_interval_above_target": oracle["lo"] is not None and oracle["lo"] > TARGET,
        "oracle_mean_above_target": oracle["mean"] > TARGET,
        "seeds_oracle_at_or_below_target": [
            r["seed"] for r in rows if r["oracle_vs_fcfs_mean"] <= TARGET
        ],
        "per_seed": rows,
    }


def plot(doc: dict[str, Any], png: Path) -> None:
    rows = doc["per_seed"]
    cats = [f"seed {r['seed']}" for r in rows] + ["mean"]

    def series(key: str) -> list[float | None]:
        return [r[key] for r in rows] + [doc["ratios"][key]["mean"]]

    fig, axes = figure(
        1, 1, (8, 4.5), "Hosted API: mean completion / Hermes FCFS's (lower is better)"
    )
    grouped_bars(
        axes[0],
        cats,
        {
            "Gittins (stage rank)": series("gittins_vs_fcfs_mean"),
            "clairvoyant order": series("oracle_vs_fcfs_mean"),
            "baseline floor (no wait)": series("floor_vs_fcfs_mean"),
        },
        axis_label="x Hermes FCFS, runs all three ways completed",
        targets=[(TARGET, "target 0.8x")],
        legend="outside",
    )
    save(fig, png)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args()
    doc = summarize(args.out_dir)
    (args.out_dir / "hosted_oracle.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(doc, args.out_dir / "hosted_oracle.png")
    print(json.dumps(doc["ratios"], indent=1))


if __name__ == "__main__":
    main()
