"""Seed-averaged summary of a simulator benchmark grid (its own module so that the report and
the plots both read it and neither imports the other's importer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from hermes_sdk.sim.bench_grid import BASELINE, BenchRow


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


def summarize(rows: Sequence[BenchRow]) -> list[SummaryRow]:
    """Average each metric over seeds; ratios use the seed-averaged FCFS metric."""
    groups: dict[tuple[str, float, str], list[BenchRow]] = {}
    for r in rows:
        groups.setdefault((r.suite, r.load, r.policy), []).append(r)
    avg: dict[tuple[str, float, str], dict[str, float]] = {}
    for key, rs in groups.items():
        avg[key] = {m: float(np.mean([getattr(r, m) for r in rs])) for m in _METRICS}
    out: list[SummaryRow] = []
    for (suite, load, policy), rs in groups.items():
        a = avg[(suite, load, policy)]
        base = avg.get((suite, load, BASELINE))
        hits = [r.deadline_hit_rate for r in rs if r.deadline_hit_rate is not None]
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
                mean_vs_fcfs=a["mean"] / base["mean"] if base else None,
                p95_vs_fcfs=a["p95"] / base["p95"] if base else None,
            )
        )
    return out


_METRICS: Final = ("mean", "p50", "p95", "p99", "utilization", "cold_wait_s")
