"""Scheduler.tracked_runs: the public, read-only snapshot of the runs a replica tracks."""

from __future__ import annotations

import dataclasses

import pytest

from hermes_sdk.graph.records import START
from hermes_sdk.server import ServerConfig
from hermes_sdk.server.metrics import ServerMetrics
from hermes_sdk.server.scheduler import RunView, Scheduler
from hermes_sdk.store import open_store


def _scheduler(now: list[float]) -> Scheduler:
    config = ServerConfig(store_url="memory://", run_idle_s=60.0)
    return Scheduler(config, open_store("memory://"), ServerMetrics(), clock=lambda: now[0])


def test_runs_appear_on_start_follow_units_and_vanish_on_end() -> None:
    now = [1000.0]
    sched = _scheduler(now)
    assert sched.tracked_runs() == ()
    sched.ingest("acme", [{"type": "run_start", "run_id": "r1", "app": "qa", "deadline_s": 30}])
    (view,) = sched.tracked_runs()
    assert isinstance(view, RunView)
    assert (view.tenant, view.run_id, view.app, view.node) == ("acme", "r1", "qa", START)
    assert (view.arrival_s, view.last_event_s, view.deadline_s) == (1000.0, 1000.0, 1030.0)
    assert view.attained_s == 0.0 and not view.position.running

    now[0] = 1002.0
    start = {"type": "unit_start", "run_id": "r1", "unit_id": "u1", "node": "plan"}
    sched.ingest("acme", [start])
    now[0] = 1005.0
    (view,) = sched.tracked_runs()
    assert view.node == "plan" and view.position.running
    assert view.position.elapsed_s == pytest.approx(3.0)
    assert view.attained_s == pytest.approx(3.0)  # the running stage counts
    assert view.last_event_s == 1002.0
    run = sched.run("acme", "r1")
    assert run is not None
    assert view.state == run.app_state(1005.0)  # exactly what the policy ranks on
    assert sched.tracked_runs(now_s=1007.0)[0].attained_s == pytest.approx(5.0)

    sched.ingest("acme", [{"type": "unit_end", "run_id": "r1", "unit_id": "u1", "service_s": 2.5}])
    (view,) = sched.tracked_runs()
    assert view.attained_s == 2.5 and not view.position.running

    sched.ingest("acme", [{"type": "run_end", "run_id": "r1"}])
    assert sched.tracked_runs() == ()


def test_snapshot_is_immutable_and_detached_from_later_events() -> None:
    now = [1000.0]
    sched = _scheduler(now)
    sched.ingest("acme", [{"type": "run_start", "run_id": "r1", "app": "qa"}])
    snap = sched.tracked_runs()
    assert isinstance(snap, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap[0].app = "other"  # type: ignore[misc]
    sched.ingest("acme", [{"type": "unit_start", "run_id": "r1", "unit_id": "u", "node": "a"}])
    sched.ingest("acme", [{"type": "run_end", "run_id": "r1"}])
    assert snap[0].node == START and len(snap) == 1


def test_tenant_filter_and_idle_runs() -> None:
    now = [1000.0]
    sched = _scheduler(now)
    sched.ingest("acme", [{"type": "run_start", "run_id": "a1", "app": "qa"}])
    sched.ingest("globex", [{"type": "run_start", "run_id": "g1", "app": "qa"}])
    now[0] += 50.0
    sched.ingest("acme", [{"type": "run_start", "run_id": "a2", "app": "chat"}])
    both = {(v.tenant, v.run_id) for v in sched.tracked_runs()}
    assert both == {("acme", "a1"), ("globex", "g1"), ("acme", "a2")}
    assert {v.run_id for v in sched.tracked_runs("acme")} == {"a1", "a2"}
    assert [v.run_id for v in sched.tracked_runs("globex")] == ["g1"]
    assert sched.tracked_runs("nobody") == ()

    now[0] += 20.0
    assert sched.forget_idle_runs() == 2
    assert [(v.tenant, v.run_id) for v in sched.tracked_runs()] == [("acme", "a2")]
