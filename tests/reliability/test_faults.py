"""Fault scenarios: each is a test (the benchmark runs the same scenarios at full size)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hermes_sdk.graph.records import Call, RunPath, Stage
from hermes_sdk.store import open_store

from . import faults
from .harness import RedisProcess


@pytest.mark.slow
async def test_scheduler_killed_mid_load_loses_no_acknowledged_path(tmp_path: Path) -> None:
    result = await faults.scenario_kill_restart(tmp_path, n_apps=20, n_units=6)
    assert result["lost_acknowledged"] == 0
    assert result["failed_open_units"] > 0 and result["granted_after_restart"] > 0
    assert result["passed"], result


@pytest.mark.parametrize("persist", [True, False])
async def test_redis_restart_under_two_replicas(tmp_path: Path, persist: bool) -> None:
    result = await faults.scenario_redis_restart(tmp_path, persist=persist)
    assert all(not a.startswith("500") for a in result["outage_answers"])
    assert result["passed"], result


def test_redis_path_log_lost_is_read_again(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path, persist=False)
    try:
        store = open_store(redis.url)
        path = RunPath("a", (Stage("n", (Call(1.0),)),), run_id="r0")
        for i in range(5):
            store.append_path(replace(path, run_id=f"r{i}"))
        cursor, rows = store.paths_since(0)  # type: ignore[attr-defined]
        assert (cursor, len(rows)) == (5, 5)
        redis.stop()
        redis.start()  # empty again
        store.append_path(path)
        cursor, rows = store.paths_since(cursor)  # type: ignore[attr-defined]
        assert (cursor, [p.run_id for p in rows]) == (1, ["r0"])
        store.close()
    finally:
        redis.stop()


async def test_upstream_5xx_timeouts_and_slow_streams(tmp_path: Path) -> None:
    result = await faults.scenario_upstream_faults(tmp_path)
    assert result["inflight_after"] == 0 and result["sim_inflight_after"] == 0
    assert result["passed"], result


async def test_webhook_target_down(tmp_path: Path) -> None:
    result = await faults.scenario_webhook_down(tmp_path)
    assert result["passed"], result


async def test_clock_jumps_keep_leases_and_rank_order(tmp_path: Path) -> None:
    result = await faults.scenario_clock_jumps(tmp_path)
    assert result["leases_reclaimed_by_jumps"] == 0
    assert result["passed"], result


async def test_slow_client_loses_its_slot_at_lease_expiry(tmp_path: Path) -> None:
    result = await faults.scenario_slow_client(tmp_path)
    assert result["late_release_status"] == 404
    assert result["passed"], result
