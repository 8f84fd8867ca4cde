"""Failed runs teach only what they did; transition rows remember only their last ``window``."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from hermes_sdk import Call, PDGraph, RunPath, RunState, Stage
from hermes_sdk.errors import GraphError
from hermes_sdk.graph import validate_graph_json
from hermes_sdk.graph.prior import MIN_POOLED_SAMPLES, PooledPrior
from hermes_sdk.graph.records import END, START

APP = "f"


def _run(*nodes: str, failed: bool = False, last_call_failed: bool = False) -> RunPath:
    stages = []
    for i, name in enumerate(nodes):
        broken = last_call_failed and i == len(nodes) - 1
        calls = (Call(1.0), Call(0.25, failed=True)) if broken else (Call(1.0),)
        stages.append(Stage(name, calls, "tool", "be"))
    return RunPath(APP, tuple(stages), failed=failed)


def _complete_runs() -> PDGraph:
    graph = PDGraph(APP)
    for i in range(10):  # P(END | X) = 0.5, P(Y | X) = 0.5
        graph.observe(_run("X", "Y") if i % 2 else _run("X"))
    return graph


def test_failed_run_adds_no_end_and_keeps_p_end() -> None:
    graph = _complete_runs()
    before = graph.next_stage_probs(RunState.after(_run("X").stages))
    assert before == {END: 0.5, "Y": 0.5}
    version = graph.version
    graph.observe(_run("X", failed=True))  # crashed after X: X -> END is not real
    after = graph.next_stage_probs(RunState.after(_run("X").stages))
    assert after == before
    assert graph.transition_counts("X", 1) == {END: 5, "Y": 5}
    assert graph.failed_runs == 1 and graph.runs == 11
    assert graph.version == version + 1
    # the transitions it did take are learned: START -> X
    assert graph.transition_counts(START, 1)["X"] == 11


def test_failed_run_learns_its_transitions_and_completed_calls_only() -> None:
    graph = _complete_runs()
    y_calls = graph.node_stats("Y").service_s.values.size
    stage_n = graph.node_stats("Y").stage_service_s.values.size
    run_n = len(graph.run_service_s)
    graph.observe(_run("X", "Y", failed=True, last_call_failed=True))
    assert graph.transition_counts("X", 1) == {END: 5, "Y": 6}
    assert graph.transition_counts("Y", 1) == {END: 5}
    stats = graph.node_stats("Y")
    # the completed call (1.0 s) feeds the per-call sketch, the failed one (0.25 s) does not
    assert stats.service_s.values.size == y_calls + 1
    assert 0.25 not in stats.service_s.values.tolist()
    # the stage was cut short: its total (1.25 s) is not a stage sample; nor is the run total
    assert stats.stage_service_s.values.size == stage_n
    assert len(graph.run_service_s) == run_n


def test_only_failed_runs_answer_from_the_prior_and_export_failed_runs() -> None:
    prior = PooledPrior()
    for _ in range(MIN_POOLED_SAMPLES):
        prior.add(7.0)
    graph = PDGraph(APP, prior=prior)
    graph.observe(_run("X", "Y", failed=True))
    assert graph.transition_counts("Y", 1) == {}
    assert graph.next_stage_probs(RunState.after(_run("X", "Y").stages)) == {}
    # no complete run: the pooled prior answers, and the truncated total (2 s) is not in it
    assert np.all(graph.remaining_demand(RunState()) == 7.0)
    doc = json.loads(graph.to_json())
    validate_graph_json(doc)
    assert doc["failed_runs"] == 1 and doc["runs"] == 1
    again = PDGraph.from_json(json.dumps(doc))
    assert again.failed_runs == 1 and again.to_json() == graph.to_json()
    del doc["failed_runs"]  # documents written before the field load with 0
    assert PDGraph.from_json(json.dumps(doc)).failed_runs == 0
    doc["failed_runs"] = 2
    with pytest.raises(GraphError):
        PDGraph.from_json(json.dumps(doc))


def test_drift_is_followed_within_one_window() -> None:
    graph = PDGraph(APP, window=1000)
    for _ in range(2000):
        graph.observe(_run("A", "B"))
    for _ in range(2000):
        graph.observe(_run("A", "C"))
    assert graph.next_stage_probs(RunState.after(_run("A").stages)) == {"C": 1.0}
    assert graph.transition_counts("A", 1) == {"C": 1000}
    # remaining demand after A is C's stage (1 s), never B's
    assert np.all(graph.remaining_demand(RunState.after(_run("A").stages)) == 1.0)


def test_each_transition_row_is_bounded_by_the_window() -> None:
    window = 50
    graph = PDGraph(APP, window=window)
    rng = np.random.default_rng(3)
    for _ in range(600):
        loops = int(rng.integers(1, 12))  # visits beyond max_visit share the last row
        graph.observe(_run("A", *(["L"] * loops)))
    for (node, visit), counts in graph.transitions.items():
        assert sum(counts.values()) <= window, (node, visit)
        assert sum(graph.transition_counts(node, visit).values()) <= window
    windows = graph.transition_windows()
    assert set(windows) == set(graph.transitions)
    for key, targets in windows.items():
        assert len(targets) <= window
        assert {t: targets.count(t) for t in set(targets)} == dict(graph.transitions[key])
    # one str object per name, not one per observed path
    assert len({id(t) for targets in windows.values() for t in targets}) <= len(graph.nodes) + 1
    size = sys.getsizeof(graph._recent[("L", graph.max_visit)])
    for _ in range(600):
        graph.observe(_run("A", *(["L"] * 12)))
    assert sys.getsizeof(graph._recent[("L", graph.max_visit)]) <= size


def test_round_trip_keeps_windows_and_old_documents_are_scaled() -> None:
    graph = PDGraph(APP, window=20)
    for i in range(45):
        graph.observe(_run("A", "B") if i % 3 else _run("A", "C"))
    text = graph.to_json()
    counts = graph.transition_counts("A", 1)
    assert sum(counts.values()) == 20 and set(counts) == {"B", "C"}
    again = PDGraph.from_json(text)
    assert again.to_json() == text
    assert again.transition_windows() == graph.transition_windows()
    for _ in range(7):
        graph.observe(_run("A", "C"))
        again.observe(_run("A", "C"))
    assert again.to_json() == graph.to_json()
    # a document without windows (older exports, unbounded counts) loads scaled to the window
    doc = json.loads(text)
    del doc["transition_windows"]
    for edge in doc["edges"]:
        for bv in edge["by_visit"]:
            bv["count"] *= 10
        edge["count"] *= 10
    old = PDGraph.from_json(json.dumps(doc))
    assert old.transition_counts("A", 1) == counts
    assert sorted(old.transition_windows()[("A", 1)]) == sorted(counts.elements())
    # a window that disagrees with the edge counts is rejected
    bad = json.loads(text)
    bad["transition_windows"][0]["runs"][0][1] += 1
    with pytest.raises(GraphError):
        PDGraph.from_json(json.dumps(bad))
