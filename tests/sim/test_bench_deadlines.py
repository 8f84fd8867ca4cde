"""The deadline sweep: SLO deadline assignment, paired intervals, cells and checks, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from hermes_sdk.cli import app
from hermes_sdk.sim import simulate
from hermes_sdk.sim.bench_deadlines import (
    DeadlineConfig,
    DeadlineRow,
    cells,
    checks,
    hits_per_kind,
    paired_ci,
    pooled_share,
    run_sweep,
    standalone_bound,
    workload,
)
from hermes_sdk.sim.run import draw_runs
from hermes_sdk.sim.workload import parse_workload
from hermes_sdk.sim.workloads import suite_summary
from hermes_sdk.sim.workloads.spec import JsonValue, Workload

SMALL = DeadlineConfig(suites=("light",), loads=(0.9,), seeds=2, n_apps=120, warmup_apps=20)


def test_slo_deadline_is_one_number_per_kind() -> None:
    wl = workload(SMALL, "light", 0.9, "slo", 1.0, 1)
    mean_standalone = suite_summary(wl).per_app_standalone_s
    _, apps = draw_runs(parse_workload(wl), 1)
    for a in apps:
        assert a.deadline_s is not None
        assert a.deadline_s - a.arrival_s == pytest.approx(1.5 * mean_standalone[a.name], rel=1e-5)
    # per-run deadlines follow each run's own size instead
    _, runs = draw_runs(parse_workload(workload(SMALL, "light", 0.9, "run", 1.0, 1)), 1)
    rel = [(a.deadline_s - a.arrival_s) / a.standalone_s for a in runs if a.deadline_s]
    assert set(np.round(rel, 6)) <= {1.2, 1.5, 2.0}


def test_fraction_and_bound() -> None:
    wl = workload(SMALL, "light", 0.9, "slo", 0.22, 1)
    _, apps = draw_runs(parse_workload(wl), 1)
    share = np.mean([a.deadline_s is not None for a in apps])
    assert 0.1 < share < 0.35
    bound = standalone_bound(wl, 1)
    measured = [a for a in apps[20:] if a.deadline_s is not None]
    fits = [a.arrival_s + a.standalone_s <= a.deadline_s for a in measured if a.deadline_s]
    assert bound == pytest.approx(np.mean(fits))


def test_no_deadline_mean_and_goodput() -> None:
    wl = workload(SMALL, "light", 0.9, "slo", 0.22, 1)
    r = simulate(wl, "edf", seed=1)
    free = [c for c, a in zip(r.completion_times, _measured(wl), strict=True) if a is None]
    assert r.no_deadline_mean == pytest.approx(np.mean(free))
    span = r.arrival_times[-1] - r.arrival_times[0]
    assert r.deadline_hit_rate is not None and r.goodput_per_s is not None
    assert r.goodput_per_s == pytest.approx(r.deadline_hit_rate * r.n_deadline / span)


def _measured(wl: Workload) -> list[float | None]:
    parsed = parse_workload(wl)
    _, apps = draw_runs(parsed, 1)
    return [a.deadline_s for a in apps[parsed.warmup_apps :]]


def test_paired_ci_is_the_student_t_interval() -> None:
    diffs = [0.05, 0.02, 0.08, 0.04]
    mean, lo, hi = paired_ci(diffs)
    half = stats.t.ppf(0.975, 3) * np.std(diffs, ddof=1) / 2.0
    assert mean == pytest.approx(0.0475)
    assert lo == pytest.approx(mean - half)
    assert hi == pytest.approx(mean + half)
    assert paired_ci([0.1])[1:] == (-np.inf, np.inf)


def _row(policy: str, seed: int, hit: float, free: float | None = None) -> DeadlineRow:
    kinds = (("a", round(hit * 30), 30), ("b", round(hit * 20), 20))
    fits = (("a", 27, 30), ("b", 18, 20))
    return DeadlineRow(
        "light", 0.95, "slo", 0.22, policy, seed, hit, 0.1, 10.0, free, 0.9, 50, 0.0, kinds, fits
    )


def _obj(value: JsonValue) -> dict[str, JsonValue]:
    """``value`` as a JSON object (fails the test if it is not one)."""
    assert isinstance(value, dict)
    return value


def test_hits_per_kind_counts_runs_with_deadlines_by_their_deadline() -> None:
    runs = [("a", 0.0, 5.0), ("a", 1.0, None), ("b", 2.0, 4.0), ("a", 3.0, 10.0)]
    assert hits_per_kind(runs, [5.0, 99.0, 2.5, 8.0]) == (("a", 1, 2), ("b", 0, 1))
    with pytest.raises(ValueError):
        hits_per_kind(runs, [1.0])


def _baseline_rows() -> list[DeadlineRow]:
    """EDF, plain Gittins and the default on two paired seeds."""
    return [
        _row("edf", 1, 0.50, 20.0),
        _row("edf", 2, 0.60, 22.0),
        _row("gittins_plain", 1, 0.55, 10.0),
        _row("gittins_plain", 2, 0.57, 10.0),
        _row("gittins", 1, 0.60, 10.4),
        _row("gittins", 2, 0.64, 10.6),
    ]


def test_cells_pair_by_seed_and_checks_apply_the_targets() -> None:
    rows = [
        *_baseline_rows(),
        _row("gittins_conditional", 1, 0.58, 10.2),
        _row("gittins_conditional", 2, 0.58, 10.2),
    ]
    (cell,) = cells(rows)
    assert _obj(cell["vs_edf"])["diff"] == pytest.approx(0.07)
    assert _obj(cell["vs_gittins_conditional"])["diff"] == pytest.approx(0.04)
    assert cell["bound_per_kind"] == {
        "a": {"hit_rate": 0.9, "n": 60},
        "b": {"hit_rate": 0.9, "n": 40},
    }
    kinds = _obj(_obj(cell["policies"])["gittins"])["per_kind"]
    assert kinds == {
        "a": {"hit_rate": round(37 / 60, 4), "n": 60},
        "b": {"hit_rate": 0.625, "n": 40},
    }
    assert _obj(cell["vs_gittins_plain"])["diff"] == pytest.approx(0.06)
    assert cell["no_deadline_mean_vs_plain"] == pytest.approx(1.05)
    by = {c["check"]: c for c in checks([cell])}
    hit = by["hit >= max(edf, gittins_plain) + 0.03"]
    assert hit["value"] == pytest.approx(0.62 - 0.56) and hit["passed"]
    assert by["no-deadline mean / gittins_plain <= 1.05"]["passed"]


def test_candidate_is_paired_with_the_default_and_checked() -> None:
    rows = [
        *_baseline_rows(),
        _row("gittins_queue", 1, 0.63, 11.0),
        _row("gittins_queue", 2, 0.65, 10.0),
    ]
    (cell,) = cells(rows)
    queue = _obj(cell["gittins_queue"])
    assert _obj(queue["vs_gittins"])["diff"] == pytest.approx(0.02)
    assert _obj(queue["vs_edf"])["diff"] == pytest.approx(0.09)
    assert queue["no_deadline_mean_vs_plain"] == pytest.approx(1.05)
    assert "vs_gittins_conditional" not in queue
    mine = [c for c in checks([cell]) if c.get("policy") == "gittins_queue"]
    hit = next(c for c in mine if c["check"] == "hit >= max(edf, gittins_plain) + 0.03")
    assert hit["value"] == pytest.approx(0.64 - 0.56) and hit["passed"]
    assert len(mine) == 2 and len(checks([cell])) == 4


def test_sweep_and_cli_write_results(tmp_path: Path) -> None:
    config = DeadlineConfig(
        suites=("light",), loads=(0.9,), laws=("slo",), fractions=(1.0,), seeds=1,
        policies=("edf", "gittins"), n_apps=80, warmup_apps=10,
    )  # fmt: skip
    rows = run_sweep(config)
    assert [(r.policy, r.seed) for r in rows] == [("edf", 1), ("gittins", 1)]
    assert all(0.0 <= r.hit_rate <= 1.0 and r.n_deadline == 70 for r in rows)
    for r in rows:  # the per-kind tallies add up to the simulator's hit rate and the bound
        assert sum(n for _, _, n in r.per_kind) == r.n_deadline
        assert sum(h for _, h, _ in r.per_kind) / r.n_deadline == pytest.approx(r.hit_rate)
        assert len(r.per_kind) > 3
        assert [(k, n) for k, _, n in r.bound_per_kind] == [(k, n) for k, _, n in r.per_kind]
        assert pooled_share(r.bound_per_kind) == pytest.approx(r.bound)
        pairs = zip(r.per_kind, r.bound_per_kind, strict=True)
        assert all(hits <= fits for (_, hits, _), (_, fits, _) in pairs)
    out = tmp_path / "sweep"
    result = CliRunner().invoke(
        app,
        ["bench", "--deadline-sweep", "--suite", "light", "--loads", "0.9", "--laws", "slo",
         "--fractions", "1", "--policies", "edf,gittins", "--seeds", "1", "--n-apps", "80",
         "--warmup-apps", "10", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["command"].startswith("hermes ")
    assert [r["hit_rate"] for r in doc["rows"]] == [round(r.hit_rate, 4) for r in rows]
    assert doc["cells"][0]["policies"].keys() == {"edf", "gittins"}
    kinds = doc["cells"][0]["policies"]["gittins"]["per_kind"]
    assert {k: v["n"] for k, v in kinds.items()} == {k: n for k, _, n in rows[1].per_kind}


def test_cli_rejects_bad_sweep_arguments(tmp_path: Path) -> None:
    for extra in (["--laws", "nope"], ["--fractions", "0"], ["--policies", "nope"]):
        result = CliRunner().invoke(
            app, ["bench", "--deadline-sweep", "--suite", "light", "--out", str(tmp_path), *extra]
        )
        assert result.exit_code == 2, result.output
