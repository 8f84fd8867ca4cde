"""`hermes bench --deadline-sweep`: run the deadline sweep, print its table, write results.json."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from hermes_sdk.cli._app import console, err_console


def run_deadline_sweep(
    *,
    suite: str,
    loads: tuple[float, ...] | None,
    policies: tuple[str, ...] | None,
    laws: tuple[str, ...],
    fractions: tuple[float, ...],
    seeds: int | None,
    n_apps: int | None,
    warmup_apps: int | None,
    slo_factor: float,
    quick: bool,
    out: Path,
) -> None:
    """Run :func:`hermes_sdk.sim.bench_deadlines.run_sweep`; write ``out/results.json``."""
    from hermes_sdk.policy import POLICY_NAMES
    from hermes_sdk.sim.bench_deadlines import LAWS, DeadlineConfig, run_sweep, sweep_json
    from hermes_sdk.sim.workloads import SUITES

    suites = tuple(SUITES) if suite == "all" else (suite,)
    if any(s not in SUITES for s in suites):
        err_console.print(f"[red]unknown suite {suite!r}; choose from {sorted(SUITES)} or all")
        raise typer.Exit(2)
    if not laws or any(law not in LAWS for law in laws):
        err_console.print(f"[red]--laws must be some of {', '.join(LAWS)}")
        raise typer.Exit(2)
    if any(not 0.0 < f <= 1.0 for f in fractions):
        err_console.print("[red]--fractions must be within (0, 1]")
        raise typer.Exit(2)
    if policies and any(p not in POLICY_NAMES for p in policies):
        err_console.print(f"[red]--policies must be some of {', '.join(POLICY_NAMES)}")
        raise typer.Exit(2)
    base = DeadlineConfig(loads=(0.9,), seeds=1, n_apps=150, warmup_apps=30) if quick else None
    config = replace(
        base or DeadlineConfig(),
        suites=suites,
        laws=laws,
        fractions=fractions,
        slo_factor=slo_factor,
    )
    if loads is not None:
        config = replace(config, loads=loads)
    if policies is not None:
        config = replace(config, policies=policies)
    if seeds is not None:
        config = replace(config, seeds=seeds)
    if n_apps is not None:
        config = replace(config, n_apps=n_apps)
    if warmup_apps is not None:
        config = replace(config, warmup_apps=warmup_apps)
    if any(not 0.0 < x < 1.0 for x in config.loads):
        err_console.print("[red]--loads must be within (0, 1)")
        raise typer.Exit(2)
    if not 0 <= config.warmup_apps < config.n_apps:
        err_console.print("[red]need 0 <= --warmup-apps < --n-apps")
        raise typer.Exit(2)
    done = [0]

    def step(desc: str) -> None:
        done[0] += 1
        err_console.print(f"[{done[0]}] {desc}", highlight=False)

    rows = run_sweep(config, step=step)
    doc = sweep_json(config, "hermes " + shlex.join(sys.argv[1:]), rows)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print_cells(doc)
    console.print(f"wrote {path}")


def print_cells(doc: Mapping[str, Any]) -> None:
    """The sweep's cells: hit rate per policy, the paired differences and the bound."""
    cells = doc["cells"]
    assert isinstance(cells, list)
    names: list[str] = []
    for c in cells:
        for p in c["policies"]:
            if p not in names:
                names.append(p)
    versus = [("edf", "vs edf"), ("gittins_plain", "vs plain")]
    if any("vs_gittins_conditional" in c for c in cells):
        versus.append(("gittins_conditional", "vs cond"))
    table = Table(title="deadline hit rate (mean over seeds; diff = gittins - baseline, 95% CI)")
    for col in ("suite", "load", "law", "share", *names, "bound", *(v[1] for v in versus), "free"):
        table.add_column(col, justify="right")
    for c in cells:
        pol = c["policies"]

        def diff(key: str, cell: dict[str, object] = c) -> str:
            d = cell.get(key)
            if not isinstance(d, dict):
                return "-"
            lo, hi = d["ci95"]
            return f"{d['diff'] * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}]"

        ratio = c.get("no_deadline_mean_vs_plain")
        table.add_row(
            str(c["suite"]),
            f"{c['load']:g}",
            str(c["law"]),
            f"{c['fraction']:.0%}",
            *[f"{pol[p]['hit_rate']:.1%}" if p in pol else "-" for p in names],
            f"{c['bound']:.1%}",
            *(diff(f"vs_{base}") for base, _ in versus),
            "-" if ratio is None else f"{ratio:.3f}x",
        )
    console.print(table)
    checks = doc["checks"]
    assert isinstance(checks, list)
    missed = [c for c in checks if not c["passed"]]
    console.print(f"checks: {len(checks) - len(missed)}/{len(checks)} passed")
    for c in missed:
        console.print(
            f"  MISS {c['suite']} {c['load']:g} {c['law']} {c['fraction']:g}: {c['check']}"
            f" ({c['value']:+.4f})"
        )
