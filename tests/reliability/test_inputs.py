"""Hostile input is refused with a clear 4xx / HermesError and nothing learned is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import inputs


@pytest.mark.slow
async def test_hostile_input_is_refused_and_graphs_are_unchanged(tmp_path: Path) -> None:
    result = await inputs.scenario_input_limits(tmp_path, huge_n=150_000)  # limit: 10^5
    assert result["refused_not_4xx"] == []
    assert result["graph_json_identical"] and result["library"]["graph_json_identical"]
    assert result["library"]["accepted_hostile"] == []
    assert result["passed"], result
