"""What keeping one run per LangGraph thread costs: progress records and pause/resume (issue 24).

Run: ``.venv/bin/python benchmarks/bench_langgraph_threads.py [--quick]``. Writes
``benchmarks/results/langgraph_threads.json`` (+ ``.png``). Every invoke is timed on its own
(``process_time_ns``: CPU of the whole process; ``perf_counter_ns``: wall); variants are
interleaved in rounds so machine drift hits them alike; medians are reported.

``line``: a straight line of 10 trivial nodes, invoked as a new thread each time:

- ``no checkpointer``: no callbacks (baseline A) / with ``HermesCallbackHandler`` (B);
- ``InMemorySaver + thread_id``: no callbacks (baseline C) / with the handler, ``memory://``
  store (D: the run also writes a progress record per superstep, durable execution) / with a
  SQLite store on disk (E: the same records go to the file).

``thread handler cost`` = (D - C) - (B - A): what a thread adds to the handler's own cost
(progress records, the continuation lookup); ``sqlite`` = E - D.

``hitl``: prep -> ask (``interrupt()``) -> fin, one thread per sample, the interrupted invoke and
its ``Command(resume=...)`` timed together, without and with the handler (memory store): the
pause record and the resume (take, replay) included.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import tempfile
from pathlib import Path
from time import perf_counter_ns, process_time_ns
from typing import Any, TypedDict

import langgraph
import numpy as np
from hermes_langgraph import HermesCallbackHandler
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

import hermes_sdk as hermes

sys.path.insert(0, str(Path(__file__).parents[1] / "integrations" / "langgraph" / "tests"))
from hitl_apps import START_INPUT, hitl_graph

RESULTS = Path(__file__).parent / "results" / "langgraph_threads.json"
N_NODES = 10


class LineState(TypedDict):
    """State of the line graph."""

    n: int


def line_graph(checkpointer: bool) -> Any:
    """``N_NODES`` trivial nodes in a line."""
    builder = StateGraph(LineState)
    names = [f"n{i}" for i in range(N_NODES)]
    for name in names:
        builder.add_node(name, lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        builder.add_edge(a, b)
    builder.add_edge(names[-1], END)
    return builder.compile(checkpointer=InMemorySaver() if checkpointer else None)


def _timed(fn: Any) -> tuple[float, float]:
    c0, w0 = process_time_ns(), perf_counter_ns()
    fn()
    return (process_time_ns() - c0) / 1e3, (perf_counter_ns() - w0) / 1e3


def measure(n: int, rounds: int) -> dict[str, Any]:
    """CPU and wall microseconds per invoke (median over all rounds) per variant."""
    plain, saved = line_graph(False), line_graph(True)
    hitl = hitl_graph()
    tmp = tempfile.mkdtemp()
    samples: dict[str, list[tuple[float, float]]] = {}
    counter = iter(range(10**9))

    def line(variant: str) -> None:
        graph = saved if variant.startswith(("C", "D", "E")) else plain
        cfg: Any = {}
        if variant.startswith(("C", "D", "E")):
            cfg["configurable"] = {"thread_id": f"t{next(counter)}"}
        if variant[0] in "BDE":
            cfg["callbacks"] = [HANDLERS[variant[0]]]
        graph.invoke({"n": 0}, cfg)

    def hitl_cycle(with_handler: bool) -> None:
        cfg: Any = {"configurable": {"thread_id": f"h{next(counter)}"}}
        if with_handler:
            cfg["callbacks"] = [HANDLERS["H"]]
        hitl.invoke(START_INPUT, cfg)
        hitl.invoke(Command(resume="yes"), cfg)

    variants = {
        "A no checkpointer, no callbacks": lambda: line("A"),
        "B no checkpointer, hermes": lambda: line("B"),
        "C thread, no callbacks": lambda: line("C"),
        "D thread, hermes memory store": lambda: line("D"),
        "E thread, hermes sqlite store": lambda: line("E"),
        "hitl, no callbacks": lambda: hitl_cycle(False),
        "hitl, hermes": lambda: hitl_cycle(True),
    }
    for _ in range(rounds):
        for name, fn in variants.items():
            store = f"sqlite:///{tmp}/h.db" if name.startswith("E") else "memory://"
            hermes.configure(store=store)
            for _ in range(10):  # warm up (and open the store) outside the timings
                fn()
            hermes.flush(30.0)
            got = samples.setdefault(name, [])
            for _ in range(n):
                got.append(_timed(fn))
            hermes.flush(30.0)
    out: dict[str, Any] = {}
    for name, rows in samples.items():
        cpu, wall = np.array(rows).T
        out[name] = {"cpu_us_p50": float(np.median(cpu)), "wall_us_p50": float(np.median(wall))}
    cpu = {k[0]: v["cpu_us_p50"] for k, v in out.items() if not k.startswith("hitl")}
    derived = {
        "handler_cpu_us_no_thread": cpu["B"] - cpu["A"],
        "handler_cpu_us_thread": cpu["D"] - cpu["C"],
        "thread_handler_cost_cpu_us": (cpu["D"] - cpu["C"]) - (cpu["B"] - cpu["A"]),
        "sqlite_store_cost_cpu_us": cpu["E"] - cpu["D"],
        "hitl_cycle_handler_cpu_us": out["hitl, hermes"]["cpu_us_p50"]
        - out["hitl, no callbacks"]["cpu_us_p50"],
    }
    return {"variants": out, "derived": derived}


HANDLERS = {
    "B": HermesCallbackHandler(app="bench-line"),
    "D": HermesCallbackHandler(app="bench-line-thread"),
    "E": HermesCallbackHandler(app="bench-line-sqlite"),
    "H": HermesCallbackHandler(app="bench-hitl"),
}


def plot(results: dict[str, Any], path: Path) -> None:
    """Bars of CPU microseconds per invoke (p50) per variant."""
    from plotting import figure, grouped_bars, save, us

    fig, (ax,) = figure(1, 1, (8.0, 4.2), "LangGraph threads: CPU per invoke (p50)")
    names = list(results["variants"])
    grouped_bars(
        ax,
        names,
        {"cpu p50": [results["variants"][k]["cpu_us_p50"] for k in names]},
        axis_label="CPU microseconds per invoke (hitl: interrupt + resume)",
        fmt=us,
        legend=None,
    )
    save(fig, path)


def main(argv: list[str] | None = None) -> None:
    """Measure, print, write JSON and PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n, rounds = (20, 2) if args.quick else (150, 4)
    results = measure(n, rounds)
    for name, row in results["variants"].items():
        print(f"{name:36s} cpu {row['cpu_us_p50']:9.0f} us   wall {row['wall_us_p50']:9.0f} us")
    for name, value in results["derived"].items():
        print(f"{name:36s} {value:9.0f} us")
    doc = {
        "benchmark": "langgraph_threads",
        "samples_per_variant": n * rounds,
        "nodes": N_NODES,
        "python": platform.python_version(),
        "langgraph": getattr(langgraph, "__version__", None),
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
