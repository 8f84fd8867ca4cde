"""Protected mode, the exposure audit matrix and key rotation under load (real servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import exposure


async def test_protected_mode_refusal_and_override(tmp_path: Path) -> None:
    result = await exposure.scenario_protected_mode(tmp_path)
    assert result["refused_exit_code"] == 2
    assert result["refusal_names_both_ways_out"]
    assert result["passed"], result


@pytest.mark.parametrize("metrics_public", [False, True])
async def test_audit_matrix_no_wrong_expired_or_foreign_key(
    tmp_path: Path, metrics_public: bool
) -> None:
    result = await exposure.scenario_audit(tmp_path, metrics_public=metrics_public)
    assert result["routes"] >= 25  # every route group: control, leases, ui, prewarm, gateway
    assert result["violations"] == []
    no_key = set(result["answered_2xx"]["no key"])
    assert ("GET /metrics" in no_key) is metrics_public
    assert "GET /healthz" in no_key
    assert result["passed"], result


async def test_rotation_under_load(tmp_path: Path) -> None:
    result = await exposure.scenario_rotation(tmp_path, n_load=4, tokens=40)
    assert result["old_key_waiter"] == [401, "key_revoked"]
    assert result["chunks_after_reload"] > 0 and result["stream_finish_reason"] is not None
    assert result["old_key_next_call"] == 401
    assert result["kept_waiters"] == [200, 200] and result["w3_waited_for_w1"]
    assert result["load_requests"] > 0
    assert result["passed"], result


async def test_sighup_reloads_keys_and_refuses_a_bad_file(tmp_path: Path) -> None:
    result = await exposure.scenario_sighup(tmp_path)
    assert result["after"] == [401, 200]
    assert result["passed"], result
