"""Change detection (hermes_sdk.graph.drift): a graph follows a change within a hundred runs of
the new behaviour and forgets nothing on a stationary stream (generator: drift_generator.py)."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest

from hermes_sdk import Call, PDGraph, RunPath, RunState, Stage
from hermes_sdk.errors import GraphError
from hermes_sdk.graph.cusum import Cusum, DriftSettings, cusum_threshold
from hermes_sdk.graph.records import START
from hermes_sdk.graph.sketch import Sketch
from tests.graph.drift_generator import BASE, CHANGES, exact_mean_s, make_path, stream

CHANGE_AT = 2000


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", sorted(CHANGES))
def test_mean_at_start_follows_a_change_within_100_runs(kind: str, seed: int) -> None:
    after = CHANGES[kind]
    graph, off = PDGraph("drift"), PDGraph("drift", drift_settings=None)
    for path in stream(BASE, after, CHANGE_AT, CHANGE_AT + 100, seed):
        graph.observe(path)
        off.observe(path)
    truth = exact_mean_s(after)
    mean = float(graph.remaining_demand(RunState(START), n=8000).mean())
    stale = float(off.remaining_demand(RunState(START), n=8000).mean())
    assert abs(mean / truth - 1.0) <= 0.10, (kind, seed, mean / truth)
    assert abs(stale / truth - 1.0) > abs(mean / truth - 1.0)  # the window alone lags
    assert sum(graph.changes.values()) >= 1 and graph.changed_version > CHANGE_AT
    assert max(graph.changed_at.values()) >= CHANGE_AT - 50  # located near the change


def _row_error(graph: PDGraph) -> float:
    """Mean |p - truth| of plan's branch and refine's per-visit loop hazards."""
    errs = [abs(graph.next_stage_probs(RunState("plan", (("plan", 1),)))["search"] - 0.7)]
    law = dict(BASE.loop_law)
    for visit in range(1, 5):
        more = sum(p for k, p in law.items() if k > visit) / sum(
            p for k, p in law.items() if k >= visit
        )
        probs = graph.next_stage_probs(RunState("refine", (("plan", 1), ("refine", visit))))
        errs.append(abs(probs.get("refine", 0.0) - more))
    return float(np.mean(errs))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stationary_stream_of_10000_runs_forgets_nothing(seed: int) -> None:
    graph, off = PDGraph("drift"), PDGraph("drift", drift_settings=None)
    for path in stream(BASE, BASE, 0, 10_000, seed):
        graph.observe(path)
        off.observe(path)
    assert all(n <= 1 for n in graph.changes.values()), dict(graph.changes)
    assert _row_error(graph) <= _row_error(off) + 0.01
    rng = np.random.default_rng(1000 + seed)
    fresh = np.array([make_path(BASE, rng, i).service_s for i in range(4000)])
    p95 = float(np.quantile(graph.remaining_demand(RunState(START), n=20_000), 0.95))
    assert 0.93 <= float(np.mean(fresh <= p95)) <= 0.97


def test_token_model_and_cold_starts_restart_on_a_change() -> None:
    graph = PDGraph("tok")
    rng = np.random.default_rng(7)
    for i in range(600):
        slow = 2.0 if i >= 400 else 1.0  # decode gets 2x slower at run 400
        out = int(rng.integers(50, 500))
        secs = slow * (0.2 + 0.004 * out) * float(rng.uniform(0.9, 1.1))
        cold = slow * float(rng.uniform(0.5, 1.5))
        call = Call(secs, input_tokens=100, output_tokens=out, cold_start_s=cold)
        graph.observe(RunPath("tok", (Stage("gen", (call,), "llm", "m"),), started_at=float(i)))
    assert graph.changes["gen"] >= 1 and graph.changed_at["gen"] >= 390
    model = graph.token_models["m"]
    assert model.n < 200  # refitted on post-change calls only
    coef = model.coef()
    assert coef is not None and coef[2] == pytest.approx(0.008, rel=0.1)
    cold = graph.node_stats("gen").cold_start_s.mean()
    assert cold is not None and cold == pytest.approx(2.0, rel=0.1)


def test_cusum_threshold_matches_siegmund_and_a_simulated_run_length() -> None:
    h = cusum_threshold(1e4, 0.25)
    b = 0.5 * (h + 1.166)
    assert (np.expm1(b) - b) / 0.125 == pytest.approx(1e4, rel=1e-6)
    assert cusum_threshold(1e6, 0.25) > h
    rng = np.random.default_rng(3)
    lengths = []
    for _ in range(60):  # two sides, each 1e4 in control: ~5e3 observations between alarms
        c, t = Cusum(0.25, h), 0
        while c.update(float(rng.standard_normal())) is None:
            t += 1
        lengths.append(t + 1)
    assert 2.5e3 < float(np.mean(lengths)) < 1e4


def test_settings_are_checked_and_none_disables() -> None:
    bad_settings: tuple[dict[str, float], ...] = (
        {"false_alarm_rate": 0.0},
        {"shift": -1.0},
        {"min_reference": 1},
        {"min_change": -0.1},
        {"min_change_s": float("nan")},
    )
    for bad in bad_settings:
        with pytest.raises(GraphError):
            DriftSettings(**bad)  # type: ignore[arg-type]
    graph = PDGraph("x", drift_settings=None)
    for i in range(300):
        s = 1.0 if i < 150 else 10.0
        graph.observe(RunPath("x", (Stage("a", (Call(s),)),), started_at=float(i)))
    assert not graph.changes and len(graph.node_stats("a").service_s) == 300


def _regimes(rng: np.random.Generator, runs: int, base_s: float, slow: float) -> list[RunPath]:
    """Wall-clock-like service times: log-normal noise around a level that switches between
    ``base_s`` and ``slow * base_s`` in bursts of 50-300 runs (load, frequency scaling), so
    consecutive calls are not independent although nothing about the app changed."""
    paths, level, left = [], base_s, 0
    for i in range(runs):
        if left == 0:
            level, left = (base_s * slow if level == base_s else base_s), int(rng.integers(50, 300))
        left -= 1
        width = int(rng.integers(2, 5))
        calls = tuple(Call(level * float(rng.lognormal(0.0, 0.3))) for _ in range(width))
        paths.append(RunPath("x", (Stage("a", calls, "retriever"),), started_at=float(i)))
    return paths


def test_immaterial_or_autocorrelated_shifts_do_not_cut_the_evidence() -> None:
    """A decorated app's measured 20 us calls wander 1.5x with the machine's load: the rank
    test alarms on that (its scores are not independent), but a change of the mean under
    ``min_change_s`` is absorbed, so the fan-out width learned over every run is kept."""
    paths = _regimes(np.random.default_rng(5), 3000, 20e-6, 1.5)
    graph = PDGraph("x")
    ungated = PDGraph("x", drift_settings=DriftSettings(min_change=0.0, min_change_s=0.0))
    for path in paths:
        graph.observe(path)
        ungated.observe(path)
    assert ungated.changes["a"] >= 3  # the ungated rank test does alarm on this stream
    assert not graph.changes
    widths = [p.stages[0].width for p in paths[-graph.window :]]
    assert graph.node_stats("a").width.mean() == pytest.approx(float(np.mean(widths)))
    # a 5% persistent shift of 2 s calls is over min_change_s but under min_change: absorbed
    slow = PDGraph("x")
    for path in _regimes(np.random.default_rng(6), 3000, 2.0, 1.05):
        slow.observe(path)
    assert not slow.changes


def test_a_material_shift_of_short_calls_is_still_followed() -> None:
    """The gate does not hide real changes of fast calls: 2 ms -> 4 ms is detected."""
    rng = np.random.default_rng(7)
    graph = PDGraph("x")
    for i in range(1200):
        level = 2e-3 if i < 1000 else 4e-3
        call = Call(level * float(rng.lognormal(0.0, 0.3)))
        graph.observe(RunPath("x", (Stage("a", (call,)),), started_at=float(i)))
    assert graph.changes["a"] == 1 and graph.changed_at["a"] >= 950
    assert graph.node_stats("a").service_s.mean() == pytest.approx(4e-3 * np.exp(0.045), rel=0.1)


def test_sketch_keep_last_keeps_the_newest_in_order() -> None:
    sk = Sketch(4)
    for i in range(6):
        sk.add(float(i), float(i))
    assert sk.keep_last(2) == 2
    assert sk.chronological()[0].tolist() == [4.0, 5.0]
    sk.add(6.0, 6.0)
    sk.add(7.0, 7.0)
    sk.add(8.0, 8.0)
    assert sk.chronological()[0].tolist() == [5.0, 6.0, 7.0, 8.0]


def test_rank_tables_rebuild_as_soon_as_a_change_is_detected() -> None:
    from hermes_sdk.graph import GraphRegistry
    from hermes_sdk.graph.rank_tables import RankTableSettings

    reg = GraphRegistry(rank_tables=RankTableSettings())
    tables = reg.rank_tables
    assert tables is not None
    paths = stream(BASE, CHANGES["service_2x"], 1000, 1200, seed=4)
    for path in paths[:1000]:
        reg.observe(path)
    before = tables.point("drift", RunState()).p50_s
    built = tables.rebuilds
    graph = reg.get("drift")
    assert graph is not None
    for path in paths[1000:]:  # fewer runs than the tables' staleness allowance (200)
        reg.observe(path)
        if graph.changes:
            break
    assert graph.changes and graph.runs < 1200
    after = tables.point("drift", RunState()).p50_s
    assert tables.rebuilds == built + 1 and after > before * 1.2


def test_export_carries_the_last_change_per_node_and_round_trips() -> None:
    from hermes_sdk.graph.export import validate_graph_json

    graph = PDGraph("drift")
    for path in stream(BASE, CHANGES["service_2x"], 1000, 1200, seed=1):
        graph.observe(path)
    doc = graph.to_dict()
    validate_graph_json(doc)
    nodes = cast(list[dict[str, Any]], doc["nodes"])
    changed = {nd["id"]: nd["changed_at"] for nd in nodes if "changed_at" in nd}
    assert changed == graph.changed_at and set(changed) >= {"plan", "refine"}
    text = graph.to_json()
    again = PDGraph.from_json(text)
    assert again.to_json() == text and again.changes == graph.changes
    quiet = PDGraph("drift")
    quiet.observe(stream(BASE, BASE, 0, 1, seed=0)[0])
    assert all("changed_at" not in nd for nd in cast(list[Any], quiet.to_dict()["nodes"]))


def test_the_prewarm_planners_cold_start_estimate_follows_a_change() -> None:
    from hermes_sdk.prewarm.keepalive import ColdStartSketch

    sketch, rng = ColdStartSketch(window=200), np.random.default_rng(5)
    for _ in range(150):
        sketch.observe(float(rng.uniform(4.0, 6.0)))
    assert sketch.changes == 0 and sketch.count == 150
    for _ in range(60):  # a new image: starts take twice as long
        sketch.observe(float(rng.uniform(8.0, 12.0)))
    assert sketch.changes == 1
    assert sketch.mean_s() == pytest.approx(10.0, rel=0.05)
