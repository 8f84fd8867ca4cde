"""`hermes demo`: real LangGraph apps on simulated engines, FCFS versus Hermes, on loopback.

The demo's apps are LangGraph graphs, so its body lives in the `hermes-langgraph` integration
(core hermes_sdk never imports LangChain); this command imports it only when run.
"""

from __future__ import annotations

from pathlib import Path

import typer

from hermes_sdk.cli._app import app, console, err_console


@app.command()
def demo(
    apps: int = typer.Option(160, min=1, max=10_000, help="Apps to run under each policy."),
    rate: float = typer.Option(6.0, min=0.01, help="App arrivals per second (Poisson)."),
    policy_compare: str = typer.Option("fcfs,gittins", help="Comma-separated policies, in order."),
    out: str = typer.Option("hermes-demo", help="Directory for graphs, plot and logs."),
    seed: int = typer.Option(7, help="Seed of the app mix and arrival times."),
    quick: bool = typer.Option(False, "--quick", help="A smaller run (80 apps)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object, no table."),
    max_batch: int = typer.Option(16, min=1, max=1024, help="Requests each engine batches."),
    max_inflight: int = typer.Option(
        0, min=0, help="Requests the gateway admits to each engine (0: its batch)."
    ),
) -> None:
    """Start two simulated engines and the scheduler, run LangGraph apps under each policy."""
    try:
        from hermes_langgraph.demo.report import quick as quick_config
        from hermes_langgraph.demo.report import run_with_report
        from hermes_langgraph.demo.runner import DemoConfig
    except ImportError as exc:
        err_console.print(
            f"hermes demo needs the hermes-langgraph integration ({exc}); "
            "run ./scripts/demo or pip install -e 'integrations/langgraph[openai]'"
        )
        raise typer.Exit(2) from exc
    policies = tuple(p.strip() for p in policy_compare.split(",") if p.strip())
    config = DemoConfig(
        apps=apps,
        arrival_rate=rate,
        policies=policies,
        seed=seed,
        max_batch=max_batch,
        max_inflight=max_inflight or None,
        out=Path(out),
    )
    if quick:
        config = quick_config(config)
    raise typer.Exit(run_with_report(config, json_out=json_out, console=console))
