"""Which deadline targets are reachable at all (issue 28): ceilings per cell.

    .venv/bin/python benchmarks/bench_deadline_ceilings.py LAW [SUITE]
    .venv/bin/python benchmarks/bench_deadline_ceilings.py LAW [SUITE] --plot-only

LAW is slo or run, SUITE paper, light or all (default). Runs EDF, plain Gittins, the default
`gittins` and the clairvoyant deadline oracle (`deadline_oracle_w<weight>`, true sizes and
latencies, swept over its hit weight) on the deadline sweep's cells (loads 0.85 / 0.95, 22% and
100% of runs with a deadline, 1000 apps, 150 warm-up, seeds 1-3 paired) and writes
``results/deadlines/ceilings/LAW[_SUITE]/results.json``: the sweep's rows and cells, and per cell
the issue's target beside the standalone ceiling and the oracle frontier with a verdict
(:mod:`hermes_sdk.sim.deadline_ceilings`), plus ``ceilings.png``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "results" / "deadlines" / "ceilings"
ORACLE_WEIGHTS = (1, 2, 3, 5, 10, 100)
"""Hit weights of the oracle (100: deadline runs first, SRPT among them, hopeless ones last)."""
POLICIES = ("edf", "gittins_plain", "gittins", *(f"deadline_oracle_w{w}" for w in ORACLE_WEIGHTS))


def plot(doc: dict[str, Any], png: Path) -> None:
    """One panel per (suite, share): target, ceiling, `gittins` and the oracle's best within the
    5% no-deadline bound, by load."""
    from plotting import figure, grouped_bars, save, shared_legend

    records = doc["ceilings"]
    panels = sorted({(r["suite"], r["fraction"]) for r in records})
    law = records[0]["law"] if records else "?"
    fig, axes = figure(1, len(panels), (4.2 * len(panels), 3.6), f"reachable? ({law} deadlines)")
    for ax, (suite, fraction) in zip(axes, panels, strict=True):
        mine = sorted((r for r in records if (r["suite"], r["fraction"]) == (suite, fraction)),
                      key=lambda r: r["load"])  # fmt: skip

        def best(r: dict[str, Any]) -> float | None:
            for f in r["oracle_frontier"]:
                if f["policy"] == r["oracle_best_within_limit"]:
                    return float(f["hit_rate"])
            return None

        grouped_bars(
            ax,
            [f"load {r['load']:g}" for r in mine],
            {
                "target": [r["target"] for r in mine],
                "baseline: standalone ceiling": [r["ceiling"] for r in mine],
                "oracle (best within 5%)": [best(r) for r in mine],
                "gittins": [r.get("gittins", {}).get("hit_rate") for r in mine],
            },
            axis_label="share of deadline runs that met it",
            title=f"{suite}, {fraction:.0%} of runs with a deadline",
            horizontal=False,
            fmt=lambda v: f"{v:.2f}",
            legend=None,
        )
    shared_legend(fig, axes)
    save(fig, png)


def main(argv: list[str]) -> None:
    """Run (or redraw) one law's ceilings sweep."""
    from hermes_sdk.sim.bench_deadlines import DeadlineConfig, run_sweep, sweep_json
    from hermes_sdk.sim.deadline_ceilings import cell_ceilings, verdict_table

    args = [a for a in argv if not a.startswith("--")]
    if not args or args[0] not in ("slo", "run") or (len(args) > 1 and args[1] not in
                                                      ("paper", "light", "all")):  # fmt: skip
        sys.exit(f"usage: {sys.argv[0]} slo|run [paper|light|all] [--plot-only]")
    law, suite = args[0], args[1] if len(args) > 1 else "all"
    out = OUT / (law if suite == "all" else f"{law}_{suite}")
    if "--plot-only" in argv:
        from plotting import redraw

        redraw(plot, out / "results.json", out / "ceilings.png")
        return
    config = DeadlineConfig(
        suites=("paper", "light") if suite == "all" else (suite,),
        loads=(0.85, 0.95),
        laws=(law,),
        fractions=(0.22, 1.0),
        policies=POLICIES,
        seeds=3,
        n_apps=1000,
        warmup_apps=150,
    )
    started = time.perf_counter()
    rows = run_sweep(config, step=lambda desc: print(desc, file=sys.stderr, flush=True))
    doc = sweep_json(config, " ".join(["benchmarks/bench_deadline_ceilings.py", *argv]), rows)
    records = cell_ceilings(rows)
    doc["ceilings"] = list[Any](records)
    doc["table"] = list[Any](verdict_table(records))
    doc["wall_s"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print("\n".join(verdict_table(records)))
    plot(doc, out / "ceilings.png")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])
