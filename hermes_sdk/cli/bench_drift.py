"""`hermes bench --suite drift`: apps that change behaviour mid-run, online vs an oracle that
knows the change (see :mod:`hermes_sdk.sim.workloads.drift`)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from hermes_sdk.cli._app import console


def run_drift_suite(
    *,
    loads: tuple[float, ...] | None,
    seeds: int | None,
    n_apps: int | None,
    quick: bool,
    out: Path,
) -> None:
    """Run every drift scenario, print a table and write ``out/drift.json``."""
    from hermes_sdk.sim.workloads.drift import CHECKPOINTS, drift_report

    report = drift_report(
        loads=loads or (0.5,),
        seeds=tuple(range(1, (seeds or (1 if quick else 3)) + 1)),
        n_apps=n_apps or (1000 if quick else 3000),
        progress=lambda line: console.print(line),
    )
    table = Table(
        title="drift suite: Gittins mean completion (s) after the change, and the "
        "online graph's mean-demand error after k new runs"
    )
    for col in ("kind", "load", "seed", "online", "oracle", "ratio", *map(str, CHECKPOINTS)):
        table.add_column(col, justify="right")
    for row in report["rows"]:
        errors = row["mean_error"]
        table.add_row(
            row["kind"],
            f"{row['load']:g}",
            str(row["seed"]),
            f"{row['online_mean_s']:.1f}",
            f"{row['oracle_mean_s']:.1f}",
            f"{row['ratio']:.3f}",
            *(f"{errors[k]:.3f}" if k in errors else "-" for k in CHECKPOINTS),
        )
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "drift.json"
    path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    console.print(f"wrote {path}")
