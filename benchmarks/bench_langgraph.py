"""LangGraph callback overhead: wall time per invoke of a 10-node graph, with and without Hermes.

Run: ``.venv/bin/python benchmarks/bench_langgraph.py [--quick]``. Prints a table and writes
``benchmarks/results/langgraph.json`` (+ ``langgraph.png``). Every invoke is timed on its own with
``perf_counter_ns`` (wall) and ``process_time_ns`` (CPU of the whole process, all threads);
variants are interleaved in rounds so drift hits them alike. The overhead is reported on CPU time
first: on a shared, loaded machine wall time mostly measures the other processes, while CPU time
is what the handler itself costs (it includes the remote recorder's flusher thread). Graphs:

- ``10 nodes``: a straight line of 10 trivial nodes (the handler's pure bookkeeping cost);
- ``10 nodes + llm``: the same, each node calling a langchain-core fake chat model that reports
  ``usage_metadata`` (adds one nested ``llm`` unit per node and the hint context variable).

Variants per graph and mode (``invoke`` sync, ``ainvoke`` async):

- ``no callbacks``: the baseline;
- ``no-op handler``: a ``BaseCallbackHandler`` that does nothing (what LangChain's callback
  machinery costs any handler, e.g. a tracer);
- ``hermes embedded``: ``HermesCallbackHandler`` learning in-process (``memory://`` store);
- ``hermes remote``: as embedded plus the wire events queued for the background flusher.

The overhead reported is p50(variant) - p50(no callbacks), per invoke and per node, for CPU and
wall time. A second, much less noisy measurement isolates the handler: the exact callback sequence
of one invoke (recorded from LangGraph) is replayed straight into a fresh run of the handler with
new run ids, timing only the handler's hooks (including ending the run: stage formation and
learning the path, or queueing the wire events).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import platform
from pathlib import Path
from time import perf_counter_ns, process_time_ns
from typing import Any, TypedDict
from uuid import UUID, uuid4

import langchain_core
import langgraph
import numpy as np
from hermes_langgraph import HermesCallbackHandler
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from rich.console import Console
from rich.table import Table

import hermes_sdk as hermes

RESULTS = Path(__file__).parent / "results" / "langgraph.json"
PLOT = RESULTS.with_suffix(".png")
N_NODES = 10


class NullSink:
    """Discards event batches (remote mode without a network)."""

    def send(self, events: list[dict[str, object]]) -> None:
        return None


class NoopHandler(BaseCallbackHandler):
    """Receives every callback and does nothing."""

    run_inline = True


class LineState(TypedDict):
    x: int


def _replies() -> Any:
    usage = {"input_tokens": 12, "output_tokens": 4, "total_tokens": 16}
    while True:
        yield AIMessage(content="ok", usage_metadata=usage)  # type: ignore[arg-type]


def build_graph(with_llm: bool) -> Any:
    """``n0 -> n1 -> ... -> n9``; each node optionally makes one fake chat model call."""
    model = GenericFakeChatModel(messages=_replies())
    builder = StateGraph(LineState)
    names = [f"n{i}" for i in range(N_NODES)]

    def sync_node(state: LineState) -> dict[str, int]:
        if with_llm:
            model.invoke("hi")
        return {"x": state["x"] + 1}

    async def async_node(state: LineState) -> dict[str, int]:
        if with_llm:
            await model.ainvoke("hi")
        return {"x": state["x"] + 1}

    from langchain_core.runnables import RunnableLambda

    for name in names:
        builder.add_node(name, RunnableLambda(sync_node, afunc=async_node, name=name))
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile()


VARIANTS = ("no callbacks", "no-op handler", "hermes embedded", "hermes remote")


def _configure(variant: str) -> None:
    if variant == "hermes remote":
        hermes.configure(store="memory://", sink=NullSink(), queue_size=10_000_000)
    else:
        hermes.configure(store="memory://")


def _config(variant: str, app: str) -> dict[str, Any]:
    if variant == "no callbacks":
        return {}
    if variant == "no-op handler":
        return {"callbacks": [NoopHandler()]}
    return {"callbacks": [HermesCallbackHandler(app=app)]}


Sample = tuple[int, int]
"""(wall ns, process CPU ns) of one invoke."""


def _sync_batch(graph: Any, config: dict[str, Any], n: int) -> list[Sample]:
    out = []
    for _ in range(n):
        c0, t0 = process_time_ns(), perf_counter_ns()
        graph.invoke({"x": 0}, config)
        out.append((perf_counter_ns() - t0, process_time_ns() - c0))
    return out


async def _async_batch(graph: Any, config: dict[str, Any], n: int) -> list[Sample]:
    out = []
    for _ in range(n):
        c0, t0 = process_time_ns(), perf_counter_ns()
        await graph.ainvoke({"x": 0}, config)
        out.append((perf_counter_ns() - t0, process_time_ns() - c0))
    return out


HOOKS = (
    "on_chain_start",
    "on_chain_end",
    "on_chain_error",
    "on_chat_model_start",
    "on_llm_start",
    "on_llm_end",
    "on_llm_error",
    "on_tool_start",
    "on_tool_end",
    "on_retriever_start",
    "on_retriever_end",
)

Event = tuple[str, tuple[Any, ...], dict[str, Any]]


class RecordingHandler(BaseCallbackHandler):
    """Records every hook call the Hermes handler implements, with its arguments."""

    run_inline = True

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    def __getattribute__(self, name: str) -> Any:
        if name in HOOKS:
            events = object.__getattribute__(self, "events")
            return lambda *args, **kwargs: events.append((name, args, kwargs))
        return object.__getattribute__(self, name)


def record_events(with_llm: bool) -> list[Event]:
    """The callback sequence of one sync invoke of the benchmark graph."""
    recorder = RecordingHandler()
    build_graph(with_llm).invoke({"x": 0}, {"callbacks": [recorder]})
    return recorder.events


def _remapped(events: list[Event]) -> list[Event]:
    """``events`` with fresh run ids (as a new invoke would have)."""
    fresh: dict[UUID, UUID] = {}

    def new(value: Any) -> Any:
        if isinstance(value, UUID):
            return fresh.setdefault(value, uuid4())
        return value

    return [(name, args, {k: new(v) for k, v in kwargs.items()}) for name, args, kwargs in events]


def measure_replay(n: int) -> dict[str, Any]:
    """CPU ns of the handler's hooks per invoke, replaying recorded callback sequences."""
    out: dict[str, Any] = {}
    for with_llm in (False, True):
        graph_name = f"{N_NODES} nodes" + (" + llm" if with_llm else "")
        events = record_events(with_llm)
        out[graph_name] = {"callbacks_per_invoke": len(events)}
        for variant in ("hermes embedded", "hermes remote"):
            _configure(variant)
            handler = HermesCallbackHandler(app=f"replay-{with_llm}")
            batches = [_remapped(events) for _ in range(n)]
            samples = np.empty(n, dtype=np.float64)
            gc.collect()  # garbage collection stays on: the handler's allocations cost GC time
            for i, batch in enumerate(batches):
                c0 = process_time_ns()
                for name, args, kwargs in batch:
                    getattr(handler, name)(*args, **kwargs)
                samples[i] = process_time_ns() - c0
            assert handler.errors == 0 and handler.open_runs == 0
            warm = samples[n // 10 :]
            out[graph_name][variant] = {
                "replays": int(warm.size),
                "cpu_p50_us": float(np.percentile(warm, 50)) / 1e3,
                "cpu_p99_us": float(np.percentile(warm, 99)) / 1e3,
                "cpu_p50_per_node_us": float(np.percentile(warm, 50)) / 1e3 / N_NODES,
            }
    hermes.configure(store="memory://")
    return out


def render_replay(replay: dict[str, Any], console: Console) -> None:
    table = Table(title="Handler hooks alone, per invoke (replayed callbacks), CPU microseconds")
    for col in ("graph", "callbacks", "variant", "p50", "p99", "p50 per node"):
        table.add_column(col, justify="left" if col in ("graph", "variant") else "right")
    for graph_name, rows in replay.items():
        for variant in ("hermes embedded", "hermes remote"):
            row = rows[variant]
            table.add_row(
                graph_name,
                str(rows["callbacks_per_invoke"]),
                variant,
                f"{row['cpu_p50_us']:.0f}",
                f"{row['cpu_p99_us']:.0f}",
                f"{row['cpu_p50_per_node_us']:.1f}",
            )
    console.print(table)


def measure(n: int, rounds: int) -> dict[str, Any]:
    """Per graph, mode and variant: p50/p99/mean ns per invoke over ``n`` invokes."""
    results: dict[str, Any] = {}
    for with_llm in (False, True):
        graph_name = f"{N_NODES} nodes" + (" + llm" if with_llm else "")
        graph = build_graph(with_llm)
        results[graph_name] = {}
        for mode in ("invoke", "ainvoke"):
            samples: dict[str, list[Sample]] = {v: [] for v in VARIANTS}
            per_round = max(1, n // rounds)
            for r in range(rounds + 1):  # round 0 is warm-up
                for variant in VARIANTS:
                    _configure(variant)
                    config = _config(variant, f"bench-{mode}-{with_llm}")
                    gc.collect()
                    if mode == "invoke":
                        batch = _sync_batch(graph, config, per_round)
                    else:
                        batch = asyncio.run(_async_batch(graph, config, per_round))
                    if r > 0:
                        samples[variant].extend(batch)
            base = np.asarray(samples["no callbacks"], dtype=np.float64)
            base_wall, base_cpu = (float(np.percentile(base[:, i], 50)) for i in (0, 1))
            results[graph_name][mode] = {}
            for variant in VARIANTS:
                arr = np.asarray(samples[variant], dtype=np.float64)
                wall, cpu = arr[:, 0], arr[:, 1]
                cpu_p50, wall_p50 = float(np.percentile(cpu, 50)), float(np.percentile(wall, 50))
                results[graph_name][mode][variant] = {
                    "invokes": int(arr.shape[0]),
                    "cpu_p50_us": cpu_p50 / 1e3,
                    "cpu_p99_us": float(np.percentile(cpu, 99)) / 1e3,
                    "wall_p50_us": wall_p50 / 1e3,
                    "wall_p99_us": float(np.percentile(wall, 99)) / 1e3,
                    "wall_mean_us": float(wall.mean()) / 1e3,
                    "overhead_cpu_p50_us": (cpu_p50 - base_cpu) / 1e3,
                    "overhead_cpu_p50_per_node_us": (cpu_p50 - base_cpu) / 1e3 / N_NODES,
                    "overhead_cpu_p50_pct": 100.0 * (cpu_p50 - base_cpu) / base_cpu,
                    "overhead_wall_p50_us": (wall_p50 - base_wall) / 1e3,
                }
    hermes.configure(store="memory://")
    return results


def render(results: dict[str, Any], console: Console) -> None:
    table = Table(title="LangGraph handler overhead per invoke (10-node graph), microseconds")
    cols = ("graph", "mode", "variant", "cpu p50", "cpu p99", "+cpu p50", "+cpu/node", "+cpu %")
    for col in (*cols, "wall p50", "wall p99", "+wall p50"):
        table.add_column(col, justify="left" if col in cols[:3] else "right")
    for graph_name, modes in results.items():
        for mode, variants in modes.items():
            for variant, row in variants.items():
                table.add_row(
                    graph_name,
                    mode,
                    variant,
                    f"{row['cpu_p50_us']:.0f}",
                    f"{row['cpu_p99_us']:.0f}",
                    f"{row['overhead_cpu_p50_us']:.0f}",
                    f"{row['overhead_cpu_p50_per_node_us']:.1f}",
                    f"{row['overhead_cpu_p50_pct']:.1f}",
                    f"{row['wall_p50_us']:.0f}",
                    f"{row['wall_p99_us']:.0f}",
                    f"{row['overhead_wall_p50_us']:.0f}",
                )
    console.print(table)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(g, m) for g, modes in results.items() for m in modes]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), sharey=False)
    for ax, (graph_name, mode) in zip(np.atleast_1d(axes), panels, strict=True):
        rows = results[graph_name][mode]
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r["cpu_p50_us"] for r in rows.values()], 0.4, label="CPU p50")
        ax.bar(x + 0.2, [r["wall_p50_us"] for r in rows.values()], 0.4, label="wall p50")
        ax.set_xticks(x, [v.replace(" ", "\n") for v in rows], fontsize=7)
        ax.set_title(f"{graph_name}, {mode}", fontsize=9)
        ax.set_ylabel("us per invoke")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer invokes (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n, rounds = (100, 2) if args.quick else (600, 12)
    console = Console()
    load_before = os.getloadavg()[0]
    replay = measure_replay(2000 if not args.quick else 300)
    render_replay(replay, console)
    results = measure(n, rounds)
    render(results, console)
    doc = {
        "benchmark": "langgraph",
        "quick": args.quick,
        "nodes": N_NODES,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg_1m_before": load_before,
        "load_avg_1m_after": os.getloadavg()[0],
        "langgraph": getattr(langgraph, "__version__", None) or _version("langgraph"),
        "langchain_core": langchain_core.__version__,
        "handler_replay": replay,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
