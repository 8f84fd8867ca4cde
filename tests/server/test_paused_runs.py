"""Paused runs on the scheduler (``run_pause``): no rank, no queue, kept across a restart,
resumed by the next ``run_start`` of the same run id, abandoned after ``pause_horizon_s``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hermes_sdk.errors import InvalidRequest
from hermes_sdk.server import BackendConfig, ServerConfig
from hermes_sdk.server.metrics import ServerMetrics
from hermes_sdk.server.scheduler import Scheduler
from hermes_sdk.server.wire import RunPause, parse_event
from hermes_sdk.store import Store, open_store

START_EV = {"type": "run_start", "run_id": "r1", "app": "hitl", "deadline_s": 60}


def _scheduler(now: list[float], store: Store | None = None, **kw: object) -> Scheduler:
    config = ServerConfig(
        store_url="memory://",
        run_idle_s=60.0,
        pause_horizon_s=3600.0,
        backends={"gpu": BackendConfig(max_inflight=1)},
        **kw,  # type: ignore[arg-type]
    )
    return Scheduler(
        config, store or open_store("memory://"), ServerMetrics(), clock=lambda: now[0]
    )


def _prep_then_pause(sched: Scheduler, now: list[float]) -> None:
    sched.ingest("acme", [START_EV])
    now[0] += 1.0
    sched.ingest("acme", [{"type": "unit_start", "run_id": "r1", "unit_id": "u1", "node": "prep"}])
    now[0] += 2.0
    sched.ingest("acme", [{"type": "unit_end", "run_id": "r1", "unit_id": "u1", "service_s": 2.0}])
    sched.ingest("acme", [{"type": "run_pause", "run_id": "r1"}])


def _metric(sched: Scheduler, name: str) -> float:
    for line in sched.metrics.render().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_run_pause_parses_and_rejects_bad_fields() -> None:
    assert parse_event({"type": "run_pause", "run_id": "r", "ts": 5}, 0, "t") == RunPause("r", 5.0)
    with pytest.raises(InvalidRequest):
        parse_event({"type": "run_pause", "run_id": ""}, 0, "t")
    with pytest.raises(InvalidRequest):
        parse_event({"type": "run_pause", "run_id": "r", "ts": "soon"}, 0, "t")


def test_a_paused_run_has_no_rank_and_is_listed_apart() -> None:
    now = [1000.0]
    sched = _scheduler(now)
    _prep_then_pause(sched, now)
    assert sched.tracked_runs("acme") == ()
    (view,) = sched.paused_runs("acme")
    assert (view.run_id, view.app, view.node, view.attained_s) == ("r1", "hitl", "prep", 2.0)
    now[0] += 100.0
    assert sched.paused_runs("acme")[0].paused_for_s == 100.0
    assert sched.rank_of("acme", "r1") is None
    assert _metric(sched, "hermes_runs_paused") == 1.0
    assert _metric(sched, "hermes_runs_active") == 0.0
    assert all(not q.waiting() for q in sched.queues.values())
    # a unit event of a paused run is still the same run (not a new one)
    assert sched.paused_runs("rival") == ()


def test_the_next_run_start_resumes_it_and_the_pause_is_no_wait() -> None:
    now = [1000.0]
    sched = _scheduler(now)
    _prep_then_pause(sched, now)
    now[0] += 500.0  # a person answers after 500 s
    sched.ingest("acme", [START_EV])
    (view,) = sched.tracked_runs("acme")
    assert sched.paused_runs() == ()
    assert view.node == "prep" and view.attained_s == 2.0  # where it was
    assert view.arrival_s == 1500.0  # moved by the pause: ages count active time only
    assert view.deadline_s == 1560.0
    assert sched.rank_of("acme", "r1") is not None
    assert _metric(sched, "hermes_runs_paused") == 0.0
    assert _metric(sched, "hermes_run_paused_seconds_sum") == 500.0
    run = sched.run("acme", "r1")
    assert run is not None and run.paused_s == 500.0


def test_paused_runs_survive_a_restart(tmp_path: Path) -> None:
    now = [1000.0]
    url = f"sqlite:///{tmp_path}/s.db"
    first = _scheduler(now, open_store(url))
    _prep_then_pause(first, now)
    first.close()
    now[0] += 60.0
    second = _scheduler(now, open_store(url))
    (view,) = second.paused_runs("acme")
    assert view.node == "prep" and view.paused_for_s == 60.0
    assert _metric(second, "hermes_runs_paused") == 1.0
    second.ingest("acme", [START_EV])
    (running,) = second.tracked_runs("acme")
    assert running.node == "prep" and running.attained_s == 2.0
    second.close()
    third = _scheduler(now, open_store(url))
    assert third.paused_runs() == ()  # the resume cleared the stored pause
    third.close()


def test_paused_longer_than_the_horizon_is_abandoned() -> None:
    now = [1000.0]
    sched = _scheduler(now)
    _prep_then_pause(sched, now)
    sched.ingest("acme", [{"type": "run_start", "run_id": "r2", "app": "hitl"}])
    now[0] += 600.0  # past run_idle_s (60 s) but a paused run is not idle
    assert sched.forget_idle_runs() == 1  # r2 went idle
    assert len(sched.paused_runs()) == 1
    now[0] += 3600.0
    assert sched.forget_idle_runs() == 1
    assert sched.paused_runs() == () and sched.tracked_runs() == ()
    assert _metric(sched, "hermes_runs_abandoned_total") == 1.0


def test_a_request_for_a_paused_run_resumes_it() -> None:
    now = [1000.0]
    sched = _scheduler(now)
    _prep_then_pause(sched, now)

    async def acquire() -> None:
        lease = await sched.acquire("gpu", tenant="acme", run_id="r1", timeout_s=1.0)
        sched.release(lease.lease_id)

    import asyncio

    asyncio.run(acquire())
    assert sched.paused_runs() == () and len(sched.tracked_runs()) == 1
