"""PDGraph.observe_many learns exactly what observe() of each run in turn learns: the same graph,
the same change detections at the same runs with the same cut points, the same detector state
bit for bit, whatever the batch size (tests/graph/drift_generator.py's changes, failed runs,
cold starts, token fits, ties and constants)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hermes_sdk import Call, GraphError, PDGraph, RunPath, Stage
from hermes_sdk.graph import drift
from tests.graph.drift_generator import BASE, CHANGES, stream
from tests.graph.test_drift_equivalence import _detector_state, _with_failures


def _state(graph: PDGraph) -> str:
    """Everything a graph learned, internal layouts (ring order, key order) included."""
    out: list[object] = [graph.to_json(), graph.transition_windows()]
    out += [graph.runs, graph.failed_runs, graph.empty_runs, graph.version]
    out += [sorted(graph.changes.items()), sorted(graph.changed_at.items())]
    out += [graph.changed_version, list(graph.transitions.items())]
    for name, node in graph.nodes.items():
        out.append((name, node.kind, node.backend, node.count, node.calls))
        for sk in (*node.SKETCHES, "stage_latency_s"):
            s = getattr(node, sk)
            out.append((sk, s._values_list, s._times_list, s._head, s.total_added))
    for backend, model in graph.token_models.items():
        out.append((backend, list(model._sums), model.n))
    rs, prior = graph.run_service_s, graph.prior.sketch
    out += [rs._values_list, rs._times_list, prior._values_list, prior._head]
    if graph._drift is not None:
        out.append(_detector_state(graph, reference=False))
        out.append(sorted((k, list(v)) for k, v in graph._drift.marks.items()))
    return repr(out)


def _one_by_one(paths: list[RunPath], **kwargs: object) -> PDGraph:
    graph = PDGraph(paths[0].app, **kwargs)  # type: ignore[arg-type]
    for path in paths:
        graph.observe(path)
    return graph


def _batched(paths: list[RunPath], size: int, **kwargs: object) -> PDGraph:
    graph = PDGraph(paths[0].app, **kwargs)  # type: ignore[arg-type]
    for i in range(0, len(paths), size):
        assert graph.observe_many(paths[i : i + size]) == []
    return graph


@pytest.mark.parametrize("size", [1, 7, 250, 5000])
@pytest.mark.parametrize("kind", sorted(CHANGES))
def test_batches_learn_and_detect_exactly_as_one_by_one(kind: str, size: int) -> None:
    paths = _with_failures(stream(BASE, CHANGES[kind], 1500, 2100, seed=3), 11)
    want = _one_by_one(paths)
    assert want.changes, kind  # a change was detected: the comparison covers the cut path
    got = _batched(paths, size)
    assert _state(got) == _state(want)


def test_same_on_cold_starts_tokens_ties_and_a_small_window() -> None:
    rng = np.random.default_rng(5)
    paths = []
    for i in range(3000):
        slow = 2.0 if i >= 1700 else 1.0
        out = int(rng.integers(0, 4))  # ties: 4 distinct token counts
        calls = (Call(slow * 0.1 * (1 + out), 100, out, cold_start_s=slow * float(rng.random())),)
        stages = [Stage("gen", calls, "llm", "m"), Stage("tool", (Call(1.0),), "tool")]  # constant
        if i % 3 == 0:
            stages.append(Stage("gen", calls * 2, "llm", "m"))  # a second visit, two calls
        paths.append(RunPath("a", tuple(stages), started_at=float(i), failed=i % 13 == 0))
    for kwargs in ({}, {"window": 200}, {"drift_settings": None}):
        want = _one_by_one(paths, **kwargs)
        for size in (3, 400):
            assert _state(_batched(paths, size, **kwargs)) == _state(want), (kwargs, size)


def test_a_stationary_soak_shape_in_batches() -> None:
    """The soak's shape (llm + tool, 1-12 iterations, wall-clock-like tiny quantised seconds)."""
    rng = np.random.default_rng(8)
    paths = []
    for i in range(2500):
        stages = []
        for j in range(int(rng.integers(1, 13))):
            stages.append(
                Stage("think", (Call(float(rng.integers(1, 40)) * 1e-7, 300 + j, 40 + j),), "llm")
            )
            stages.append(Stage("act", (Call(float(rng.integers(5, 9)) * 1e-7),), "tool"))
        paths.append(RunPath("soak", tuple(stages), started_at=float(i)))
    want = _one_by_one(paths)
    assert _state(_batched(paths, 600)) == _state(want)


def test_a_refused_path_is_returned_and_the_rest_learned() -> None:
    good = stream(BASE, BASE, 0, 30, seed=1)
    bad = replace(good[3], app="other")
    empty = RunPath("drift", ())
    graph = PDGraph("drift")
    refused = graph.observe_many([*good[:10], bad, empty, *good[10:]])
    assert [i for i, _ in refused] == [10]
    assert isinstance(refused[0][1], GraphError)
    assert graph.empty_runs == 1
    want = _one_by_one(good)
    want.observe(empty)
    assert _state(graph) == _state(want)


def test_a_batch_keeps_the_prior_samples_in_the_callers_order() -> None:
    paths = stream(BASE, BASE, 0, 20, seed=2)
    graph = PDGraph("drift")
    prior: list[tuple[int, float]] = []
    graph.observe_many(paths, prior=prior)
    assert prior == [(i, p.service_s) for i, p in enumerate(paths)]
    assert len(graph.prior.sketch) == 0


def test_detection_stays_on_by_default() -> None:
    assert PDGraph("x")._drift is not None
    assert drift.DEFAULT.min_change > 0
