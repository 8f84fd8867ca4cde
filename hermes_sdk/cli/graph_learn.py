"""`hermes graph learn --from FILE`: learn PDGraphs offline from OTLP JSON trace files.

The files are what the OpenTelemetry Collector's file exporter writes (one OTLP JSON
``ExportTraceServiceRequest`` per line; ``.gz`` files are read compressed). Spans are mapped and
assembled exactly as ``POST /v1/traces`` does (:mod:`hermes_sdk.otlp`); traces whose root span is
not in the files are learned as failed runs, as the receiver's idle timeout would. Paths go into
the configured store, so a scheduler started on it ranks with them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hermes_sdk.cli._app import console, err_console
from hermes_sdk.cli.graph import graph_app
from hermes_sdk.errors import ConfigError, HermesError
from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import RunPath
from hermes_sdk.otlp import OtlpDecodeError, OtlpUnavailable, SpanMapping, TraceAssembler
from hermes_sdk.otlp.mapping import SpanClass, mapping_from_env
from hermes_sdk.otlp.spans import parse_json_object, spans_of
from hermes_sdk.server.middlewares import loads_json
from hermes_sdk.store import open_store

LEARN_BATCH = 500
"""Paths stored per write."""


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(file bytes read so far, line) of a plain or gzip file."""
    with path.open("rb") as raw:
        text: Iterable[bytes] = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        for line in text:
            yield raw.tell(), line


def _mapping(
    kinds: list[str],
    app_attribute: str | None,
    unit_attribute: str | None,
    root_span: str | None,
) -> SpanMapping:
    base = mapping_from_env()
    extra: dict[str, SpanClass] = dict(base.kind_by_span_name)
    for item in kinds:
        name, sep, kind = item.rpartition("=")
        if not sep or not name:
            raise ConfigError(f"--kind must be 'span name=kind', got {item!r}")
        extra[name] = kind  # type: ignore[assignment]  # checked by SpanMapping
    return replace(
        base,
        kind_by_span_name=extra,
        app_attribute=app_attribute or base.app_attribute,
        unit_attribute=unit_attribute or base.unit_attribute,
        root_span_name=root_span or base.root_span_name,
    )


def _summary(asm: TraceAssembler, bad_lines: int, stored: int, rejected: int) -> Table:
    st = asm.stats
    table = Table(title="Learned from traces")
    table.add_column("what")
    table.add_column("count", justify="right")
    for app, n in sorted(st.apps.items()):
        table.add_row(f"app {app}: runs learned", str(n))
    table.add_row("runs stored", str(stored))
    table.add_row("runs without their root span (learned as failed)", str(st.runs_timed_out))
    for reason, n in sorted(st.runs_not_learned.items()):
        table.add_row(f"runs not learned: {reason}", str(n))
    if rejected:
        table.add_row("runs not learned: refused by the graph", str(rejected))
    table.add_row("spans read", str(st.spans_received))
    for reason, n in sorted(st.spans_ignored.items()):
        table.add_row(f"spans ignored: {reason}", str(n))
    if bad_lines:
        table.add_row("lines ignored: not an OTLP JSON request", str(bad_lines))
    return table


_FROM = typer.Option(
    ..., "--from", exists=True, dir_okay=False, help="OTLP JSON file(s), one request a line."
)
_STORE = typer.Option(None, help="Store URL (default: HERMES_STORE or ~/.hermes/hermes.db).")
_TENANT = typer.Option("default", help="Tenant the learned graphs belong to.")
_KIND = typer.Option(
    [], "--kind", help="'span name=kind' (llm, tool, retriever, ..., or step); repeatable."
)
_APP_ATTR = typer.Option(None, help="Attribute naming the app (default: service.name).")
_UNIT_ATTR = typer.Option(None, help="Span attribute naming the unit (default: span name).")
_ROOT = typer.Option(None, help="Span name that starts a run (default: a run is a trace).")


@graph_app.command("learn")
def learn(
    files: list[Path] = _FROM,
    store: str | None = _STORE,
    tenant: str = _TENANT,
    kind: list[str] = _KIND,
    app_attribute: str | None = _APP_ATTR,
    unit_attribute: str | None = _UNIT_ATTR,
    root_span: str | None = _ROOT,
) -> None:
    """Learn graphs from OTel Collector file-exporter output into the store, with a summary."""
    try:
        mapping = _mapping(kind, app_attribute, unit_attribute, root_span)
        registry = GraphRegistry(open_store(store))
    except HermesError as exc:
        err_console.print(f"error: {exc}")
        raise typer.Exit(2) from exc
    asm = TraceAssembler(mapping)
    bad_lines = stored = rejected = 0
    pending: list[RunPath] = []

    def save(paths: list[RunPath]) -> None:
        nonlocal stored, rejected
        pending.extend(paths)
        if len(pending) >= LEARN_BATCH or not paths:
            refused = registry.observe_many(pending)
            rejected += len(refused)
            stored += len(pending) - len(refused)
            pending.clear()

    total = sum(f.stat().st_size for f in files)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    try:
        with Progress(*columns, TimeElapsedColumn(), console=err_console) as bar:
            task = bar.add_task("reading traces", total=total)
            done_before = 0
            for f in files:
                for pos, line in _lines(f):
                    if line.strip():
                        try:
                            doc = loads_json(line)
                            request = parse_json_object(doc)
                        except (json.JSONDecodeError, OtlpDecodeError, UnicodeDecodeError):
                            bad_lines += 1
                            continue
                        decoded = spans_of(
                            request,
                            app_attribute=mapping.app_attribute,
                            unit_attribute=mapping.unit_attribute,
                        )
                        for reason, n in decoded.ignored.items():
                            asm.stats.ignore(reason, n)
                        asm.stats.spans_received += sum(decoded.ignored.values())
                        save(asm.add(tenant, decoded.spans).paths)
                    bar.update(task, completed=done_before + pos)
                done_before += f.stat().st_size
                bar.update(task, completed=done_before)
            save(asm.flush().paths)
            save([])
    except OtlpUnavailable as exc:
        err_console.print(f"error: {exc}")
        raise typer.Exit(2) from exc
    finally:
        registry.close()
    console.print(_summary(asm, bad_lines, stored, rejected))
