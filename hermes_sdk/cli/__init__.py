"""The `hermes` command line: demo, serve, sim, bench, graph, keys.

Each sub-command lives in its own module and registers itself on the shared typer app; importing
this package registers them all.
"""

from __future__ import annotations

from hermes_sdk.cli import bench as _bench
from hermes_sdk.cli import demo as _demo
from hermes_sdk.cli import graph as _graph
from hermes_sdk.cli import graph_learn as _graph_learn
from hermes_sdk.cli import keys as _keys
from hermes_sdk.cli import serve as _serve
from hermes_sdk.cli import sim as _sim
from hermes_sdk.cli import sim_engine as _sim_engine
from hermes_sdk.cli import version as _version
from hermes_sdk.cli._app import app

__all__ = ["app", "main"]

_COMMANDS = (_version, _bench, _demo, _graph, _graph_learn, _keys, _sim_engine, _serve, _sim)


def main() -> None:
    """Entry point of the `hermes` console script."""
    app()
