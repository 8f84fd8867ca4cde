"""Rich tables of `hermes bench` and `hermes bench --tenants`, sized for an 80-column terminal.

Names (scenario, policy, app kind) never wrap or truncate: the tables drop borders, keep one
space between columns, put one tenant per line and split long headers at ``_``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rich import box
from rich.table import Table

from hermes_sdk.sim.bench_summary import SummaryRow
from hermes_sdk.sim.workloads.spec import JsonValue

KIND_POLICIES = ("app_fcfs", "las", "gittins", "gittins_oracle", "gittins_blind", "srpt_oracle")
"""Policies whose per-kind ratios the kind table prints (results.json has every policy)."""


def _narrow(title: str) -> Table:
    return Table(
        title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0)
    )


def summary_table(summary: Sequence[SummaryRow], suite: str, load: float) -> Table:
    """Seed-averaged completion time (s) per policy at one (suite, load), with each ratio to
    request-FCFS and its paired 95% CI half-width (``±``, when >= 2 seeds)."""
    rows = [s for s in summary if (s.suite, s.load) == (suite, load)]
    seeds = max((s.seeds for s in rows), default=0)
    n = min((s.n for s in rows), default=0)
    table = _narrow(f"{suite} suite, load {load:g}: completion s, mean of {seeds} seeds x {n} apps")
    table.add_column("policy", no_wrap=True)
    for col in ("mean", "p95", "p99", "mean/fcfs", "p95/fcfs", "busy", "cold"):
        table.add_column(col, justify="right", no_wrap=True)
    has_deadlines = any(s.deadline_hit_rate is not None for s in rows)
    if has_deadlines:
        table.add_column("hit", justify="right", no_wrap=True)
    for s in rows:
        cells = [
            s.policy,
            _num(s.mean),
            _num(s.p95),
            _num(s.p99),
            _ratio_ci(s.mean_vs_fcfs, s.mean_vs_fcfs_ci_low, s.mean_vs_fcfs_ci_high),
            _ratio_ci(s.p95_vs_fcfs, s.p95_vs_fcfs_ci_low, s.p95_vs_fcfs_ci_high),
            f"{s.utilization:.0%}",
            f"{s.cold_wait_s:.2f}",
        ]
        if has_deadlines:
            hit = s.deadline_hit_rate
            cells.append("-" if hit is None else f"{hit:.1%}")
        table.add_row(*cells)
    return table


def kind_table(summary: Sequence[SummaryRow], suite: str, load: float) -> Table | None:
    """Each app kind's mean completion under FCFS (s) and its ratio to it under each policy of
    :data:`KIND_POLICIES` that ran; None when the rows carry no per-kind means."""
    by = {s.policy: s for s in summary if (s.suite, s.load) == (suite, load)}
    fcfs = by.get("fcfs")
    policies = [p for p in KIND_POLICIES if p in by and by[p].per_kind_vs_fcfs]
    if fcfs is None or not fcfs.per_kind or not policies:
        return None
    table = _narrow(f"{suite} suite, load {load:g}: each app kind's mean vs FCFS")
    table.add_column("app kind", no_wrap=True)
    table.add_column("fcfs s", justify="right", no_wrap=True)
    for p in policies:
        table.add_column(p.replace("_", "\n"), justify="right", no_wrap=True)
    for kind, mean in fcfs.per_kind.items():
        ratios = [by[p].per_kind_vs_fcfs.get(kind) for p in policies]
        table.add_row(kind, _num(mean), *("-" if r is None else f"{r:.2f}" for r in ratios))
    return table


def _ratio_ci(ratio: float | None, low: float | None, high: float | None) -> str:
    if ratio is None:
        return "-"
    if low is None or high is None:
        return f"{ratio:.2f}x"
    return f"{ratio:.2f}x ±{(high - low) / 2:.2f}"


def tenants_table(rows: Sequence[Mapping[str, JsonValue]], suite: str) -> Table:
    """One row per (scenario, policy): mean and P99 completion (s), the worst slowdown and its
    lower bound, each tenant's share of the engine and mean completion (s).
    No column wraps or truncates at 80 columns: tenant cells hold one tenant per line."""
    table = _narrow(f"tenants and starvation guard: {suite} mix (completion s)")
    table.add_column("scenario", no_wrap=True)
    table.add_column("policy", no_wrap=True)
    for col in ("mean", "p99", "max sd", "bound"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("share", no_wrap=True)
    table.add_column("tenant mean", no_wrap=True)
    for r in rows:
        share, means = r["tenant_share"], r.get("tenant_mean", {})
        assert isinstance(share, dict) and isinstance(means, dict)
        bound = r.get("max_slowdown_bound")
        mean, p99, worst = r["mean"], r["p99"], r["max_slowdown"]
        assert isinstance(mean, (int, float)) and isinstance(p99, (int, float))
        assert isinstance(worst, (int, float))
        table.add_row(
            str(r["scenario"]),
            str(r["policy"]),
            _num(mean),
            _num(p99),
            _num(worst),
            "-" if not isinstance(bound, (int, float)) else f"{bound:.2f}",
            _cells(share, lambda v: f"{v:.0%}"),
            _cells(means, _num),
        )
    return table


def _num(value: float) -> str:
    """Seconds or a ratio: one decimal below 100, none above (keeps the columns narrow)."""
    return f"{value:.1f}" if abs(value) < 100 else f"{value:.0f}"


def _cells(values: Mapping[str, JsonValue], fmt: Callable[[float], str]) -> str:
    """``"heavy 90%" and "light 10%" on two lines``: one tenant per line ("-" when empty)."""
    parts = [f"{t} {fmt(float(v))}" for t, v in values.items() if isinstance(v, (int, float))]
    return "\n".join(parts) or "-"
