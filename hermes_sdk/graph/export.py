"""JSON form of a PDGraph (``schema_version`` 1), its shipped JSON Schema, and the inverse.

The document carries the readable summary required by the schema (nodes with mean/p50/p95,
edges with ``p`` and per-visit ``by_visit``) and, with ``include_samples=True`` (the default), the
sketch windows (``values`` oldest first, plus ``times`` when time decay is on), the transition
windows (per ``(source, visit)`` the targets of its last ``window`` departures, oldest first,
run-length encoded; the edges' counts are their totals), the token models' sufficient statistics
and the graph configuration, so that ``from_dict`` rebuilds the same graph, learning continues
identically and ``to_json(from_json(s)) == s``. ``failed_runs`` (optional, default 0) counts the
runs, among ``runs``, that were learned as failed. A node's ``changes`` and ``changed_at``
(optional, absent when no change was detected: see :mod:`hermes_sdk.graph.drift`) count its
detected changes and say when the last one began. The change detectors' own state is not in
the document: a rebuilt graph re-arms them on its samples (after ``min_reference`` of each), so
learning continues identically except for when a change in progress is detected.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from importlib import resources
from typing import Any, cast

import numpy as np

from hermes_sdk.errors import GraphError
from hermes_sdk.graph import validation
from hermes_sdk.graph.learned import GraphFactory, LearnedGraph, NodeState
from hermes_sdk.graph.records import END, START, UNIT_KINDS
from hermes_sdk.graph.sketch import Sketch
from hermes_sdk.graph.token_model import TokenModel

SCHEMA_VERSION = 1


@lru_cache(maxsize=1)
def graph_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the graph document, shipped in the package."""
    text = resources.files("hermes_sdk.graph").joinpath("schema/pdgraph.schema.json").read_text()
    return cast(dict[str, Any], json.loads(text))


def validate_graph_json(obj: object) -> None:
    """Raise GraphError if ``obj`` (a parsed graph document) does not match the schema."""
    import jsonschema

    try:
        jsonschema.validate(obj, graph_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "<root>"
        raise GraphError(f"graph JSON invalid at {where}: {exc.message}") from exc


def _sketch_to_dict(sk: Sketch, include_samples: bool) -> dict[str, Any]:
    out: dict[str, Any] = dict(sk.summary())
    if include_samples:
        values, times = sk.chronological()
        out["values"] = [float(v) for v in values]
        if sk.half_life_s is not None:
            out["times"] = [float(t) for t in times]
    return out


def _edges(graph: LearnedGraph) -> list[dict[str, Any]]:
    by_pair: dict[tuple[str, str], dict[int, int]] = {}
    out_total: Counter[str] = Counter()
    visit_total: Counter[tuple[str, int]] = Counter()
    for (src, visit), counts in graph.transitions.items():
        for target, c in counts.items():
            by_pair.setdefault((src, target), {})[visit] = c
            out_total[src] += c
            visit_total[(src, visit)] += c

    def order(pair: tuple[str, str]) -> tuple[int, str, int, str]:
        src, dst = pair
        return (0 if src == START else 1, src, 1 if dst == END else 0, dst)

    edges = []
    for src, dst in sorted(by_pair, key=order):
        visits = by_pair[(src, dst)]
        count = sum(visits.values())
        edges.append(
            {
                "source": src,
                "target": dst,
                "count": count,
                "p": count / out_total[src],
                "by_visit": [
                    {"visit": v, "count": c, "p": c / visit_total[(src, v)]}
                    for v, c in sorted(visits.items())
                ],
            }
        )
    return edges


def _windows(graph: LearnedGraph) -> list[dict[str, Any]]:
    out = []
    for (src, visit), targets in sorted(graph.transition_windows().items()):
        runs: list[list[Any]] = []
        for target in targets:
            if runs and runs[-1][0] == target:
                runs[-1][1] += 1
            else:
                runs.append([target, 1])
        out.append({"source": src, "visit": visit, "runs": runs})
    return out


def _change_fields(graph: LearnedGraph, name: str) -> dict[str, Any]:
    """The optional ``changes`` / ``changed_at`` of a node (absent when none was detected)."""
    if name not in graph.changed_at:
        return {}
    return {"changes": graph.changes[name], "changed_at": graph.changed_at[name]}


def graph_to_dict(graph: LearnedGraph, *, include_samples: bool = True) -> dict[str, Any]:
    """Document form of ``graph`` (see module docstring)."""
    nodes = []
    for name in sorted(graph.nodes):
        st = graph.nodes[name]
        nodes.append(
            {
                "id": name,
                "kind": st.kind,
                "backend": st.backend,
                "count": st.count,
                "calls": st.calls,
                "service_s": _sketch_to_dict(st.service_s, include_samples),
                "stage_service_s": _sketch_to_dict(st.stage_service_s, include_samples),
                "input_tokens": _sketch_to_dict(st.input_tokens, include_samples),
                "output_tokens": _sketch_to_dict(st.output_tokens, include_samples),
                "fanout": _sketch_to_dict(st.width, include_samples),
                "cold_start_s": _sketch_to_dict(st.cold_start_s, include_samples),
                **_change_fields(graph, name),
            }
        )
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "app": graph.app,
        "runs": graph.runs,
        "failed_runs": graph.failed_runs,
        "version": graph.version,
        "config": {
            "window": graph.window,
            "half_life_s": graph.half_life_s,
            "max_visit": graph.max_visit,
        },
        "nodes": nodes,
        "edges": _edges(graph),
        "run_service_s": _sketch_to_dict(graph.run_service_s, include_samples),
    }
    if include_samples:
        doc["transition_windows"] = _windows(graph)
        doc["token_models"] = [
            {"backend": b, **graph.token_models[b].to_dict()} for b in sorted(graph.token_models)
        ]
    return doc


def _load_sketch(sk: Sketch, data: dict[str, Any], what: str) -> None:
    values = data.get("values")
    if values is None:
        raise GraphError(f"{what} has no samples; export with include_samples=True to reload")
    times = data.get("times") if sk.half_life_s is not None else None
    if not isinstance(values, list) or not (times is None or isinstance(times, list)):
        raise GraphError(f"{what}: values and times must be lists of numbers")
    if times is None:
        times = [0.0] * len(values)
    if not all(type(v) in (int, float) for v in values) or not all(
        type(t) in (int, float) for t in times
    ):
        raise GraphError(f"{what}: values and times must be lists of numbers")
    arr = np.asarray(values, dtype=np.float64)
    tarr = np.asarray(times, dtype=np.float64)
    if arr.ndim != 1 or tarr.shape != arr.shape:
        raise GraphError(f"{what}: values and times must be equal-length lists")
    if not (np.isfinite(arr).all() and np.isfinite(tarr).all()) or (arr < 0).any():
        raise GraphError(f"{what}: samples must be finite and >= 0")
    if arr.size > sk.window:
        raise GraphError(f"{what}: {arr.size} samples exceed the window {sk.window}")
    for v, t in zip(arr.tolist(), tarr.tolist(), strict=True):
        sk.add(v, t)


def _without_samples(doc: object) -> object:
    """Shallow copy of a document with sample lists emptied (they are checked with numpy)."""
    if not isinstance(doc, dict):
        return doc

    def strip(sk: object) -> object:
        if isinstance(sk, dict) and ("values" in sk or "times" in sk):
            return {k: ([] if k in ("values", "times") else v) for k, v in sk.items()}
        return sk

    out = dict(doc)
    if "transition_windows" in out:  # checked by _window_orders
        out["transition_windows"] = []
    if "run_service_s" in out:
        out["run_service_s"] = strip(out["run_service_s"])
    if isinstance(out.get("nodes"), list):
        out["nodes"] = [
            {k: strip(v) for k, v in nd.items()} if isinstance(nd, dict) else nd
            for nd in out["nodes"]
        ]
    return out


def graph_from_dict(data: object, factory: GraphFactory) -> LearnedGraph:
    """Rebuild a graph made by ``factory`` (``PDGraph``) from :func:`graph_to_dict` output;
    GraphError if malformed.

    The structure is checked against the JSON Schema; the (large) sample lists are checked with
    numpy instead (finite, >= 0, within the window), which is ~100x faster.
    """
    validate_graph_json(_without_samples(data))
    doc = cast(dict[str, Any], data)
    if len(doc["nodes"]) > validation.MAX_NODES:
        raise GraphError(f"graph has {len(doc['nodes'])} nodes, more than {validation.MAX_NODES}")
    if len({nd["id"] for nd in doc["nodes"]}) != len(doc["nodes"]):
        raise GraphError("graph has duplicate node ids")
    cfg = doc["config"]
    graph = factory(
        doc["app"],
        window=cfg["window"],
        half_life_s=cfg["half_life_s"],
        max_visit=cfg["max_visit"],
    )
    for nd in doc["nodes"]:
        if nd["kind"] not in UNIT_KINDS:
            raise GraphError(f"node {nd['id']!r} has unknown kind {nd['kind']!r}")
        st = NodeState(nd["kind"], nd["backend"], graph.window, graph.half_life_s)
        st.count, st.calls = nd["count"], nd["calls"]
        for name, key in zip(NodeState.SKETCHES, _NODE_KEYS, strict=True):
            _load_sketch(st.sketch(name), nd[key], f"node {nd['id']!r} {key}")
        graph.nodes[nd["id"]] = st
        if "changed_at" in nd:
            graph.changed_at[nd["id"]] = float(nd["changed_at"])
            graph.changes[nd["id"]] = int(nd.get("changes", 1))
    rows: dict[tuple[str, int], dict[str, int]] = {}
    for edge in doc["edges"]:
        src, dst = edge["source"], edge["target"]
        if src != START and src not in graph.nodes:
            raise GraphError(f"edge source {src!r} is not a node")
        if dst != END and dst not in graph.nodes:
            raise GraphError(f"edge target {dst!r} is not a node")
        for bv in edge["by_visit"]:
            if bv["visit"] > graph.max_visit:
                raise GraphError(f"edge {src!r}->{dst!r} visit {bv['visit']} > max_visit")
            rows.setdefault((src, bv["visit"]), {})[dst] = bv["count"]
    orders = _window_orders(doc.get("transition_windows"), graph.window)
    if not set(orders) <= set(rows):
        raise GraphError("transition_windows has a (source, visit) without edges")
    for (src, visit), counts in rows.items():
        graph._load_transitions(src, visit, counts, orders.get((src, visit)))
    _load_sketch(graph.run_service_s, doc["run_service_s"], "run_service_s")
    for tm in doc.get("token_models", []):
        graph.token_models[tm["backend"]] = TokenModel.from_dict(tm)
    graph.runs, graph.version = doc["runs"], doc["version"]
    graph.failed_runs = doc.get("failed_runs", 0)
    if graph.failed_runs > graph.runs:
        raise GraphError(f"failed_runs {graph.failed_runs} > runs {graph.runs}")
    return graph


def _window_orders(data: object, window: int) -> dict[tuple[str, int], list[str]]:
    """Parse ``transition_windows`` (absent: {}); GraphError if malformed."""
    if data is None:
        return {}
    bad = GraphError("transition_windows must be a list of {source, visit, runs: [[target, n]]}")
    if not isinstance(data, list):
        raise bad
    out: dict[tuple[str, int], list[str]] = {}
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("runs"), list):
            raise bad
        src, visit = item.get("source"), item.get("visit")
        if not isinstance(src, str) or type(visit) is not int or (src, visit) in out:
            raise bad
        order: list[str] = []
        for run in item["runs"]:
            if not (
                isinstance(run, list)
                and len(run) == 2
                and isinstance(run[0], str)
                and type(run[1]) is int
                and 1 <= run[1] <= window - len(order)
            ):
                raise GraphError(f"transition window of ({src!r}, {visit}): bad run {run!r}")
            order.extend([run[0]] * run[1])
        out[(src, visit)] = order
    return out


_NODE_KEYS = (
    "service_s",
    "stage_service_s",
    "input_tokens",
    "output_tokens",
    "fanout",
    "cold_start_s",
)
