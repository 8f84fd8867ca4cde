"""Replicas with the global admission order: load across three processes, a replica killed."""

from __future__ import annotations

from pathlib import Path

from . import replicas


async def test_three_replicas_under_load_never_over_admit(tmp_path: Path) -> None:
    result = await replicas.scenario_replicas_load(tmp_path, clients=12, rounds=5)
    assert result["most_slots_held"] <= result["max_inflight"]
    assert result["distinct_lease_ids"] == result["grants"] == 60
    assert result["passed"], result


async def test_replica_killed_with_waiters_they_retry_elsewhere(tmp_path: Path) -> None:
    result = await replicas.scenario_replica_killed_with_waiters(tmp_path)
    assert result["retried_elsewhere"] == result["served"] == result["waiters"]
    assert result["most_slots_held"] <= 1
    assert result["passed"], result
