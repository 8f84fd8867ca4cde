"""`hermes sim`: run one policy over a workload file in the discrete-event simulator."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from hermes_sdk.cli._app import app, console, err_console
from hermes_sdk.errors import ConfigError
from hermes_sdk.policy import POLICY_NAMES

if TYPE_CHECKING:  # the simulator (scipy) is imported when the command runs
    from hermes_sdk.sim import SimResult


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}{unit}"


def _table(result: SimResult, workload: str) -> Table:
    table = Table(title=f"hermes sim: {workload} / {result.policy} ({result.learning})")
    for column in ("app", "n", "mean s", "p50 s", "p95 s", "p99 s"):
        table.add_column(column, justify="left" if column == "app" else "right")
    table.add_row(
        "[bold]all[/]",
        str(result.n),
        _fmt(result.mean),
        _fmt(result.p50),
        _fmt(result.p95),
        _fmt(result.p99),
    )
    for name, stats in result.per_app.items():
        table.add_row(name, str(stats.n), _fmt(stats.mean), "", _fmt(stats.p95), "")
    hit = result.deadline_hit_rate
    table.caption = (
        f"deadline hit rate {'-' if hit is None else f'{hit:.1%}'} of {result.n_deadline}"
        f" | utilisation {result.utilization:.1%}"
        f" | cold wait/app {result.cold_wait.app_mean_s:.3f} s"
        f" | Little's law error {result.littles_law.relative_error:.2%}"
        f" | {result.events:,} events, {result.events_per_s:,.0f}/s"
    )
    return table


@app.command()
def sim(
    workload: Annotated[Path, typer.Option("--workload", "-w", help="Workload JSON file.")],
    policy: str = typer.Option(
        "gittins", "--policy", "-p", help=f"One of: {', '.join(POLICY_NAMES)}."
    ),
    seed: int | None = typer.Option(None, help="Seed (default: the workload's)."),
    n_apps: int | None = typer.Option(None, "--n-apps", help="Override the number of apps."),
    warmup_apps: int | None = typer.Option(
        None, "--warmup-apps", help="Override the apps excluded from the metrics."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Simulate one policy on a workload; print completion-time statistics."""
    try:
        from hermes_sdk.sim import load_workload, simulate

        wl = load_workload(workload)
        if n_apps is not None or warmup_apps is not None:
            n = wl.n_apps if n_apps is None else n_apps
            warm = wl.warmup_apps if warmup_apps is None else warmup_apps
            if n_apps is not None and warmup_apps is None and warm >= n:
                warm = n // 10  # keep the workload's warm-up share sensible for a short run
            if not 0 <= warm < n:
                raise ConfigError(f"--warmup-apps must be within 0..{n - 1}, got {warm}")
            wl = replace(wl, n_apps=n, warmup_apps=warm)
        if as_json:
            result = simulate(wl, policy, seed=seed)
        else:
            with Progress(console=err_console, transient=True) as bar:
                task = bar.add_task(f"simulating {policy}", total=wl.n_apps)

                def advance(done: int, total: int) -> None:
                    bar.update(task, completed=done)

                result = simulate(wl, policy, seed=seed, progress=advance)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc
    if as_json:
        out: dict[str, Any] = result.to_dict()
        typer.echo(json.dumps(out))
    else:
        console.print(_table(result, workload.name))
