"""Hostile OTLP input: 4xx or counted, never 5xx, never a stuck run (see otlp_input.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import otlp_input


@pytest.mark.slow
async def test_hostile_otlp_input_is_refused_or_counted(tmp_path: Path) -> None:
    result = await otlp_input.scenario_otlp_hostile(tmp_path, huge_n=30_000)  # cap: 10^4 spans
    assert result["five_xx"] == [] and result["refused_not_4xx"] == []
    assert result["stuck_runs"] == [] and result["open_traces_after"] == 0
    assert result["malformed_spans_rejected"] == 9
    ignored = result["spans_ignored"]
    assert ignored["trace_too_large"] + ignored["late"] == 30_001 + 1  # + the second root
    assert ignored["duplicate_span_id"] == 1
    assert result["runs_not_learned"]["trace_too_large"] == 1
    assert result["http_answers"]["oversized"] == "413 body_too_large"
    assert result["http_answers"]["grpc"] == "415 unsupported_media_type"
    assert result["http_answers"]["gzip_bomb"].startswith("413 ")
    assert result["learned_after"] and result["passed"], result
