"""Ceilings of the deadline targets per sweep cell (hermes_sdk.sim.deadline_ceilings)."""

from __future__ import annotations

import pytest

from hermes_sdk.sim.bench_deadlines import DeadlineConfig, DeadlineRow, run_sweep
from hermes_sdk.sim.deadline_ceilings import cell_ceilings, verdict_table


def _row(policy: str, seed: int, hit: float, free: float | None, *, law: str = "slo",
         fraction: float = 0.22, bound: float = 0.9) -> DeadlineRow:  # fmt: skip
    return DeadlineRow(
        suite="s", load=0.85, law=law, fraction=fraction, policy=policy, seed=seed,
        hit_rate=hit, goodput_per_s=0.0, mean=1.0, no_deadline_mean=free, bound=bound,
        n_deadline=100, wall_s=0.0,
    )  # fmt: skip


def _cell(gittins: float, oracle: dict[str, tuple[float, float]], *, bound: float = 0.9,
          law: str = "slo") -> dict[str, object]:  # fmt: skip
    rows = []
    for seed, jitter in ((1, -0.01), (2, 0.0), (3, 0.01)):
        rows += [
            _row("edf", seed, 0.80 + jitter, 12.0, law=law, bound=bound),
            _row("gittins_plain", seed, 0.75, 10.0, law=law, bound=bound),
            _row("gittins", seed, gittins + jitter, 10.2, law=law, bound=bound),
        ]
        rows += [_row(p, seed, h + jitter, 10.0 * r, law=law, bound=bound)
                 for p, (h, r) in oracle.items()]  # fmt: skip
    (record,) = cell_ceilings(rows)
    return record


def test_verdicts() -> None:
    # target = max(EDF, plain) + 3 points = 0.83 on the seed mean
    met = _cell(0.84, {})
    assert met["verdict"] == "met" and met["target"] == pytest.approx(0.83)
    assert _cell(0.80, {}, bound=0.82)["verdict"] == "ceiling-bound"
    # the oracle reaches 0.86 only at 1.10x plain Gittins' no-deadline mean: not within 5%
    bound = _cell(0.80, {"deadline_oracle_w1": (0.82, 1.0), "deadline_oracle_w9": (0.86, 1.1)})
    assert bound["verdict"] == "oracle-bound"
    assert bound["oracle_best_within_limit"] == "deadline_oracle_w1"
    gap = _cell(0.80, {"deadline_oracle_w1": (0.82, 1.0), "deadline_oracle_w3": (0.85, 1.04)})
    assert gap["verdict"] == "prediction gap"
    assert gap["oracle_best_within_limit"] == "deadline_oracle_w3"
    frontier = gap["oracle_frontier"]
    assert isinstance(frontier, list) and frontier[1]["minus_target"]["mean"] == pytest.approx(0.02)
    # per-run target: EDF - 2 points
    assert _cell(0.79, {}, law="run", bound=1.0)["target"] == pytest.approx(0.78)
    assert _cell(0.79, {}, law="run", bound=1.0)["verdict"] == "met"


def test_paired_gaps_and_the_table() -> None:
    record = _cell(0.80, {"deadline_oracle_w1": (0.82, 1.0)})
    gap = record["gittins"]["minus_target"]  # type: ignore[index]
    assert gap["mean"] == pytest.approx(-0.03)  # the same jitter on both: a zero-width interval
    assert gap["ci95"][0] == pytest.approx(-0.03) and gap["ci95"][1] == pytest.approx(-0.03)
    (_, _, line) = verdict_table([record])
    assert "| 83.0% | 90.0% | 80.0% | 82.0% (deadline_oracle_w1) | oracle-bound |" in line


def test_on_a_small_real_sweep() -> None:
    config = DeadlineConfig(
        suites=("light",), loads=(0.85,), laws=("run",), fractions=(0.22,),
        policies=("edf", "gittins_plain", "gittins", "deadline_oracle_w3"), seeds=2,
        n_apps=150, warmup_apps=30,
    )  # fmt: skip
    (record,) = cell_ceilings(run_sweep(config))
    assert record["ceiling"] == 1.0  # per-run deadlines are >= 1.2x the run's standalone time
    assert record["verdict"] in ("met", "oracle-bound", "prediction gap")
    (entry,) = record["oracle_frontier"]  # type: ignore[misc]
    assert 0.0 < entry["hit_rate"] <= 1.0
