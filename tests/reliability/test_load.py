"""Load through the scheduler and the gateway (smaller than the benchmark's 500 x 20)."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import load

pytestmark = pytest.mark.slow


async def test_scheduler_load_loses_nothing(tmp_path: Path) -> None:
    result = await load.scenario_scheduler_load(tmp_path, n_apps=100, n_units=5, max_inflight=8)
    assert result["lost_paths"] == 0 and result["duplicate_grants"] == 0
    assert result["passed"], result


async def test_gateway_load_loses_nothing(tmp_path: Path) -> None:
    result = await load.scenario_gateway_load(tmp_path, n_apps=100, n_units=4, max_inflight=8)
    assert result["engine_duplicates"] == 0 and result["engine_missing"] == 0
    assert result["passed"], result
