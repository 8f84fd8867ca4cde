"""The drift suite (hermes_sdk.sim.workloads.drift) on a small run: the changed app's graph
detects the change and online Gittins stays near the oracle that knows it."""

from __future__ import annotations

import pytest

from hermes_sdk.sim.workloads.drift import KINDS, changed_app, drift_workloads, run_drift


def test_every_kind_changes_exactly_one_app() -> None:
    for kind in KINDS:
        old, new = drift_workloads(kind, 0.7, 1, 200)
        differ = [a.name for a, b in zip(old.apps, new.apps, strict=True) if a != b]
        assert differ == [changed_app(kind)[0]["name"]]
    with pytest.raises(ValueError):
        changed_app("nothing")


def test_service_change_is_detected_and_online_gittins_is_near_the_oracle() -> None:
    result = run_drift("service", n_apps=2000, seed=1)
    assert result.changes.get("generate_summary", 0) >= 1
    assert result.mean_error[100] < 0.10
    assert 0.9 < result.ratio < 1.1
