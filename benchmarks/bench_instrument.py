"""Instrumentation overhead: ns per decorated call (sync, async, generator) in the same run as
the bare function and as an OpenTelemetry SDK span around the same function.

Run: ``.venv/bin/python benchmarks/bench_instrument.py [--quick] [--plot-only]``. Prints a table
and writes ``benchmarks/results/instrument.json`` and ``instrument.png``. Every call is timed on
its own with ``perf_counter_ns`` (the timer's own cost is in every variant, so differences are
overheads). Variants:

- ``bare``: the undecorated function (baseline);
- ``hermes outside run``: decorated, called with no run open (one context-variable read);
- ``hermes embedded``: decorated, inside ``hermes.run`` (unit handle, two clock reads,
  context set/reset);
- ``hermes remote``: as embedded plus two wire events queued for the background flusher;
- ``otel span``: ``tracer.start_as_current_span`` with the OpenTelemetry SDK and a
  ``BatchSpanProcessor`` to a no-op exporter (what a typical tracing integration costs).

Target: hermes enter+exit overhead (p50 over bare) <= 5 us. Also reported: the cost of ending
a 5-stage run in embedded mode (stage formation, learning, durable append) per store, and the
per-call cost of ``hermes.wrap`` on a model client's ``create`` next to ``@hermes.llm`` and an
OpenTelemetry span (``bench_model_client.py``; target: wrap overhead p50 <= 2x the decorator's).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import numpy as np
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from rich.console import Console
from rich.table import Table

import hermes_sdk as hermes
from hermes_sdk.instrument._context import CURRENT_RUN

RESULTS = Path(__file__).parent / "results" / "instrument.json"
PNG = RESULTS.with_suffix(".png")
TARGET_NS = 5_000
CALLS_PER_RUN = 500
ROUNDS = 5
"""Variants are measured in this many interleaved rounds."""


class NullExporter(SpanExporter):
    """Drops spans: measures the SDK's span bookkeeping, not an exporter."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class NullSink:
    """Discards event batches (remote mode without a network)."""

    def send(self, events: list[dict[str, object]]) -> None:
        return None


def work(x: int) -> int:
    return x + 1


async def awork(x: int) -> int:
    return x + 1


def gwork(x: int) -> Iterator[int]:
    yield x + 1


def _quantiles(samples: np.ndarray) -> dict[str, float]:
    return {
        "p50_ns": float(np.percentile(samples, 50)),
        "p99_ns": float(np.percentile(samples, 99)),
        "mean_ns": float(samples.mean()),
    }


def _in_runs(n: int, call_once: Callable[[], int]) -> np.ndarray:
    """Time ``n`` calls, opening a fresh (never ended) run every CALLS_PER_RUN calls."""
    out = np.empty(n, dtype=np.int64)
    token = None
    for i in range(n):
        if i % CALLS_PER_RUN == 0:
            if token is not None:
                CURRENT_RUN.reset(token)
            token = CURRENT_RUN.set(hermes.start_run("bench"))
        out[i] = call_once()
    if token is not None:
        CURRENT_RUN.reset(token)
    return out


def _plain(n: int, call_once: Callable[[], int]) -> np.ndarray:
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = call_once()
    return out


def time_sync(fn: Callable[[int], int]) -> Callable[[], int]:
    def once() -> int:
        t0 = perf_counter_ns()
        fn(1)
        return perf_counter_ns() - t0

    return once


def time_gen(fn: Callable[[int], Iterator[int]]) -> Callable[[], int]:
    def once() -> int:
        t0 = perf_counter_ns()
        for _ in fn(1):
            pass
        return perf_counter_ns() - t0

    return once


def time_otel(tracer: object, body: Callable[[], object]) -> Callable[[], int]:
    start = tracer.start_as_current_span  # type: ignore[attr-defined]

    def once() -> int:
        t0 = perf_counter_ns()
        with start("work"):
            body()
        return perf_counter_ns() - t0

    return once


async def _async_samples(
    n: int, fn: Callable[[int], Awaitable[int]], mode: str, tracer: object = None
) -> np.ndarray:
    out = np.empty(n, dtype=np.int64)
    token = None
    start = tracer.start_as_current_span if tracer is not None else None  # type: ignore[attr-defined]
    for i in range(n):
        if mode == "run" and i % CALLS_PER_RUN == 0:
            if token is not None:
                CURRENT_RUN.reset(token)
            token = CURRENT_RUN.set(hermes.start_run("bench"))
        t0 = perf_counter_ns()
        if start is not None:
            with start("work"):
                await fn(1)
        else:
            await fn(1)
        out[i] = perf_counter_ns() - t0
    if token is not None:
        CURRENT_RUN.reset(token)
    return out


def measure(n: int) -> dict[str, dict[str, dict[str, float]]]:
    """Per-call samples of every variant, interleaved in ROUNDS rounds so that load from other
    processes on the machine hits all variants alike."""
    provider = TracerProvider()
    processor = BatchSpanProcessor(NullExporter(), max_queue_size=1_000_000)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    d_work = hermes.tool(work)
    d_awork = hermes.tool(awork)
    d_gwork = hermes.tool(gwork)
    chunk = max(n // ROUNDS, 1)
    samples: dict[str, dict[str, list[np.ndarray]]] = {
        shape: {} for shape in ("sync", "async", "generator")
    }

    def add(shape: str, variant: str, values: np.ndarray) -> None:
        samples[shape].setdefault(variant, []).append(values)

    def remote() -> None:
        hermes.configure(store="memory://", sink=NullSink(), queue_size=10_000_000)

    def embedded() -> None:
        hermes.configure(store="memory://")

    async def async_round() -> None:
        add("async", "bare", await _async_samples(chunk, awork, "plain"))
        add("async", "hermes outside run", await _async_samples(chunk, d_awork, "plain"))
        add("async", "hermes embedded", await _async_samples(chunk, d_awork, "run"))
        remote()
        add("async", "hermes remote", await _async_samples(chunk, d_awork, "run"))
        embedded()
        add("async", "otel span", await _async_samples(chunk, awork, "plain", tracer))

    _plain(chunk, time_sync(work))  # warm-up
    for _ in range(ROUNDS):
        gc.collect()
        for shape, bare, dec, timer, body in (
            ("sync", work, d_work, time_sync, lambda: work(1)),
            ("generator", gwork, d_gwork, time_gen, lambda: list(gwork(1))),
        ):
            embedded()
            add(shape, "bare", _plain(chunk, timer(bare)))
            add(shape, "hermes outside run", _plain(chunk, timer(dec)))
            add(shape, "hermes embedded", _in_runs(chunk, timer(dec)))
            remote()
            add(shape, "hermes remote", _in_runs(chunk, timer(dec)))
            embedded()
            add(shape, "otel span", _plain(chunk, time_otel(tracer, body)))
        asyncio.run(async_round())
    provider.shutdown()
    return {
        shape: {name: _quantiles(np.concatenate(parts)) for name, parts in variants.items()}
        for shape, variants in samples.items()
    }


def measure_run_end(runs: int) -> dict[str, dict[str, float]]:
    """Cost of ending a 5-stage run (stage formation + learning), memory vs SQLite store, us."""
    step = hermes.tool(work)
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, store in (("memory", "memory://"), ("sqlite", f"sqlite:///{tmp}/bench.db")):
            hermes.configure(store=store)
            samples = np.empty(runs, dtype=np.int64)
            for i in range(runs):
                scope = hermes.run("bench-end")
                scope.__enter__()
                for _ in range(5):
                    step(1)
                t0 = perf_counter_ns()
                scope.__exit__(None, None, None)
                samples[i] = perf_counter_ns() - t0
            out[label] = {k.replace("_ns", "_us"): v / 1000 for k, v in _quantiles(samples).items()}
    hermes.configure(store="memory://")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20k calls per variant")
    from plotting import add_plot_only, redraw

    add_plot_only(parser, PNG, RESULTS)
    args = parser.parse_args()
    if args.plot_only:
        redraw(plot, RESULTS, PNG)
        return
    n = 20_000 if args.quick else 200_000
    results = measure(n)
    from bench_model_client import (
        STUBBED,
        TARGET_RATIO,
        measure_model_client,
        rank_cost_ns,
        wrap_ratio,
    )

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(NullExporter()))
    model_client = measure_model_client(n // 4, tracer_provider.get_tracer("bench"), ROUNDS)
    tracer_provider.shutdown()
    ratio = wrap_ratio(model_client, "@hermes.llm")
    ratio_by_hand = wrap_ratio(model_client, "@hermes.llm + openai_kwargs()")
    rank_ns = rank_cost_ns(model_client)
    ratio_without_rank = wrap_ratio(model_client, "@hermes.llm", variant=STUBBED)
    run_end_us = measure_run_end(200 if args.quick else 2000)

    console = Console()
    table = Table(title=f"Per-call cost, ns ({n} calls per variant; overhead = minus bare)")
    for col in ("shape", "variant", "p50", "p99", "overhead p50", "overhead p99"):
        table.add_column(col, justify="left" if col in ("shape", "variant") else "right")
    overheads: dict[str, dict[str, dict[str, float]]] = {}
    for shape, variants in results.items():
        bare = variants["bare"]
        overheads[shape] = {}
        for name, q in variants.items():
            over = {
                "p50_ns": q["p50_ns"] - bare["p50_ns"],
                "p99_ns": q["p99_ns"] - bare["p99_ns"],
            }
            if name != "bare":
                overheads[shape][name] = over
            table.add_row(
                shape,
                name,
                f"{q['p50_ns']:.0f}",
                f"{q['p99_ns']:.0f}",
                "" if name == "bare" else f"{over['p50_ns']:.0f}",
                "" if name == "bare" else f"{over['p99_ns']:.0f}",
            )
    console.print(table)
    worst_p50 = max(
        overheads[s][v]["p50_ns"] for s in overheads for v in overheads[s] if v.startswith("hermes")
    )
    meets = worst_p50 <= TARGET_NS
    console.print(
        f"worst hermes overhead p50 = {worst_p50:.0f} ns; target <= {TARGET_NS} ns: "
        + ("[green]met[/green]" if meets else "[red]missed[/red]")
    )
    end_table = Table(title="Ending a 5-stage run (stage formation + learning + store), us")
    for col in ("store", "p50", "p99"):
        end_table.add_column(col, justify="left" if col == "store" else "right")
    for store, q in run_end_us.items():
        end_table.add_row(store, f"{q['p50_us']:.0f}", f"{q['p99_us']:.0f}")
    console.print(end_table)
    mc_table = Table(title=f"Model client create(), ns per call ({n // 4} calls per variant)")
    for col in ("variant", "p50", "p99", "overhead p50"):
        mc_table.add_column(col, justify="left" if col == "variant" else "right")
    mc_bare = model_client["bare"]["p50_ns"]
    for name, q in model_client.items():
        over = "" if name == "bare" else f"{q['p50_ns'] - mc_bare:.0f}"
        mc_table.add_row(name, f"{q['p50_ns']:.0f}", f"{q['p99_ns']:.0f}", over)
    console.print(mc_table)
    console.print(
        f"hermes.wrap overhead p50 = {ratio:.2f}x @hermes.llm's (target <= {TARGET_RATIO}x: "
        + ("[green]met[/green]" if ratio <= TARGET_RATIO else "[red]missed[/red]")
        + f"); {ratio_by_hand:.2f}x @hermes.llm + openai_kwargs() (hints looked up from"
        + f" scratch); the rank lookup (position + cached answer) costs {rank_ns:.0f} ns,"
        + f" without it wrap is {ratio_without_rank:.2f}x"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "instrument",
        "calls_per_variant": n,
        "quick": args.quick,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "target_overhead_ns": TARGET_NS,
        "worst_hermes_overhead_p50_ns": worst_p50,
        "target_met": meets,
        "per_call_ns": results,
        "overhead_vs_bare_ns": overheads,
        "run_end_us": run_end_us,
        "model_client_ns": model_client,
        "wrap_vs_decorator_overhead_ratio": ratio,
        "wrap_vs_decorator_with_hints_overhead_ratio": ratio_by_hand,
        "rank_cost_p50_ns": rank_ns,
        "wrap_rank_stubbed_vs_decorator_overhead_ratio": ratio_without_rank,
        "wrap_target_ratio": TARGET_RATIO,
        "wrap_target_met": ratio <= TARGET_RATIO,
    }
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    plot(doc, PNG)
    console.print(f"wrote {RESULTS} and {PNG}")


def plot(result: dict[str, Any], path: Path) -> None:
    """Overhead over the bare call per call shape, hermes variants vs an OpenTelemetry span,
    p50 (with the target) and p99; with model-client rows, a third panel: ``hermes.wrap`` on
    ``create`` next to the decorator and a span (target: 2x the decorator's p50 overhead)."""
    from plotting import figure, grouped_bars, save, shared_legend, us

    over = result["overhead_vs_bare_ns"]
    shapes = list(over)
    variants = list(next(iter(over.values())))
    n = result.get("calls_per_variant")
    model_client = result.get("model_client_ns")
    fig, axes = figure(
        1,
        3 if model_client else 2,
        (19.5 if model_client else 13, 4.8),
        "Per-call overhead over the undecorated function: hermes vs OpenTelemetry SDK span"
        + (f" ({n:,} calls per variant, same run)" if n else " (same run)"),
    )
    for ax, q in zip(axes[:2], ("p50", "p99"), strict=True):
        series = {
            ("baseline: OpenTelemetry SDK span" if v == "otel span" else v): [
                over[shape][v][f"{q}_ns"] / 1e3 for shape in shapes
            ]
            for v in variants
        }
        target = result.get("target_overhead_ns") if q == "p50" else None
        grouped_bars(
            ax,
            [f"{shape} function" for shape in shapes],
            series,
            log=True,
            axis_label=f"{q} overhead per call (us, log)",
            title=f"{q} overhead (variant {q} minus bare {q})",
            fmt=us,
            targets=[(target / 1e3, f"target: hermes p50 <= {target / 1e3:g} us")]
            if target
            else [],
        )
    shared_legend(fig, axes[:2])
    if model_client:
        bare = model_client["bare"]
        names = [v for v in model_client if v != "bare"]
        decorator_s = (model_client["@hermes.llm"]["p50_ns"] - bare["p50_ns"]) / 1e3
        ratio = result["wrap_target_ratio"]
        grouped_bars(
            axes[2],
            names,
            {
                q: [max(model_client[v][f"{q}_ns"] - bare[f"{q}_ns"], 1.0) / 1e3 for v in names]
                for q in ("p50", "p99")
            },
            log=True,
            axis_label="overhead per call over the bare create() (us, log)",
            title="model client create(): hermes.wrap vs decorator vs OTel span",
            fmt=us,
            targets=[(ratio * decorator_s, f"target: wrap p50 <= {ratio:g}x @hermes.llm's")],
        )
    save(fig, path)


if __name__ == "__main__":
    main()
