"""The `hermes` command line: demo, serve, sim, bench, graph."""

from __future__ import annotations

import typer
from rich.console import Console

import hermes_sdk

app = typer.Typer(
    name="hermes",
    help="Hermes: learned demand graphs and Gittins scheduling for LLM applications.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.command()
def version() -> None:
    """Print the installed hermes-sdk version."""
    console.print(hermes_sdk.__version__)


def main() -> None:
    """Entry point of the `hermes` console script."""
    app()
