"""`hermes bench` pieces that need no simulation: summaries, ratios and floor checks."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hermes_sdk.sim import simulate
from hermes_sdk.sim.bench import (
    BenchConfig,
    BenchRow,
    Job,
    check_floors,
    grid_size,
    run_job,
    summarize,
)
from hermes_sdk.sim.bench_summary import paired_ratio_ci
from hermes_sdk.sim.workloads import SUITES


def _row(
    policy: str,
    seed: int,
    mean: float,
    p95: float,
    load: float = 0.95,
    per_kind: dict[str, float] | None = None,
) -> BenchRow:
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
        per_kind=per_kind or {},
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


def test_paired_ratio_ci_is_exact_for_proportional_pairs_and_covers_at_95() -> None:
    ratio, low, high = paired_ratio_ci([30.0, 60.0, 90.0], [100.0, 200.0, 300.0])
    assert math.isclose(ratio, 0.3) and low is not None and high is not None
    assert math.isclose(low, 0.3) and math.isclose(high, 0.3)  # no residual: no width
    assert paired_ratio_ci([1.0], [2.0]) == (0.5, None, None)
    # Coverage on synthetic paired seeds with a known ratio of expectations (0.4): the
    # per-seed FCFS mean varies a lot (heavy tails), the policy's moves with it plus noise.
    rng = np.random.default_rng(17)
    hits, widths = 0, []
    for _ in range(2000):
        base = rng.lognormal(4.0, 0.4, size=5)
        values = 0.4 * base * rng.normal(1.0, 0.1, size=5)
        _, lo, hi = paired_ratio_ci(values, base)
        assert lo is not None and hi is not None
        hits += lo <= 0.4 <= hi
        widths.append(hi - lo)
    assert 0.92 <= hits / 2000 <= 0.98
    # pairing cancels the per-seed FCFS swings (40% lognormal): the interval stays narrow
    assert float(np.median(widths)) < 0.2


def test_summary_reports_paired_cis_and_per_kind_ratios() -> None:
    rows = []
    for seed, scale in ((1, 1.0), (2, 1.6), (3, 0.7)):
        rows.append(
            _row(
                "fcfs",
                seed,
                100.0 * scale,
                300.0 * scale,
                per_kind={"big": 200 * scale, "small": 50 * scale},
            )
        )
        rows.append(
            _row(
                "gittins",
                seed,
                30.0 * scale + seed,
                90.0 * scale,
                per_kind={"big": 400 * scale, "small": 10 * scale},
            )
        )
    by = {s.policy: s for s in summarize(rows)}
    g = by["gittins"]
    assert g.n == 100 and g.seeds == 3
    assert g.mean_vs_fcfs is not None and g.mean_vs_fcfs_ci_low is not None
    assert g.mean_vs_fcfs_ci_high is not None
    assert g.mean_vs_fcfs_ci_low < g.mean_vs_fcfs < g.mean_vs_fcfs_ci_high
    assert g.p95_vs_fcfs_ci_low is not None and math.isclose(g.p95_vs_fcfs_ci_low, 0.3)
    assert by["fcfs"].mean_vs_fcfs_ci_low == by["fcfs"].mean_vs_fcfs_ci_high == 1.0
    assert g.per_kind_vs_fcfs == {"big": pytest.approx(2.0), "small": pytest.approx(0.2)}
    assert g.per_kind["big"] == pytest.approx(400 * (1.0 + 1.6 + 0.7) / 3)


def test_gittins_oracle_is_gittins_on_the_true_distributions_same_apps() -> None:
    config = BenchConfig(suites=("light",), n_apps=60, warmup_apps=10)
    out = run_job(config, Job("grid", "light", 0.9, seed=2, policy="gittins_oracle"))
    assert out.row is not None and out.row.policy == "gittins_oracle"
    oracle = simulate(
        SUITES["light"](load=0.9, seed=2, n_apps=60, warmup_apps=10, learning="oracle"),
        "gittins",
        seed=2,
    )
    assert out.row.mean == pytest.approx(float(oracle.mean)) and out.row.n == oracle.n
    online = run_job(config, Job("grid", "light", 0.9, seed=2, policy="gittins"))
    assert online.row is not None and online.row.n == out.row.n


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
            (1.2, "gittins", 0.29),
            (1.2, "lstf", 0.45),
            (2.0, "edf", 0.80),
            (2.0, "gittins", 0.70),
        ]
    ]
    checks = {c.check: c for c in check_floors(summarize(rows), tight)}
    assert checks["gittins/fcfs mean"].passed  # 0.35 <= 0.40
    assert checks["gittins/las mean"].passed  # 0.875 <= 0.95
    assert checks["gittins/srpt_oracle mean"].passed  # 1.17 <= 1.25
    assert checks["gittins/gittins_blind mean"].passed
    hit = checks["gittins - edf hit rate at x1.2"]  # the tightest factor only
    assert hit.at_least and math.isclose(hit.value, -0.01) and hit.passed
    worse = [_row("gittins", 1, 80.0, 300.0), *(r for r in rows if r.policy != "gittins")]
    missed = {c.check: c for c in check_floors(summarize(worse), [])}
    assert not missed["gittins/fcfs mean"].passed
    assert not missed["gittins/gittins_blind mean"].passed


def test_steady_state_floors_of_issue_17() -> None:
    means = {"fcfs": 100.0, "gittins": 34.0, "gittins_oracle": 33.0, "srpt_oracle": 33.5}
    rows = [_row(p, 1, m, m * 0.8 if p != "fcfs" else 110.0, load=0.85) for p, m in means.items()]
    checks = {c.check: c for c in check_floors(summarize(rows), []) if c.check.startswith("st")}
    assert set(checks) == {
        "steady: gittins/gittins_oracle mean",
        "steady: gittins/fcfs p95",
        "steady: gittins/srpt_oracle mean",
        "steady: gittins/srpt_oracle p95",
        "steady: gittins/fcfs mean",
        "steady: gittins/fcfs p95 at 0.85",
    }
    assert math.isclose(checks["steady: gittins/gittins_oracle mean"].value, 34 / 33)
    assert not checks["steady: gittins/gittins_oracle mean"].passed  # 1.03 > 1.02
    assert checks["steady: gittins/srpt_oracle mean"].passed  # 1.015 <= 1.03
    assert checks["steady: gittins/fcfs mean"].passed  # 0.34 <= 0.35
    assert checks["steady: gittins/fcfs p95 at 0.85"].passed  # 27.2 / 110 <= 0.30
    light = [replace(r, suite="light", load=0.7) for r in rows]
    names = {c.check for c in check_floors(summarize(light), [])}
    assert names == {"steady: gittins/gittins_oracle mean"}


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
    assert grid_size(config) == 2 * 2 * policies + 1 * 4 + 3  # tightness: fcfs, gittins, edf, lstf


def test_suite_runs_are_deterministic_per_seed() -> None:
    config = BenchConfig(suites=("light",), n_apps=60, warmup_apps=10)
    for policy in ("fcfs", "gittins"):
        job = Job("grid", "light", 0.9, seed=2, policy=policy)
        first, second = run_job(config, job), run_job(config, job)
        assert first.row is not None and second.row is not None
        assert replace(first.row, wall_s=0.0) == replace(second.row, wall_s=0.0)
        assert first.times == second.times and len(first.times) == 50
    other = run_job(config, Job("grid", "light", 0.9, seed=3, policy="fcfs"))
    assert other.times != first.times


@pytest.mark.slow
def test_quick_bench_subprocess_writes_every_documented_field(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    code = "from hermes_sdk.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "paper suite, load 0.9" in proc.stdout and "floors" in proc.stdout
    doc = json.loads((out / "results.json").read_text())
    assert doc["command"].startswith("hermes ") and "--quick" in doc["command"]
    assert doc["wall_s"] > 0
    assert {r["suite"] for r in doc["rows"]} == {"paper", "light"}
    policies = {"fcfs", "app_fcfs", "las", "gittins", "gittins_blind", "srpt_oracle"}
    policies.add("gittins_oracle")
    assert {r["policy"] for r in doc["rows"]} == policies
    for row in doc["rows"]:
        for key in ("suite", "load", "policy", "seed", "n", "mean", "p50", "p95", "p99"):
            assert key in row
        assert row["deadline_hit_rate"] is None  # no --deadlines
        assert row["n"] == 100 and row["p50"] <= row["p95"] <= row["p99"]
        assert row["per_kind"] and all(v > 0 for v in row["per_kind"].values())
    assert {s["policy"] for s in doc["summary"]} == policies
    for s in doc["summary"]:  # one seed: no interval, but every field is there
        assert s["n"] == 100 and s["mean_vs_fcfs_ci_low"] is None
        assert set(s["per_kind_vs_fcfs"]) <= set(s["per_kind"])
    assert doc["floors"] and all(isinstance(f["passed"], bool) for f in doc["floors"])
    sweep = doc["tightness"]
    assert {t["policy"] for t in sweep} == {"fcfs", "gittins", "edf", "lstf"}
    assert all(0.0 <= t["deadline_hit_rate"] <= 1.0 for t in sweep)
    for suite in ("paper", "light"):
        report = doc["learning"][suite]
        assert set(report["apps"]) >= {"code_feedback", "factool_kbqa", "react_alfw"}
        for points in report["apps"].values():
            assert [p["runs"] for p in points] == [5, 20]
            assert all(0.0 <= p["p95_coverage"] <= 1.0 for p in points)
        assert report["drift"]["window"] and report["drift"]["half_life_3600s"]
        assert doc["learning_sim"][suite]["online_mean"] > 0
    assert set(doc["plots"]) == {"cdf.png", "load.png", "learning.png", "deadlines.png"}
    for name in doc["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
