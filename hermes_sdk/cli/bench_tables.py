"""Rich tables of `hermes bench --tenants`, sized to fit an 80-column terminal.

Names (scenario, policy) never wrap or truncate; the long per-tenant cells fold instead, so a
reader on a narrow terminal still sees which row is which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rich import box
from rich.table import Table

from hermes_sdk.sim.workloads.spec import JsonValue


def tenants_table(rows: Sequence[Mapping[str, JsonValue]], suite: str) -> Table:
    """One row per (scenario, policy): mean and P99 completion (s), the worst slowdown and its
    lower bound, each tenant's share of the engine and mean completion (s).
    No column wraps or truncates at 80 columns: tenant cells hold one tenant per line."""
    table = Table(
        title=f"tenants and starvation guard: {suite} mix (completion s)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
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
