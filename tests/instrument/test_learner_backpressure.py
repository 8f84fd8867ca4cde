"""Opt-in backpressure of the queue of completed runs: with it on, ending a run waits (bounded)
for a slow store instead of dropping; off, runs are dropped and counted as before."""

from __future__ import annotations

from pathlib import Path

import pytest

import hermes_sdk.instrument as hi
from hermes_sdk.errors import ConfigError
from hermes_sdk.instrument import runtime as rt
from hermes_sdk.instrument.learner import BACKPRESSURE_MAX_SLEEPS
from tests.instrument.test_learner import APPS, GatedStore, produce

RUNS = 1_500
BOUND = 256 * 1024
"""About 30-60 of the soak's runs; the high watermark (1/8) about 4-8."""


def _soak(tmp_path: Path, *, backpressure: bool) -> GatedStore:
    """One app thread producing RUNS runs against a real SQLite store that sleeps 20 ms per
    batch (slower than the app: without backpressure the queue fills within ~40 runs)."""
    store = GatedStore(tmp_path / "h.db", delay_s=0.02)
    store.gate.set()
    hi.configure(store=store, learn_queue_bytes=BOUND, learn_backpressure=backpressure)  # type: ignore[arg-type]
    produce(RUNS, seed=7)
    assert hi.flush(60)
    return store


def test_backpressure_on_loses_nothing_to_a_slower_store(tmp_path: Path) -> None:
    store = _soak(tmp_path, backpressure=True)
    stats = hi.stats()
    s = rt.current_runtime().learner.stats()
    assert stats.runs_dropped == 0 and s.dropped == 0
    assert stats.runs_completed == RUNS == store.rows() == sum(store.batches)
    assert sum(hi.graph(app).runs for app in APPS) == RUNS
    assert s.peak_bytes <= BOUND
    assert stats.learn_backpressure_sleeps == s.backpressure_sleeps > 0  # it did wait
    assert s.backpressure_sleeps <= BACKPRESSURE_MAX_SLEEPS * RUNS


def test_backpressure_off_drops_and_counts_exactly(tmp_path: Path) -> None:
    store = _soak(tmp_path, backpressure=False)
    stats = hi.stats()
    s = rt.current_runtime().learner.stats()
    assert stats.runs_dropped > 0
    assert stats.runs_completed + stats.runs_dropped == RUNS
    assert s.submitted == RUNS and s.handled + s.dropped == RUNS
    assert store.rows() == stats.runs_completed
    assert stats.learn_backpressure_sleeps == 0


def test_backpressure_caps_the_wait_per_run(tmp_path: Path) -> None:
    """A store that never answers: every run past the high watermark sleeps exactly the cap
    (then is queued or dropped as without backpressure), never more."""
    store = GatedStore(tmp_path / "h.db")  # gate closed: the first batch never completes
    bound = 64 * 1024
    hi.configure(store=store, learn_queue_bytes=bound, learn_backpressure=True)  # type: ignore[arg-type]
    learner = rt.current_runtime().learner
    per_run: list[int] = []
    for r in range(120):
        before = learner.stats().backpressure_sleeps
        produce(1, seed=r)
        per_run.append(learner.stats().backpressure_sleeps - before)
    s = learner.stats()
    assert s.dropped > 0 and s.peak_bytes <= bound  # the bound still holds: it never blocks
    assert max(per_run) == BACKPRESSURE_MAX_SLEEPS
    assert set(per_run) <= {0, BACKPRESSURE_MAX_SLEEPS}  # the queue never drains here
    first = per_run.index(BACKPRESSURE_MAX_SLEEPS)
    assert per_run[first:] == [BACKPRESSURE_MAX_SLEEPS] * (120 - first)
    store.gate.set()
    assert hi.flush(30)


def test_backpressure_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    hi.configure(store="memory://")
    assert rt.current_runtime().learner.backpressure is False  # off by default
    monkeypatch.setenv("HERMES_LEARN_BACKPRESSURE", "1")
    hi.configure(store="memory://")
    assert rt.current_runtime().learner.backpressure is True
    hi.configure(store="memory://", learn_backpressure=False)  # the argument wins
    assert rt.current_runtime().learner.backpressure is False
    with pytest.raises(ConfigError):
        hi.configure(store="memory://", learn_backpressure="yes")  # type: ignore[arg-type]
