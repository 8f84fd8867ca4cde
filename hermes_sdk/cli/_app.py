"""The typer application every `hermes` sub-command registers on."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="hermes",
    help="Hermes: learned demand graphs and Gittins scheduling for LLM applications.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
"""Console for tables and progress (stdout)."""
err_console = Console(stderr=True)
"""Console for errors and warnings (stderr), so `--json` output stays clean."""


@app.callback()
def _root() -> None:
    """Hermes: learned demand graphs and Gittins scheduling for LLM applications."""
