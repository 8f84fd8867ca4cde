"""Change detection of a PDGraph (hermes_sdk.graph.drift), measured on the drift tests' generator.

* Detection delay: runs of the new behaviour until the first detection, per kind of change
  (2x LLM service, branch p 0.7 -> 0.4, loop law, fan-out width 2-4 -> 6-8), over seeds.
* Predicted mean remaining demand at START / new truth after k runs of the new behaviour, for
  the default graph (detection on), the same graph with detection off (the window alone, what
  the issue measured) and ``window=100``.
* False detections per node on stationary streams of 10,000 runs, over seeds, and the single
  stream's in-control run length of the CUSUM against its design value.

Writes benchmarks/results/drift_detector.json and drift_detector.png. Run: ``.venv/bin/python
benchmarks/bench_drift.py`` (about a minute).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.plotting import figure, save
from hermes_sdk import PDGraph, RunState
from hermes_sdk.graph.cusum import Cusum
from hermes_sdk.graph.drift import DEFAULT
from tests.graph.drift_generator import BASE, CHANGES, exact_mean_s, stream

OUT = Path(__file__).parent / "results"
CHANGE_AT = 2000
KS = (25, 50, 100, 200, 500)
SEEDS = range(10)


def _follow(kind: str, seed: int) -> dict[str, Any]:
    after = CHANGES[kind]
    graphs = {
        "detection": PDGraph("drift"),
        "window only": PDGraph("drift", drift_settings=None),
        "window=100": PDGraph("drift", window=100, drift_settings=None),
    }
    ratios: dict[str, dict[int, float]] = {name: {} for name in graphs}
    first: int | None = None
    truth = exact_mean_s(after)
    for i, path in enumerate(stream(BASE, after, CHANGE_AT, CHANGE_AT + max(KS), seed)):
        for g in graphs.values():
            g.observe(path)
        if first is None and i >= CHANGE_AT and graphs["detection"].changes:
            first = i + 1 - CHANGE_AT
        k = i + 1 - CHANGE_AT
        if k in KS:
            for name, g in graphs.items():
                ratios[name][k] = float(g.remaining_demand(RunState(), n=8000).mean()) / truth
    return {"delay_runs": first, "ratios": ratios}


def _stationary(seed: int) -> dict[str, int]:
    g = PDGraph("drift")
    for path in stream(BASE, BASE, 0, 10_000, seed):
        g.observe(path)
    return {node: g.changes.get(node, 0) for node in (*g.nodes, "START")}


def _run_length(seed: int, limit: int = 2_000_000) -> int:
    """Observations of N(0, 1) scores until a two-sided default CUSUM alarms (capped)."""
    rng = np.random.default_rng(seed)
    c, t = Cusum(DEFAULT.k, DEFAULT.threshold), 0
    while t < limit:
        for z in rng.standard_normal(10_000).tolist():
            t += 1
            if c.update(z) is not None:
                return t
    return limit


def main() -> None:
    follow = {kind: [_follow(kind, s) for s in SEEDS] for kind in CHANGES}
    stationary = [_stationary(s) for s in SEEDS]
    lengths = [_run_length(s) for s in range(8)]
    summary: dict[str, Any] = {}
    for kind, runs in follow.items():
        delays = [r["delay_runs"] for r in runs]
        summary[kind] = {
            "delay_runs": delays,
            "mean_ratio": {
                name: {k: float(np.mean([r["ratios"][name][k] for r in runs])) for k in KS}
                for name in runs[0]["ratios"]
            },
            "worst_abs_error_at_100": {
                name: float(max(abs(r["ratios"][name][100] - 1.0) for r in runs))
                for name in runs[0]["ratios"]
            },
        }
    false_total = sum(sum(s.values()) for s in stationary)
    result = {
        "settings": {
            "false_alarm_rate": DEFAULT.false_alarm_rate,
            "shift": DEFAULT.shift,
            "min_reference": DEFAULT.min_reference,
            "threshold_h": DEFAULT.threshold,
        },
        "change_at": CHANGE_AT,
        "seeds": len(SEEDS),
        "changes": summary,
        "stationary_false_detections": stationary,
        "stationary_false_per_node_10k_runs": false_total / (len(SEEDS) * 4),
        "max_false_one_node": max(max(s.values()) for s in stationary),
        "cusum_run_length_obs": lengths,
        "cusum_design_run_length_obs": 1.0 / DEFAULT.false_alarm_rate,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "drift_detector.json").write_text(json.dumps(result, indent=1) + "\n")
    fig, axes = figure(
        1,
        len(CHANGES),
        (4.0 * len(CHANGES), 3.4),
        "Predicted / true mean demand "
        "at START after k runs of the new behaviour (mean of 10 seeds)",
    )
    for ax, (kind, s) in zip(axes, summary.items(), strict=True):
        for name, by_k in s["mean_ratio"].items():
            ax.plot(list(by_k), list(by_k.values()), marker="o", label=name)
        ax.axhspan(0.9, 1.1, color="#ccc", alpha=0.4)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(list(KS), [str(k) for k in KS])
        ax.set_title(kind, fontsize=10)
        ax.set_xlabel("runs since the change")
        ax.legend(fontsize=7)
    save(fig, OUT / "drift_detector.png")
    print(
        json.dumps(
            {
                k: {"delay": v["delay_runs"], "worst@100": v["worst_abs_error_at_100"]}
                for k, v in summary.items()
            },
            indent=1,
        )
    )
    print(
        "false per node per 10k runs",
        result["stationary_false_per_node_10k_runs"],
        "max one node",
        result["max_false_one_node"],
        "run lengths",
        lengths,
    )


if __name__ == "__main__":
    main()
