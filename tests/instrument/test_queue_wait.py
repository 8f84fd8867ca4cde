"""Waits reported by the gateway are subtracted from a unit's (and its ancestors') service."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import hermes_sdk as hermes


def test_record_wait_reduces_service_of_unit_and_ancestors_not_latency() -> None:
    run = hermes.start_run("waits")
    node = run.start_unit("answer")
    call = run.start_unit("chat", kind="llm", parent=node)
    call.record_wait(0.25)
    call.record_wait(float("nan"))  # ignored
    call.record_wait(-1.0)  # ignored
    call.record_wait(True)  # type: ignore[arg-type]  # ignored
    call.end()
    node.end()
    path = run.end()
    assert path is not None
    for unit in (call, node):
        assert unit.wait_ns == 250_000_000
        assert unit.end_ns is not None
        wall_s = (unit.end_ns - unit.start_ns) / 1e9
        assert unit.service_s == max(wall_s - 0.25, 0.0)
    (stage,) = path.stages
    assert stage.node == "answer"
    assert math.isclose(stage.calls[0].service_s, node.service_s or 0.0, abs_tol=1e-9)
    assert stage.latency_s is not None and stage.latency_s >= stage.calls[0].service_s


def test_waits_longer_than_the_unit_clamp_to_zero_service() -> None:
    run = hermes.start_run("waits")
    unit = run.start_unit("answer")
    unit.record_wait(1000.0)
    unit.end()
    assert unit.service_s == 0.0
    path = run.end()
    assert path is not None and path.stages[0].calls[0].service_s == 0.0


def test_empty_hermes_store_means_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HERMES_STORE", "")
    hermes.configure()
    with hermes.run(app="empty-env"):
        pass
    hermes.flush()
    assert hermes.stats().runs_failed_to_record == 0
    assert (tmp_path / ".hermes" / "hermes.db").exists()
