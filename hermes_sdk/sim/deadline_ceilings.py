"""Which of issue 28's deadline targets can be reached at all: ceilings per sweep cell.

Two ceilings per cell of a deadline sweep (:mod:`hermes_sdk.sim.bench_deadlines` rows):

- the *standalone ceiling*: the share of deadline runs whose standalone time fits their deadline
  (``bound``); a run that misses served alone misses under every policy, so no hit rate is above
  it;
- the *clairvoyant frontier*: the clairvoyant deadline oracle (``deadline_oracle_w<weight>``,
  true remaining service and latency, Moore-Hodgson pass on true sizes) swept over its weight;
  its best hit rate among the weights that keep runs without a deadline within
  :data:`NO_DEADLINE_LIMIT` of plain Gittins' mean (every weight where no run lacks a deadline).

The target is the issue's: SLO deadlines (loads >= 0.85), ``max(EDF, plain Gittins) + 3`` points;
per-run deadlines, ``EDF - 2`` points. Per seed the target, the ceiling and each policy's hit rate
are paired (same runs), so every gap is reported as a mean over seeds with its 95% t-interval.
``verdict``: ``met`` (``gittins`` reaches the target on the seed mean), ``ceiling-bound`` (the
target is above the standalone ceiling), ``oracle-bound`` (even the oracle's best within the 5%
bound is below the target: no non-clairvoyant policy reaches it on this workload, up to the
oracle's own approximations), ``prediction gap`` (the oracle reaches it, ``gittins`` does not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from hermes_sdk.sim.bench_deadlines import ORACLE_PREFIX, DeadlineRow, paired_ci
from hermes_sdk.sim.workloads.spec import JsonValue

SLO_MARGIN: Final = 0.03
"""SLO target: ``max(EDF, plain Gittins) +`` this (hit-rate share)."""
RUN_MARGIN: Final = -0.02
"""Per-run target: ``EDF +`` this (within 2 points of EDF)."""
NO_DEADLINE_LIMIT: Final = 1.05
"""Runs without a deadline: mean completion at most this x plain Gittins'."""
DEFAULT_POLICY: Final = "gittins"


def _target(law: str, hit: dict[str, float]) -> float | None:
    """The issue's target hit rate for one seed of a cell (None without the baselines)."""
    edf = hit.get("edf")
    if edf is None:
        return None
    if law == "slo":
        plain = hit.get("gittins_plain")
        return None if plain is None else max(edf, plain) + SLO_MARGIN
    return edf + RUN_MARGIN


def _gap(values: Sequence[float]) -> dict[str, JsonValue]:
    mean, lo, hi = paired_ci(values)
    return {"mean": round(mean, 4), "ci95": [round(lo, 4), round(hi, 4)]}


def _ratio(rows: dict[int, DeadlineRow], plain: dict[int, DeadlineRow]) -> float | None:
    """Seed mean of the no-deadline mean over plain Gittins' (None if no run lacks a deadline)."""
    ratios = [
        n / p
        for s, r in rows.items()
        if s in plain
        and (n := r.no_deadline_mean) is not None
        and (p := plain[s].no_deadline_mean) is not None
    ]
    return float(sum(ratios) / len(ratios)) if ratios else None


def cell_ceilings(rows: Sequence[DeadlineRow]) -> list[dict[str, JsonValue]]:
    """One record per (suite, load, law, fraction): target, ceiling, ``gittins`` and the oracle
    frontier, gaps with paired 95% CIs, and the verdict (module docstring). Cells without EDF
    (or, for SLO, plain Gittins) are skipped."""
    groups: dict[tuple[str, float, str, float], dict[str, dict[int, DeadlineRow]]] = {}
    for r in rows:
        cell = groups.setdefault((r.suite, r.load, r.law, r.fraction), {})
        cell.setdefault(r.policy, {})[r.seed] = r
    out: list[dict[str, JsonValue]] = []
    for (suite, load, law, fraction), by in sorted(groups.items()):
        seeds = sorted(set.intersection(*(set(v) for v in by.values())))
        targets = {s: _target(law, {p: v[s].hit_rate for p, v in by.items()}) for s in seeds}
        seeds = [s for s in seeds if targets[s] is not None]
        if not seeds:
            continue
        target = {s: float(t) for s, t in targets.items() if t is not None}
        ceiling = {s: next(iter(by.values()))[s].bound for s in seeds}
        record: dict[str, JsonValue] = {
            "suite": suite, "load": load, "law": law, "fraction": fraction, "seeds": len(seeds),
            "target": round(sum(target.values()) / len(seeds), 4),
            "ceiling": round(sum(ceiling.values()) / len(seeds), 4),
            "ceiling_minus_target": _gap([ceiling[s] - target[s] for s in seeds]),
        }  # fmt: skip
        plain = by.get("gittins_plain", {})
        default = by.get(DEFAULT_POLICY)
        if default is not None:
            record[DEFAULT_POLICY] = {
                "hit_rate": round(sum(default[s].hit_rate for s in seeds) / len(seeds), 4),
                "minus_target": _gap([default[s].hit_rate - target[s] for s in seeds]),
                "no_deadline_mean_vs_plain": _round(_ratio(default, plain)),
            }
        frontier: list[JsonValue] = []
        best: tuple[float, str] | None = None
        for policy in sorted(p for p in by if p.startswith(ORACLE_PREFIX)):
            per = by[policy]
            hit = sum(per[s].hit_rate for s in seeds) / len(seeds)
            ratio = _ratio(per, plain)
            within = ratio is None or ratio <= NO_DEADLINE_LIMIT
            frontier.append({
                "policy": policy, "hit_rate": round(hit, 4),
                "no_deadline_mean_vs_plain": _round(ratio), "within_limit": within,
                "minus_target": _gap([per[s].hit_rate - target[s] for s in seeds]),
            })  # fmt: skip
            if within and (best is None or hit > best[0]):
                best = (hit, policy)
        record["oracle_frontier"] = frontier
        record["oracle_best_within_limit"] = None if best is None else best[1]
        record["verdict"] = _verdict(record, best, target, by, seeds)
        out.append(record)
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _verdict(
    record: dict[str, JsonValue],
    best: tuple[float, str] | None,
    target: dict[int, float],
    by: dict[str, dict[int, DeadlineRow]],
    seeds: Sequence[int],
) -> str:
    """``met``, ``ceiling-bound``, ``oracle-bound`` or ``prediction gap`` (module docstring);
    ``unknown`` when neither ``gittins`` nor an oracle was swept."""
    mean_target = sum(target[s] for s in seeds) / len(seeds)
    default = by.get(DEFAULT_POLICY)
    if default is not None and sum(default[s].hit_rate for s in seeds) / len(seeds) >= (
        mean_target - 1e-12
    ):
        return "met"
    ceiling = record["ceiling"]
    assert isinstance(ceiling, float)
    if mean_target > ceiling:
        return "ceiling-bound"
    if best is None:
        return "unknown" if not record["oracle_frontier"] else "oracle-bound"
    return "oracle-bound" if best[0] < mean_target - 1e-12 else "prediction gap"


def verdict_table(records: Sequence[dict[str, JsonValue]]) -> list[str]:
    """Markdown rows: cell, target, ceiling, ``gittins``, oracle best within the limit, verdict
    (hit rates in percent)."""
    lines = [
        "| suite | law | share | load | target | ceiling | gittins | oracle (best within 5%) "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        g = r.get(DEFAULT_POLICY)
        g_hit = g.get("hit_rate") if isinstance(g, dict) else None
        best = r.get("oracle_best_within_limit")
        o_hit: JsonValue = None
        frontier = r.get("oracle_frontier")
        if isinstance(frontier, list):
            for f in frontier:
                if isinstance(f, dict) and f.get("policy") == best:
                    o_hit = f.get("hit_rate")
        lines.append(
            f"| {r['suite']} | {r['law']} | {_pct(r['fraction'], 0)} | {r['load']} "
            f"| {_pct(r['target'])} | {_pct(r['ceiling'])} | {_pct(g_hit)} "
            f"| {_pct(o_hit)}{'' if best is None else f' ({best})'} | {r['verdict']} |"
        )
    return lines


def _pct(x: JsonValue, digits: int = 1) -> str:
    if not isinstance(x, float) or math.isnan(x):
        return "-"
    return f"{100 * x:.{digits}f}%"
