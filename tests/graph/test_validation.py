"""Bad input raises a GraphError (a ValueError and a HermesError) and loses nothing learned."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hermes_sdk.graph.validation as validation_module
from hermes_sdk import Call, GraphError, HermesError, PDGraph, RunPath, RunState, Stage
from hermes_sdk.graph.records import path_from_dict
from tests.graph import generator as gen


@pytest.fixture
def graph() -> PDGraph:
    rng = np.random.default_rng(9)
    g = PDGraph(gen.APP)
    for i in range(30):
        g.observe(gen.make_path(rng, i))
    return g


def _assert_unchanged(graph: PDGraph, before: str) -> None:
    assert graph.to_json() == before
    assert graph.runs == 30


def test_error_is_one_tree() -> None:
    assert issubclass(GraphError, ValueError)
    assert issubclass(GraphError, HermesError)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"service_s": -1.0}, "service_s"),
        ({"service_s": math.nan}, "service_s"),
        ({"service_s": math.inf}, "service_s"),
        ({"service_s": 1.0, "input_tokens": -5}, "input_tokens"),
        ({"service_s": 1.0, "output_tokens": 10**12}, "output_tokens"),
        ({"service_s": 1e12}, "exceeds"),
    ],
)
def test_bad_numbers_rejected_by_records(
    graph: PDGraph, bad: dict[str, float], message: str
) -> None:
    before = graph.to_json()
    doc = {"app": gen.APP, "stages": [{"node": "plan", "calls": [bad]}]}
    with pytest.raises(GraphError, match=message):
        graph.observe(path_from_dict(doc))
    _assert_unchanged(graph, before)


def test_values_smuggled_past_records_are_rejected_by_observe(graph: PDGraph) -> None:
    before = graph.to_json()
    call = Call(1.0)
    object.__setattr__(call, "service_s", math.nan)  # bypasses Call validation
    path = RunPath(gen.APP, (Stage("plan", (Call(0.5),)), Stage("brand-new", (call,))))
    with pytest.raises(GraphError, match="service_s"):
        graph.observe(path)
    _assert_unchanged(graph, before)  # the good first stage was not folded in either
    assert "brand-new" not in graph.nodes


def test_path_of_another_app_rejected(graph: PDGraph) -> None:
    before = graph.to_json()
    with pytest.raises(GraphError, match="app 'other'"):
        graph.observe(RunPath("other", (Stage("plan", (Call(1.0),)),)))
    _assert_unchanged(graph, before)


def test_reserved_and_unknown_names(graph: PDGraph) -> None:
    with pytest.raises(GraphError, match="reserved"):
        Stage("END", (Call(1.0),))
    with pytest.raises(GraphError, match="control characters"):
        Stage("bad\x00name", (Call(1.0),))
    before = graph.to_json()
    with pytest.raises(GraphError, match="RunPath"):
        graph.observe({"app": gen.APP})  # type: ignore[arg-type]
    _assert_unchanged(graph, before)


def test_new_composite_nodes_are_fine(graph: PDGraph) -> None:
    graph.observe(RunPath(gen.APP, (Stage("search|lookup", (Call(1.0), Call(2.0))),)))
    assert graph.node_stats("search|lookup").count == 1


def test_absurd_sizes_rejected(graph: PDGraph, monkeypatch: pytest.MonkeyPatch) -> None:
    before = graph.to_json()
    with pytest.raises(GraphError, match="fan-out"):
        Stage("search", tuple(Call(0.1) for _ in range(10_001)))
    too_long = tuple(
        Stage("refine", (Call(0.1),)) for _ in range(validation_module.MAX_PATH_STAGES + 1)
    )
    with pytest.raises(GraphError, match="stages"):
        graph.observe(RunPath(gen.APP, too_long))
    monkeypatch.setattr(validation_module, "MAX_NODES", 5)
    many = tuple(Stage(f"n{i}", (Call(0.1),)) for i in range(3))
    with pytest.raises(GraphError, match="exceed 5 nodes"):
        graph.observe(RunPath(gen.APP, many))
    _assert_unchanged(graph, before)


def test_bad_queries(graph: PDGraph) -> None:
    with pytest.raises(GraphError, match="n must be"):
        graph.remaining_demand(RunState(), n=0)
    with pytest.raises(GraphError, match="RunState"):
        graph.remaining_demand("START")  # type: ignore[arg-type]
    with pytest.raises(GraphError, match="elapsed_s"):
        graph.remaining_demand(RunState("plan", running=True, elapsed_s=math.nan))
    with pytest.raises(GraphError, match="no node"):
        graph.node_stats("nope")


@pytest.mark.parametrize(
    "kwargs",
    [{"window": 0}, {"window": 1.5}, {"half_life_s": -1.0}, {"max_visit": 0}, {"max_visit": 65}],
)
def test_bad_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(GraphError):
        PDGraph("x", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"schema_version": 2}', '{"schema_version": 1, "app": "x"}'],
)
def test_from_json_rejects_garbage(text: str) -> None:
    with pytest.raises(GraphError):
        PDGraph.from_json(text)


def test_from_json_rejects_inconsistent_documents(graph: PDGraph) -> None:
    import json

    doc = json.loads(graph.to_json())
    doc["edges"][0]["target"] = "ghost"
    with pytest.raises(GraphError, match="ghost"):
        PDGraph.from_dict(doc)
    doc = json.loads(graph.to_json())
    doc["nodes"][0]["service_s"]["values"] = [1.0] * 2000
    with pytest.raises(GraphError, match="window"):
        PDGraph.from_dict(doc)
    summary_only = graph.to_dict(include_samples=False)
    with pytest.raises(GraphError, match="include_samples"):
        PDGraph.from_dict(summary_only)


@pytest.mark.parametrize("bad", [[1.0, "x"], [1.0, True], [-1.0], [float("inf")], "1,2"])
def test_from_json_checks_sample_lists(graph: PDGraph, bad: object) -> None:
    import json

    doc = json.loads(graph.to_json())
    doc["nodes"][0]["service_s"]["values"] = bad
    with pytest.raises(GraphError):
        PDGraph.from_dict(doc)


@pytest.mark.parametrize(
    "state",
    [
        RunState("plan", (("plan", -1),)),
        RunState("plan", (("plan", 1.5),)),  # type: ignore[arg-type]
        RunState("plan", (("plan", 1),), running=True, input_tokens=-3),
        RunState("plan", (("plan", 1),), running=True, width=-2),
    ],
)
def test_bad_states_rejected(graph: PDGraph, state: RunState) -> None:
    with pytest.raises(GraphError, match="state"):
        graph.remaining_demand(state)


def test_too_many_calls_in_one_path(graph: PDGraph, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validation_module, "MAX_PATH_CALLS", 10)
    wide = tuple(Stage("search", tuple(Call(0.1) for _ in range(4))) for _ in range(3))
    with pytest.raises(GraphError, match="calls in total"):
        graph.observe(RunPath(gen.APP, wide))


def test_from_json_rejects_duplicate_nodes(graph: PDGraph) -> None:
    import json

    doc = json.loads(graph.to_json())
    doc["nodes"].append(doc["nodes"][0])
    with pytest.raises(GraphError, match="duplicate"):
        PDGraph.from_dict(doc)
