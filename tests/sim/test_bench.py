"""`hermes bench` pieces that need no simulation: summaries, ratios and floor checks."""

from __future__ import annotations

import math

import pytest

from hermes_sdk.sim.bench import BenchConfig, BenchRow, check_floors, grid_size, summarize


def _row(policy: str, seed: int, mean: float, p95: float, load: float = 0.95) -> BenchRow:
    return BenchRow(
        suite="paper",
        load=load,
        policy=policy,
        seed=seed,
        n=100,
        mean=mean,
        p50=mean / 2,
        p95=p95,
        p99=p95 * 2,
        deadline_hit_rate=None,
        utilization=load,
        cold_wait_s=0.0,
        wall_s=0.1,
    )


def test_summary_averages_seeds_and_ratios_to_fcfs() -> None:
    rows = [
        _row("fcfs", 1, 100.0, 400.0),
        _row("fcfs", 2, 300.0, 600.0),
        _row("gittins", 1, 50.0, 100.0),
        _row("gittins", 2, 30.0, 200.0),
    ]
    by = {s.policy: s for s in summarize(rows)}
    assert by["fcfs"].seeds == 2 and by["fcfs"].mean == 200.0
    assert by["fcfs"].mean_vs_fcfs == 1.0
    assert by["gittins"].mean == 40.0
    assert by["gittins"].mean_vs_fcfs is not None
    assert math.isclose(by["gittins"].mean_vs_fcfs, 0.2)
    assert by["gittins"].p95_vs_fcfs is not None
    assert math.isclose(by["gittins"].p95_vs_fcfs, 0.3)
    assert by["gittins"].deadline_hit_rate is None


def test_floors_pass_and_miss() -> None:
    means = {
        "fcfs": 100.0,
        "app_fcfs": 90.0,
        "las": 40.0,
        "gittins": 35.0,
        "gittins_blind": 36.0,
        "srpt_oracle": 30.0,
    }
    rows = [_row(p, 1, m, m * 3) for p, m in means.items()]
    tight = [
        {"suite": "paper", "factor": f, "policy": p, "deadline_hit_rate": h}
        for f, p, h in [
            (1.2, "edf", 0.30),
            (1.2, "lstf", 0.45),
            (2.0, "edf", 0.80),
            (2.0, "lstf", 0.70),
        ]
    ]
    checks = {c.check: c for c in check_floors(summarize(rows), tight)}
    assert checks["gittins/fcfs mean"].passed  # 0.35 <= 0.40
    assert checks["gittins/las mean"].passed  # 0.875 <= 0.95
    assert checks["gittins/srpt_oracle mean"].passed  # 1.17 <= 1.25
    assert checks["gittins/gittins_blind mean"].passed
    lstf = checks["lstf - edf hit rate at x1.2"]
    assert lstf.at_least and math.isclose(lstf.value, 0.15) and lstf.passed
    worse = [_row("gittins", 1, 80.0, 300.0), *(r for r in rows if r.policy != "gittins")]
    missed = {c.check: c for c in check_floors(summarize(worse), [])}
    assert not missed["gittins/fcfs mean"].passed
    assert not missed["gittins/gittins_blind mean"].passed


def test_floors_only_where_the_issue_sets_them() -> None:
    rows = [_row(p, 1, 10.0, 20.0, load=0.7) for p in ("fcfs", "las", "gittins", "gittins_blind")]
    names = {c.check for c in check_floors(summarize(rows), [])}
    assert names == {"gittins/gittins_blind mean"}


@pytest.mark.parametrize("deadlines", [False, True])
def test_grid_size_counts_every_simulation(deadlines: bool) -> None:
    config = BenchConfig(
        suites=("paper",),
        loads=(0.7, 0.9),
        policies=("fcfs", "gittins"),
        seeds=2,
        deadlines=deadlines,
        tightness=(1.5,),
        tightness_seeds=1,
    )
    policies = 4 if deadlines else 2
    assert grid_size(config) == 2 * 2 * policies + 1 * 3 + 3
