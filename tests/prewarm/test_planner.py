"""The decision rule: threshold, prewarm timing, release unless predicted need is high."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hermes_sdk.graph import PDGraph
from hermes_sdk.graph.records import RunState
from hermes_sdk.prewarm.keepalive import KeepAliveConfig
from hermes_sdk.prewarm.planner import PrewarmConfig, PrewarmPlanner

from .builders import learned, three_stage_path

WRITING = RunState("write", (("plan", 1), ("write", 1)), running=True)


def _planner(graph: PDGraph | None, **kw: object) -> PrewarmPlanner:
    cfg = PrewarmConfig(
        c_idle=1.0,
        c_delay=19.0,
        default_cold_start_s=2.0,
        keep_alive=KeepAliveConfig(fixed_s=1.0, min_samples=10**9),
        **kw,  # type: ignore[arg-type]
    )
    return PrewarmPlanner(lambda app, tenant: graph, ["box", "gpu"], cfg)


@pytest.fixture(scope="module")
def graph() -> PDGraph:
    rng = np.random.default_rng(5)
    return learned([three_stage_path(rng, f"r{i}") for i in range(200)])


def test_threshold_is_the_critical_ratio() -> None:
    assert PrewarmConfig(c_idle=1.0, c_delay=19.0).threshold == pytest.approx(0.05)
    assert PrewarmConfig(c_idle=3.0, c_delay=1.0).threshold == pytest.approx(0.75)


def test_prewarm_waits_until_need_is_within_the_cold_start(graph: PDGraph) -> None:
    planner = _planner(graph)
    planner.update_run("r", "coder", WRITING, now_s=100.0)  # write lasts 5..10 s
    first = planner.decide(100.0)
    assert first.signals == ()
    # prewarm at the earliest time P(need within 2 s) >= 5%: about 5 + 0.25 - 2 s in
    assert 102.5 <= first.wake_at_s <= 104.0
    assert planner.need_probability("box", 100.0) < 0.05
    second = planner.decide(first.wake_at_s)
    assert [(s.action, s.backend) for s in second.signals] == [("prewarm", "box")]
    assert second.signals[0].probability >= 0.05
    assert 0.0 <= (second.signals[0].eta_s or 0.0) <= 2.0
    assert planner.ledger.get("box").status == "starting"
    assert planner.ledger.get("gpu").status == "cold"  # never used by this app


def test_release_after_keep_alive_unless_need_is_high(graph: PDGraph) -> None:
    planner = _planner(graph)
    ledger = planner.ledger
    ledger.starting("box", 0.0, prewarm=False)
    ledger.ready("box", 2.0)
    assert planner.decide(2.5).signals == ()  # within the 1 s keep-alive
    # a run about to need box keeps it warm past its keep-alive
    planner.update_run("r", "coder", RunState("write", WRITING.visits, True, 9.9), now_s=3.0)
    assert planner.decide(3.5).signals == ()
    assert ledger.get("box").status == "warm"
    planner.end_run("r")
    out = planner.decide(3.6)
    assert [(s.action, s.backend) for s in out.signals] == [("release", "box")]
    assert ledger.get("box").status == "cold"
    m = planner.metrics(4.0)["box"]
    assert m.releases == 1 and m.wasted_warms == 0 and m.warm_idle_s == pytest.approx(1.6)


def test_unknown_app_and_non_predictive_planner_never_prewarm(graph: PDGraph) -> None:
    blind = _planner(None)
    blind.update_run("r", "coder", WRITING, 0.0)
    assert blind.decide(9.0).signals == () and math.isinf(blind.decide(9.0).wake_at_s)
    plain = _planner(graph, predictive=False)
    plain.update_run("r", "coder", WRITING, 0.0)
    assert plain.decide(9.0).signals == ()


def test_wasted_warm_and_hit_accounting(graph: PDGraph) -> None:
    planner = _planner(graph)
    ledger = planner.ledger
    ledger.starting("box", 0.0, prewarm=True)
    ledger.ready("box", 2.0)
    assert ledger.request("box", 3.0) == "warm"
    ledger.done("box", 4.0)
    ledger.released("box", 6.0)
    ledger.starting("box", 10.0, prewarm=True)
    ledger.released("box", 11.0)
    assert ledger.request("box", 20.0) == "cold"
    m = planner.metrics()["box"]
    assert (m.prewarms, m.prewarm_hits, m.wasted_warms, m.misses, m.requests) == (2, 1, 1, 1, 2)
    assert m.warm_idle_s == pytest.approx(3.0 + 2.0 + 1.0)


def test_unconfirmed_start_is_assumed_ready_or_times_out(graph: PDGraph) -> None:
    trusting = _planner(graph, assume_ready=True)
    trusting.update_run("r", "coder", WRITING, 0.0)
    signals = trusting.decide(10.0).signals  # write overran: box is needed now
    assert [s.action for s in signals] == ["prewarm"]
    assert trusting.decide(11.0).wake_at_s == pytest.approx(12.0)  # started + C
    trusting.decide(12.5)
    assert trusting.ledger.get("box").status == "warm"
    assert trusting.ledger.get("box").cold_start.count == 0  # assumed, not learned
    strict = _planner(graph, start_timeout_s=30.0)
    strict.update_run("r", "coder", WRITING, 0.0)
    strict.decide(10.0)
    strict.end_run("r")
    strict.decide(39.0)
    assert strict.ledger.get("box").status == "starting"
    strict.decide(40.5)
    assert strict.ledger.get("box").status == "cold"  # the start failed; it may be retried
