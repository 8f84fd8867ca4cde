"""`hermes bench`: the workload suites over policies x loads x seeds, with tables and plots."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hermes_sdk.cli._app import app, console, err_console

if TYPE_CHECKING:  # the simulator (scipy, matplotlib) is imported when the command runs
    from hermes_sdk.sim.bench import BenchResult


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise typer.BadParameter(f"{what} is empty")
    return values


@app.command()
def bench(
    suite: Annotated[
        str, typer.Option(help="paper, light, all, or drift (apps that change mid-run).")
    ] = "all",
    loads: Annotated[
        str | None, typer.Option(help="Comma-separated LLM engine loads (0-1).")
    ] = None,
    policies: Annotated[str | None, typer.Option(help="Comma-separated policy names.")] = None,
    deadlines: Annotated[
        bool, typer.Option("--deadlines", help="Give 22% of runs deadlines; add edf and lstf.")
    ] = False,
    seeds: Annotated[int | None, typer.Option(min=1, help="Seeds per (suite, load).")] = None,
    n_apps: Annotated[int | None, typer.Option(min=10, help="Apps per simulation.")] = None,
    warmup_apps: Annotated[
        int | None, typer.Option(min=0, help="Apps excluded from metrics (learning warm-up).")
    ] = None,
    tightness: Annotated[
        str | None, typer.Option(help="Deadline factors of the EDF-vs-LSTF sweep; '' = none.")
    ] = None,
    tightness_load: Annotated[
        float | None, typer.Option(help="Load of the deadline-tightness sweep.")
    ] = None,
    no_learning: Annotated[
        bool, typer.Option("--no-learning", help="Skip the learning-quality report.")
    ] = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots.")] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Worker processes for the grid.")] = 1,
    quick: Annotated[
        bool, typer.Option("--quick", help="A small run of everything (< 1 minute).")
    ] = False,
    tenants: Annotated[
        bool,
        typer.Option(
            "--tenants", help="Fair-sharing scenario instead: two tenants, one sending 10x."
        ),
    ] = False,
    deadline_sweep: Annotated[
        bool,
        typer.Option(
            "--deadline-sweep",
            help="Deadline hit rate instead: SLO and per-run deadlines on 22%/100% of runs.",
        ),
    ] = False,
    laws: Annotated[
        str, typer.Option(help="--deadline-sweep laws: slo (per kind), run (per run).")
    ] = "slo,run",
    fractions: Annotated[
        str, typer.Option(help="--deadline-sweep shares of runs with a deadline.")
    ] = "0.22,1.0",
    slo_factor: Annotated[
        float, typer.Option(min=0.01, help="SLO = this x the kind's mean standalone time.")
    ] = 1.5,
    out: Annotated[Path, typer.Option(help="Directory for results.json and PNGs.")] = Path(
        "bench-results"
    ),
) -> None:
    """Run the workload suites over policies x loads x seeds; print tables, write JSON + PNG."""
    if tenants:
        _run_tenants("light" if suite == "all" else suite, quick, out)
        return
    if suite == "drift":
        from hermes_sdk.cli.bench_drift import run_drift_suite

        loads_ = _floats(loads, "--loads") if loads else None
        run_drift_suite(loads=loads_, seeds=seeds, n_apps=n_apps, quick=quick, out=out)
        return
    if deadline_sweep:
        from hermes_sdk.cli.bench_deadlines import run_deadline_sweep

        run_deadline_sweep(
            suite=suite,
            loads=_floats(loads, "--loads") if loads else None,
            policies=tuple(p.strip() for p in policies.split(",") if p.strip())
            if policies
            else None,
            laws=tuple(x.strip() for x in laws.split(",") if x.strip()),
            fractions=_floats(fractions, "--fractions"),
            seeds=seeds,
            n_apps=n_apps,
            warmup_apps=warmup_apps,
            slo_factor=slo_factor,
            quick=quick,
            out=out,
        )
        return
    from hermes_sdk.sim.bench import (
        BenchConfig,
        grid_size,
        run_bench,
        with_overrides,
        write_outputs,
    )
    from hermes_sdk.sim.workloads import SUITES

    base = BenchConfig.quick() if quick else BenchConfig()
    suites = tuple(SUITES) if suite == "all" else (suite,)
    if any(s not in SUITES for s in suites):
        err_console.print(f"[red]unknown suite {suite!r}; choose from {sorted(SUITES)} or all")
        raise typer.Exit(2)
    config = with_overrides(
        base,
        suites=suites,
        loads=_floats(loads, "--loads") if loads else None,
        policies=tuple(p.strip() for p in policies.split(",") if p.strip()) if policies else None,
        deadlines=deadlines or None,
        seeds=seeds,
        n_apps=n_apps,
        warmup_apps=warmup_apps,
        tightness=(_floats(tightness, "--tightness") if tightness else ())
        if tightness is not None
        else None,
        tightness_load=tightness_load,
        learning=False if no_learning else None,
        plots=False if no_plots else None,
        jobs=jobs,
    )
    if any(not 0.0 < x < 1.0 for x in config.loads):
        err_console.print("[red]--loads must be within (0, 1)")
        raise typer.Exit(2)
    command = "hermes " + shlex.join(sys.argv[1:])
    with Progress(
        TextColumn("[bold]bench"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=True,
    ) as progress:
        total = grid_size(config)
        task = progress.add_task("starting", total=total)
        done = [0]

        def step(desc: str) -> None:
            progress.update(task, advance=1, description=desc)
            done[0] += 1
            if not err_console.is_terminal:  # a log file: one line per finished job
                err_console.print(f"[{done[0]}/{total}] {desc}", highlight=False)

        result = run_bench(config, command, step=step)
    path = write_outputs(result, out)
    print_tables(result)
    console.print(f"wrote {path}" + (f" and {len(result.plots)} plots" if result.plots else ""))


def print_tables(result: BenchResult) -> None:
    """Per (suite, load) the policy table and the app-kind table, then the floor checks."""
    from hermes_sdk.cli.bench_tables import kind_table, summary_table
    from hermes_sdk.sim.bench import check_floors, summarize
    from hermes_sdk.sim.bench_grid import TIGHTNESS_POLICIES

    summary = summarize(result.rows)
    for suite, load in sorted({(s.suite, s.load) for s in summary}):
        console.print(summary_table(summary, suite, load))
        kinds = kind_table(summary, suite, load)
        if kinds is not None:
            console.print(kinds)
    if result.tightness:
        table = Table(title="deadline hit rate vs tightness (factor x standalone time)")
        for col in ("suite", "factor", *TIGHTNESS_POLICIES):
            table.add_column(col, justify="right")
        sweep: dict[tuple[str, float], dict[str, list[float]]] = {}
        for t in result.tightness:
            rate, factor = t["deadline_hit_rate"], t["factor"]
            if isinstance(rate, (int, float)) and isinstance(factor, (int, float)):
                key = (str(t["suite"]), float(factor))
                sweep.setdefault(key, {}).setdefault(str(t["policy"]), []).append(float(rate))
        for (s_name, factor), by_policy in sorted(sweep.items()):
            rates = [by_policy.get(p, []) for p in TIGHTNESS_POLICIES]
            table.add_row(
                s_name,
                f"{factor:g}",
                *["-" if not r else f"{sum(r) / len(r):.1%}" for r in rates],
            )
        console.print(table)
    floors = check_floors(summary, result.tightness)
    if floors:
        table = Table(
            title="floors (issues 9, 17, 28)", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
        )
        for col in ("suite", "load", "check", "measured", "limit", ""):
            table.add_column(col, no_wrap=True)
        for f in floors:
            table.add_row(
                f.suite,
                "-" if f.load is None else f"{f.load:g}",
                f.check,
                f"{f.value:.3f}",
                (">= " if f.at_least else "<= ") + f"{f.limit:g}",
                "[green]pass" if f.passed else "[red]MISS",
            )
        console.print(table)


def _run_tenants(suite: str, quick: bool, out: Path) -> None:
    """``--tenants``: Gittins with fair sharing off/on under a 10x flood, and the starvation
    guard at load 0.95 next to the run's worst-slowdown bound; writes tenants.json."""
    import json

    from hermes_sdk.cli.bench_tables import tenants_table
    from hermes_sdk.sim.fairness_runs import guard_checks, run_guard, run_tenants
    from hermes_sdk.sim.workloads import SUITES

    if suite not in SUITES:
        err_console.print(f"[red]unknown suite {suite!r}; choose from {sorted(SUITES)}")
        raise typer.Exit(2)
    n_apps = 600 if quick else 2400
    with console.status("fair sharing under a 10x flood..."):
        rows = run_tenants(suite, n_apps=n_apps, warmup_apps=n_apps // 5)
    with console.status("starvation guard at load 0.95...") as status:
        rows += run_guard(
            suite,
            n_apps=n_apps // 2,
            warmup_apps=n_apps // 10,
            progress=lambda msg: status.update(f"{msg} done"),
        )
    console.print(tenants_table(rows, suite))
    checks = guard_checks(rows)
    per_seed = checks[f"{suite}_per_seed"]
    assert isinstance(per_seed, dict)
    for seed, c in per_seed.items():
        assert isinstance(c, dict)
        console.print(
            f"guard, seed {seed}: worst slowdown {c['drop']}x lower (largest possible "
            f"{c['largest_possible_drop']}x, {c['gap_closed']:.0%} of the gap closed), "
            f"mean {c['mean_rise']:+.1%}"
        )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tenants.json"
    doc = {"command": "hermes " + shlex.join(sys.argv[1:]), "rows": rows, "checks": checks}
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    console.print(f"wrote {path}")
