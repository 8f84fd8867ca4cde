"""The optimised change detector (hermes_sdk.graph.drift) decides bit for bit as the reference
one it replaced (tests/graph/drift_reference.py, frozen): the same alarms at the same runs, the
same change points, and the same learned graph afterwards, on the drift tests' generators."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from hermes_sdk import Call, PDGraph, RunPath, Stage
from hermes_sdk.graph import drift, pdgraph
from tests.graph import drift_reference
from tests.graph.drift_generator import BASE, CHANGES, stream

Trace = list[tuple[int, tuple[tuple[str, int], ...], tuple[tuple[str, float], ...]]]


def _learn(
    paths: list[RunPath], monkeypatch: pytest.MonkeyPatch, reference: bool
) -> tuple[str, Trace]:
    """Observe ``paths`` with the live or the reference detector; return the graph's JSON and
    every run at which its detections changed (run, changes per node, change points per node)."""
    with monkeypatch.context() as m:
        if reference:
            m.setattr(pdgraph, "drift", drift_reference)
        graph = PDGraph(
            "drift", drift_settings=drift_reference.DEFAULT if reference else drift.DEFAULT
        )
        trace: Trace = []
        last = 0
        for i, path in enumerate(paths):
            graph.observe(path)
            if graph.changed_version != last:
                last = graph.changed_version
                trace.append(
                    (
                        i,
                        tuple(sorted(graph.changes.items())),
                        tuple(sorted(graph.changed_at.items())),
                    )
                )
        return graph.to_json() + repr(_detector_state(graph, reference)), trace


def _detector_state(graph: PDGraph, reference: bool) -> list[tuple[object, ...]]:
    """Every stream's CUSUM sides, excursion and reference, exactly (floats compared by repr)."""
    monitor = graph._drift
    assert monitor is not None
    out: list[tuple[object, ...]] = []
    streams: dict[object, Any] = {**monitor.values, **monitor.rows}
    for key in sorted(streams, key=repr):
        st = streams[key]
        if reference:
            c = st._cusum
            sides: tuple[object, ...] = (c.up, c.down, c.up_len, c.down_len)
        else:
            sides = (st._up, st._down, st._up_len, st._down_len)
        out.append((key, *sides, st._seen, st._weyl, st._ref, st._zs, st._times))
    return out


def _with_failures(paths: list[RunPath], every: int) -> list[RunPath]:
    """Every ``every``-th run failed in its last call (a truncated path)."""
    out = []
    for i, path in enumerate(paths):
        if i % every == every - 1:
            last = path.stages[-1]
            calls = (*last.calls[:-1], replace(last.calls[-1], failed=True))
            path = replace(
                path, stages=(*path.stages[:-1], replace(last, calls=calls)), failed=True
            )
        out.append(path)
    return out


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", sorted(CHANGES))
def test_same_detections_and_change_points_as_the_reference(
    kind: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = stream(BASE, CHANGES[kind], 1500, 2100, seed)
    if seed == 1:
        paths = _with_failures(paths, 7)
    want_json, want = _learn(paths, monkeypatch, reference=True)
    got_json, got = _learn(paths, monkeypatch, reference=False)
    assert want, kind  # the reference detects the change: the comparison is not vacuous
    assert got == want
    assert got_json == want_json


def test_same_on_a_stationary_stream_and_on_tokens_and_cold_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = stream(BASE, BASE, 0, 6000, seed=2)
    rng = np.random.default_rng(7)
    for i in range(1500):  # decode and cold starts 2x slower at run 900
        slow = 2.0 if i >= 900 else 1.0
        out = int(rng.integers(50, 500))
        call = Call(
            slow * (0.2 + 0.004 * out), 100, out, cold_start_s=slow * float(rng.uniform(0.5, 1.5))
        )
        paths.append(RunPath("drift", (Stage("gen", (call,), "llm", "m"),), started_at=6000.0 + i))
    want_json, want = _learn(paths, monkeypatch, reference=True)
    got_json, got = _learn(paths, monkeypatch, reference=False)
    assert any(dict(changes).get("gen") for _, changes, _ in want)
    assert got == want
    assert got_json == want_json


def test_a_stream_scores_and_alarms_as_the_reference_one() -> None:
    """Stream.value (also the prewarm planner's cold-start detector) on ties, constants and a
    shift, with the reference re-frozen as the window fills: identical alarms, step by step."""
    rng = np.random.default_rng(11)
    new = drift.Stream(drift.DEFAULT, drift.DEFAULT.threshold)
    old = drift_reference.Stream(drift_reference.DEFAULT, drift_reference.DEFAULT.threshold)
    held: list[float] = []
    alarms = 0
    for i in range(5000):
        shift = 1.0 if i >= 3000 else 0.0  # ties and constants, then a shift
        x = float(rng.integers(0, 5)) + shift if i % 3 else float(rng.exponential(1.0 + shift))
        held = [*held, x][-300:]
        got = new.value(x, float(i), held, 300)
        assert got == old.value(x, float(i), held, 300), i
        c = old._cusum
        assert (new._up, new._down, new._zs) == (c.up, c.down, old._zs), i  # bit for bit
        if got is not None:
            alarms += 1
            held = held[-got[0] :]
    assert alarms >= 1
