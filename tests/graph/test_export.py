"""JSON round-trips exactly and validates; DOT and Mermaid render every node and edge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import hermes_sdk.graph as graph_pkg
from hermes_sdk import Call, PDGraph, RunPath, RunState, Stage
from hermes_sdk.graph import graph_schema, validate_graph_json
from tests.graph import generator as gen

WEIRD = ('say "hi"', "a|b", "with space", "back\\slash", "ünïcode <x>", "semi;colon", "#hash")


def _learned(half_life_s: float | None = None, window: int = 1000) -> PDGraph:
    rng = np.random.default_rng(4)
    graph = PDGraph(gen.APP, half_life_s=half_life_s, window=window)
    for i in range(300):
        graph.observe(gen.make_path(rng, i))
    return graph


def _weird() -> PDGraph:
    graph = PDGraph("weird app")
    for i in range(5):
        stages = tuple(Stage(name, (Call(0.1 * (i + 1)),), "tool") for name in WEIRD[: i + 3])
        graph.observe(RunPath("weird app", stages, run_id=str(i)))
    return graph


@pytest.mark.parametrize("half_life_s", [None, 50.0])
def test_json_round_trips_exactly(half_life_s: float | None) -> None:
    graph = _learned(half_life_s, window=100)  # window < runs: the ring buffer has wrapped
    text = graph.to_json()
    again = PDGraph.from_json(text)
    assert again.to_json() == text
    assert again.runs == graph.runs and again.version == graph.version
    state = RunState("plan", (("plan", 1),))
    assert np.array_equal(again.remaining_demand(state), graph.remaining_demand(state))


def test_round_trip_then_learning_continues_identically() -> None:
    rng_a, rng_b = np.random.default_rng(8), np.random.default_rng(8)
    graph = _learned(window=50)
    copy = PDGraph.from_json(graph.to_json())
    for i in range(40):
        graph.observe(gen.make_path(rng_a, 1000 + i))
        copy.observe(gen.make_path(rng_b, 1000 + i))
    assert copy.to_json() == graph.to_json()


def test_json_has_required_fields_and_validates() -> None:
    doc = json.loads(_learned().to_json())
    validate_graph_json(doc)
    validate_graph_json(_learned().to_dict(include_samples=False))
    assert doc["schema_version"] == 1 and doc["app"] == gen.APP and doc["runs"] == 300
    node = doc["nodes"][0]
    for key in ("id", "kind", "backend", "count", "service_s", "input_tokens", "output_tokens"):
        assert key in node
    assert set(node["fanout"]) >= {"mean", "p50", "p95"}
    totals: dict[str, float] = {}
    for edge in doc["edges"]:
        totals[edge["source"]] = totals.get(edge["source"], 0.0) + edge["p"]
        assert sum(v["count"] for v in edge["by_visit"]) == edge["count"]
    assert all(abs(t - 1.0) < 1e-9 for t in totals.values())
    assert any(e["source"] == "START" for e in doc["edges"])
    assert any(e["target"] == "END" for e in doc["edges"])


def test_schema_is_shipped_inside_the_package() -> None:
    path = Path(graph_pkg.__file__).parent / "schema" / "pdgraph.schema.json"
    assert json.loads(path.read_text()) == graph_schema()
    assert graph_schema()["properties"]["schema_version"] == {"const": 1}
    # fields added within schema_version 1 are optional: older documents stay valid
    for optional in ("failed_runs", "transition_windows", "token_models"):
        assert optional in graph_schema()["properties"]
        assert optional not in graph_schema()["required"]
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(graph_schema())


def test_weird_names_round_trip() -> None:
    graph = _weird()
    assert PDGraph.from_json(graph.to_json()).to_json() == graph.to_json()


def test_dot_renders_every_node_and_edge_with_safe_quoting() -> None:
    graph = _weird()
    dot = graph.to_dot()
    doc = graph.to_dict(include_samples=False)
    for node in doc["nodes"]:  # type: ignore[union-attr]
        quoted = '"' + node["id"].replace("\\", "\\\\").replace('"', '\\"') + '"'
        assert f"  {quoted} [shape=box" in dot
    edge_lines = [ln for ln in dot.splitlines() if " -> " in ln]
    assert len(edge_lines) == len(doc["edges"])  # type: ignore[arg-type]
    # every double quote in the DOT text is either escaped or balanced per line
    for line in dot.splitlines():
        assert len(re.findall(r'(?<!\\)"', line)) % 2 == 0, line


def test_mermaid_renders_every_node_and_edge_with_safe_labels() -> None:
    graph = _weird()
    text = graph.to_mermaid()
    doc = graph.to_dict(include_samples=False)
    node_lines = [ln for ln in text.splitlines() if re.match(r"\s+n\d+\[", ln)]
    assert len(node_lines) == len(doc["nodes"])  # type: ignore[arg-type]
    for line in node_lines:
        label = line.split('["', 1)[1].rsplit('"]', 1)[0]
        assert '"' not in label and "<" not in label
    edge_lines = [ln for ln in text.splitlines() if "-->" in ln]
    assert len(edge_lines) == len(doc["edges"])  # type: ignore[arg-type]
    assert text.startswith("flowchart LR")


def test_png_is_written(tmp_path: Path) -> None:
    out = _learned().to_png(tmp_path / "g.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5000
