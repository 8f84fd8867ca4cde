"""Deadline benchmark: `hermes bench --deadline-sweep`, results in benchmarks/results/deadlines/.

    .venv/bin/python benchmarks/bench_deadlines.py NAME [extra `hermes bench` options]
    .venv/bin/python benchmarks/bench_deadlines.py NAME --plot-only

NAME is slo, per_run, slo_load_0.7 or slo_lstf (see ``FULL``).

Runs deadline Gittins (`gittins`, the hit index with the slack cap; `gittins_queue`, the same plus
the queue-wide feasibility pass; `gittins_conditional`, the conditional index the hit index
replaced), plain Gittins (`gittins_plain`), EDF and FCFS on both suites
with SLO deadlines (1.5 x the kind's mean standalone time) or per-run ones (1.2/1.5/2 x the run's
own), 22% and 100% of runs carrying one, over seeds (paired), and writes
``NAME/results.json`` (with the exact command) and ``NAME/deadlines.png``: the hit rate per
policy next to the standalone bound no policy can beat.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "results" / "deadlines"
COMMON = [
    "--deadline-sweep", "--suite", "all", "--fractions", "0.22,1.0",
    "--n-apps", "1000", "--warmup-apps", "150",
]  # fmt: skip
FULL = {
    "slo": ["--laws", "slo", "--loads", "0.85,0.95", "--seeds", "3",
            "--policies", "fcfs,edf,gittins_plain,gittins_conditional,gittins,gittins_queue"],
    "per_run": ["--laws", "run", "--loads", "0.85,0.95", "--seeds", "3",
                "--policies", "fcfs,edf,gittins_plain,gittins_conditional,gittins,gittins_queue"],
    "slo_load_0.7": ["--laws", "slo", "--loads", "0.7", "--seeds", "3", "--policies",
                     "fcfs,edf,lstf,gittins_plain,gittins_conditional,gittins,gittins_queue"],
    "slo_lstf": ["--laws", "slo", "--loads", "0.85,0.95", "--seeds", "3",
                 "--policies", "edf,lstf"],
}  # fmt: skip
"""Output directory -> its sweep (SLO and per-run; load 0.7; LSTF beside EDF at the high loads)."""


def plot(doc: dict[str, Any], png: Path) -> None:
    """One panel per (suite, share of runs with a deadline): hit rate by load and policy."""
    from plotting import figure, grouped_bars, save, shared_legend

    cells = doc["cells"]
    panels = sorted({(c["suite"], c["fraction"]) for c in cells})
    order = ("gittins_queue", "gittins", "gittins_conditional", "gittins_plain", "edf", "lstf",
             "fcfs")  # fmt: skip
    policies = [p for p in order if any(p in c["policies"] for c in cells)]
    law = cells[0]["law"] if cells else "?"
    fig, axes = figure(
        1, len(panels), (4.2 * len(panels), 3.6), f"deadline hit rate ({law} deadlines)"
    )
    for ax, (suite, fraction) in zip(axes, panels, strict=True):
        mine = sorted((c for c in cells if (c["suite"], c["fraction"]) == (suite, fraction)),
                      key=lambda c: c["load"])  # fmt: skip
        series: dict[str, list[float | None]] = {
            p: [c["policies"].get(p, {}).get("hit_rate") for c in mine] for p in policies
        }
        series["baseline: standalone bound"] = [c["bound"] for c in mine]
        grouped_bars(
            ax,
            [f"load {c['load']:g}" for c in mine],
            series,
            axis_label="share of deadline runs that met it",
            title=f"{suite}, {fraction:.0%} of runs with a deadline",
            horizontal=False,
            fmt=lambda v: f"{v:.2f}",
            legend=None,
        )
    shared_legend(fig, axes)
    save(fig, png)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if len(sys.argv) < 2 or sys.argv[1] not in FULL:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(FULL)}}} [--plot-only | hermes bench options]")
    name, extra = sys.argv[1], sys.argv[2:]
    out = OUT / name
    if "--plot-only" in extra:
        from plotting import redraw

        redraw(plot, out / "results.json", out / "deadlines.png")
        sys.exit(0)
    from hermes_sdk.cli import main

    sys.argv = ["hermes", "bench", *COMMON, *FULL[name], *extra, "--out", os.path.relpath(out)]
    try:
        main()
    finally:
        import json

        results = out / "results.json"
        if results.exists():
            plot(json.loads(results.read_text(encoding="utf-8")), out / "deadlines.png")
