"""hermes_sdk.instrument.pauses: a run paused and resumed (any process sharing the store) is one
run; its pause is ``paused_s``, never service; abandoned pauses are learned like failed runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import hermes_sdk.instrument as hi
from hermes_sdk.graph.records import RunPath
from hermes_sdk.instrument.paused_record import PAUSED_NAMESPACE, PausedRun
from hermes_sdk.instrument.paused_store import (
    abandon_paused,
    paused_store,
    store_paused,
    sweep_abandoned,
    take_paused,
)
from hermes_sdk.instrument.pauses import (
    ProgressCache,
    continue_call,
    pause_run,
    replay_carried,
    resume_run,
    snapshot_run,
)

WAIT_S = 0.2


@pytest.fixture(autouse=True)
def embedded(tmp_path: Path) -> Iterator[None]:
    hi.configure(store=f"sqlite:///{tmp_path}/h.db", enabled=True)
    yield
    hi.configure(store="memory://", enabled=True)


def _unit(run: hi.RunHandle, name: str, seconds: float = 0.002) -> hi.UnitHandle:
    unit = run.start_unit(name)
    time.sleep(seconds)
    unit.end()
    return unit


def _paused_after_prep_and_ask() -> PausedRun:
    run = hi.start_run("hitl")
    _unit(run, "prep")
    ask = _unit(run, "ask")
    paused = pause_run(run, [(ask, "ask:1")])
    assert paused is not None
    assert run.end() is None  # inert: the pause did not end it
    return paused


def test_pause_store_take_resume_is_one_run() -> None:
    paused = _paused_after_prep_and_ask()
    assert [s.node for s in paused.stages] == ["prep"]
    assert [c.task for c in paused.carried] == ["ask:1"]
    store = paused_store()
    assert store_paused(store, "k", paused)
    time.sleep(WAIT_S)
    taken = take_paused(store, "k")
    assert taken == paused  # the JSON round trip keeps every field
    assert take_paused(store, "k") is None  # claimed once
    run, carry_ns = resume_run(taken)
    ask = run.start_unit("ask")
    (carried,) = taken.carried
    continue_call(ask, carried)
    ask.end()
    _unit(run, "fin")
    path = run.end()
    assert path is not None and path.run_id == paused.run_id
    assert [s.node for s in path.stages] == ["prep", "ask", "fin"]
    assert path.paused_s >= WAIT_S
    assert path.stages[1].service_s >= carried.call.service_s  # both attempts
    assert path.stages[1].service_s < WAIT_S  # but not the wait
    assert carry_ns > 0
    graph = hi.graph("hitl")
    assert graph.runs == 1 and dict(graph.transitions[("prep", 1)]) == {"ask": 1}


def test_completed_calls_of_the_paused_step_rejoin_its_stage() -> None:
    run = hi.start_run("fan")
    done = run.start_unit("work")
    stuck = run.start_unit("work")  # overlapping: one stage of width 2
    done.end()
    stuck.end()
    paused = pause_run(run, [(done, ""), (stuck, "work:2")])
    assert paused is not None and paused.stages == ()
    resumed, _ = resume_run(paused)
    again = resumed.start_unit("work")
    continue_call(again, paused.carried[1])
    replay_carried(resumed, [paused.carried[0]], start_ns=again.start_ns)
    again.end()
    path = resumed.end()
    assert path is not None and [(s.node, s.width) for s in path.stages] == [("work", 2)]


def test_abandoned_pauses_are_learned_like_failed_runs() -> None:
    paused = _paused_after_prep_and_ask()
    store = paused_store()
    store_paused(store, "old", paused)
    assert sweep_abandoned(store, horizon_s=3600.0) == []
    (path,) = sweep_abandoned(store, horizon_s=0.0, app="hitl")
    assert isinstance(path, RunPath) and path.abandoned and path.failed
    assert [s.node for s in path.stages] == ["prep", "ask"]
    assert path.stages[1].calls[0].failed  # the interrupted call never completed
    assert store is not None and "path" not in (store.get_json(PAUSED_NAMESPACE, "old") or {})
    graph = hi.graph("hitl")
    assert graph.runs == 1 and graph.failed_runs == 1
    assert abandon_paused(paused) is not None  # direct form, same record


def test_progress_snapshots_are_incremental() -> None:
    run = hi.start_run("long")
    cache = ProgressCache()
    assert snapshot_run(run, cache=cache) is None  # nothing finished yet
    _unit(run, "a")
    first = snapshot_run(run, cache=cache)
    _unit(run, "b")
    second = snapshot_run(run, cache=cache)
    assert first is not None and second is not None
    assert [s.node for s in second.stages] == ["a", "b"] and cache.upto == 2
    assert second.stages[0] is first.stages[0]  # formed once
    assert run.end() is not None  # a snapshot does not stop the run


def test_disabled_instrumentation_pauses_nothing() -> None:
    hi.configure(store="memory://", enabled=False)
    run = hi.start_run("off")
    assert pause_run(run, []) is None and paused_store() is None
