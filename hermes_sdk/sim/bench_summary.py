"""Seed-averaged summary of a simulator benchmark grid (its own module so that the report and
the plots both read it and neither imports the other's importer).

Every policy of a (suite, load) runs on the same apps and arrival times per seed, so ratios to
request-FCFS are paired: the 95% confidence interval of ``mean_vs_fcfs`` (the ratio of the
seed-averaged means) is the delta-method interval on the per-seed residuals
``x_s - R * fcfs_s`` with Student's t on ``seeds - 1`` degrees of freedom (None below 2 seeds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from scipy import stats

from hermes_sdk.sim.bench_grid import BASELINE, BenchRow

CONFIDENCE: Final = 0.95


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """Seed-averaged metrics of one (suite, load, policy) and ratios to request-FCFS."""

    suite: str
    load: float
    policy: str
    seeds: int
    mean: float
    p50: float
    p95: float
    p99: float
    utilization: float
    cold_wait_s: float
    deadline_hit_rate: float | None
    mean_vs_fcfs: float | None
    p95_vs_fcfs: float | None
    n: int = 0
    """Measured apps per seed (the smallest over seeds; warm-up excluded)."""
    mean_vs_fcfs_ci_low: float | None = None
    """Lower end of the paired 95% CI of ``mean_vs_fcfs`` (None below 2 paired seeds)."""
    mean_vs_fcfs_ci_high: float | None = None
    p95_vs_fcfs_ci_low: float | None = None
    p95_vs_fcfs_ci_high: float | None = None
    per_kind: Mapping[str, float] = field(default_factory=dict)
    """App kind -> mean completion time (s), averaged over seeds."""
    per_kind_vs_fcfs: Mapping[str, float] = field(default_factory=dict)
    """App kind -> its ``per_kind`` / FCFS's for that kind."""


def paired_ratio_ci(
    values: Sequence[float], base: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float | None, float | None]:
    """Ratio of means ``R = mean(values) / mean(base)`` over paired seeds and its confidence
    interval (delta method on ``values_s - R * base_s``, Student's t); bounds None below 2 pairs
    or when the base mean is not positive."""
    x, y = np.asarray(values, dtype=float), np.asarray(base, dtype=float)
    if x.size != y.size or x.size == 0:
        raise ValueError(f"need equal, non-empty paired samples, got {x.size} and {y.size}")
    y_mean = float(y.mean())
    if y_mean <= 0:
        return math.nan, None, None
    ratio = float(x.mean()) / y_mean
    k = x.size
    if k < 2:
        return ratio, None, None
    residual_sd = float(np.std(x - ratio * y, ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, k - 1)) * residual_sd / (math.sqrt(k) * y_mean)
    return ratio, ratio - half, ratio + half


def summarize(rows: Sequence[BenchRow]) -> list[SummaryRow]:
    """Average each metric over seeds; ratios use the seed-averaged FCFS metric, with paired
    CIs over the seeds both policies ran."""
    groups: dict[tuple[str, float, str], list[BenchRow]] = {}
    for r in rows:
        groups.setdefault((r.suite, r.load, r.policy), []).append(r)
    out: list[SummaryRow] = []
    for (suite, load, policy), rs in groups.items():
        a = {m: float(np.mean([getattr(r, m) for r in rs])) for m in _METRICS}
        base_rows = {r.seed: r for r in groups.get((suite, load, BASELINE), [])}
        hits = [r.deadline_hit_rate for r in rs if r.deadline_hit_rate is not None]
        kinds = _per_kind(rs)
        base_kinds = _per_kind(list(base_rows.values()))
        ratios = _paired(rs, base_rows)
        out.append(
            SummaryRow(
                suite=suite,
                load=load,
                policy=policy,
                seeds=len(rs),
                mean=a["mean"],
                p50=a["p50"],
                p95=a["p95"],
                p99=a["p99"],
                utilization=a["utilization"],
                cold_wait_s=a["cold_wait_s"],
                deadline_hit_rate=float(np.mean(hits)) if hits else None,
                mean_vs_fcfs=_ratio(a["mean"], base_rows, "mean"),
                p95_vs_fcfs=_ratio(a["p95"], base_rows, "p95"),
                n=min(r.n for r in rs),
                mean_vs_fcfs_ci_low=ratios["mean"][0],
                mean_vs_fcfs_ci_high=ratios["mean"][1],
                p95_vs_fcfs_ci_low=ratios["p95"][0],
                p95_vs_fcfs_ci_high=ratios["p95"][1],
                per_kind=kinds,
                per_kind_vs_fcfs={
                    k: v / base_kinds[k] for k, v in kinds.items() if base_kinds.get(k, 0.0) > 0
                },
            )
        )
    return out


def _ratio(value: float, base_rows: Mapping[int, BenchRow], metric: str) -> float | None:
    if not base_rows:
        return None
    return value / float(np.mean([getattr(r, metric) for r in base_rows.values()]))


def _paired(
    rs: Sequence[BenchRow], base_rows: Mapping[int, BenchRow]
) -> dict[str, tuple[float | None, float | None]]:
    """metric -> (CI low, CI high) over the seeds this policy and FCFS both ran."""
    pairs = [(r, base_rows[r.seed]) for r in rs if r.seed in base_rows]
    out: dict[str, tuple[float | None, float | None]] = {}
    for metric in ("mean", "p95"):
        if len(pairs) < 2:
            out[metric] = (None, None)
            continue
        _, low, high = paired_ratio_ci(
            [getattr(r, metric) for r, _ in pairs], [getattr(b, metric) for _, b in pairs]
        )
        out[metric] = (low, high)
    return out


def _per_kind(rs: Sequence[BenchRow]) -> dict[str, float]:
    """App kind -> mean over seeds of its mean completion time (s), kinds every seed had."""
    names = set.intersection(*(set(r.per_kind) for r in rs)) if rs else set()
    return {k: float(np.mean([r.per_kind[k] for r in rs])) for k in sorted(names)}


_METRICS: Final = ("mean", "p50", "p95", "p99", "utilization", "cold_wait_s")
