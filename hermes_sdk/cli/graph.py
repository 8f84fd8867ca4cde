"""`hermes graph list | export`: the learned PDGraphs for platform teams.

Graphs come from a store (``--store``, default ``HERMES_STORE`` or ``~/.hermes/hermes.db``) or
from a running scheduler (``--server URL [--api-key KEY]``, tenant-scoped by the key).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from hermes_sdk.cli._app import app, console, err_console
from hermes_sdk.errors import HermesError
from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.picture import graph_to_png
from hermes_sdk.graph.render import graph_to_dot, graph_to_mermaid
from hermes_sdk.graph.svg import graph_page_html
from hermes_sdk.store import open_store

graph_app = typer.Typer(help="List and export learned PDGraphs.", no_args_is_help=True)
app.add_typer(graph_app, name="graph")

FORMATS = ("json", "dot", "mermaid", "png", "html")


def _fetch(server: str, path: str, api_key: str | None) -> Any:
    req = urllib.request.Request(server.rstrip("/") + path)
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise HermesError(f"{server}{path}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise HermesError(f"cannot reach {server}: {exc}") from exc


def _documents(
    app_name: str | None, store: str | None, server: str | None, api_key: str | None, tenant: str
) -> dict[str, dict[str, Any]]:
    """Graph documents by app name (one app, or every app when ``app_name`` is None)."""
    if server is not None:
        names = (
            [app_name]
            if app_name
            else [a["app"] for a in _fetch(server, "/v1/apps", api_key)["apps"]]
        )
        return {
            n: _fetch(server, f"/v1/apps/{urllib.parse.quote(n, safe='')}/graph", api_key)
            for n in names
        }
    registry = GraphRegistry(open_store(store))
    try:
        names = [app_name] if app_name else registry.apps(tenant)
        docs = {}
        for n in names:
            g = registry.get(n, tenant)
            if g is None:
                raise HermesError(f"no graph for app {n!r} (tenant {tenant!r}) in the store")
            docs[n] = g.to_dict(include_samples=False)
        return docs
    finally:
        registry.close()


_STORE = typer.Option(None, help="Store URL (default: HERMES_STORE or ~/.hermes/hermes.db).")
_SERVER = typer.Option(
    None,
    envvar="HERMES_SCHEDULER_URL",
    help="Read from a running scheduler instead of a store.",
)
_KEY = typer.Option(None, envvar="HERMES_API_KEY", help="API key for --server.")
_TENANT = typer.Option("default", help="Tenant whose graphs to read from a store.")


@graph_app.command("list")
def list_graphs(
    store: str | None = _STORE,
    server: str | None = _SERVER,
    api_key: str | None = _KEY,
    tenant: str = _TENANT,
) -> None:
    """A table of every app with a learned graph: runs, nodes, edges."""
    try:
        docs = _documents(None, store, server, api_key, tenant)
    except HermesError as exc:
        err_console.print(f"error: {exc}")
        raise typer.Exit(2) from exc
    table = Table(title="Learned PDGraphs")
    for col in ("app", "runs", "nodes", "edges", "version"):
        table.add_column(col, justify="left" if col == "app" else "right")
    for name, doc in sorted(docs.items()):
        table.add_row(
            name,
            str(doc["runs"]),
            str(len(doc["nodes"])),
            str(len(doc["edges"])),
            str(doc["version"]),
        )
    console.print(table)


@graph_app.command("export")
def export_graph(
    app_name: str = typer.Option(..., "--app", help="App whose graph to export."),
    fmt: str = typer.Option("json", "--format", help="json, dot, mermaid, png or html."),
    out: str | None = typer.Option(None, "--out", help="File to write (png needs one)."),
    store: str | None = _STORE,
    server: str | None = _SERVER,
    api_key: str | None = _KEY,
    tenant: str = _TENANT,
) -> None:
    """Export one app's graph as JSON (schema_version 1), DOT, Mermaid, PNG or HTML (SVG page)."""
    if fmt not in FORMATS:
        err_console.print(f"error: --format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        raise typer.Exit(2)
    if fmt == "png" and out is None:
        err_console.print("error: --format png needs --out FILE")
        raise typer.Exit(2)
    try:
        doc = _documents(app_name, store, server, api_key, tenant)[app_name]
    except HermesError as exc:
        err_console.print(f"error: {exc}")
        raise typer.Exit(2) from exc
    if fmt == "png":
        assert out is not None
        err_console.print(f"wrote {graph_to_png(doc, out)}")
        return
    text = {
        "json": lambda: json.dumps(doc, indent=2, sort_keys=True) + "\n",
        "dot": lambda: graph_to_dot(doc),
        "mermaid": lambda: graph_to_mermaid(doc),
        "html": lambda: graph_page_html(doc),
    }[fmt]()
    if out is None:
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, encoding="utf-8")
        err_console.print(f"wrote {out}")
