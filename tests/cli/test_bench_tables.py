"""`hermes bench` tables at 80 columns: every policy and app-kind name whole, the paired CI."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console

from hermes_sdk.cli.bench_tables import KIND_POLICIES, kind_table, summary_table
from hermes_sdk.sim.bench import DEFAULT_POLICIES, BenchRow, summarize

KINDS = ("langchain_mapreduce", "got_docmerge", "react_alfw")


def _row(policy: str, seed: int, scale: float) -> BenchRow:
    mean = 1234.5 * scale if policy == "fcfs" else 321.0 * scale + seed
    return BenchRow(
        suite="paper",
        load=0.85,
        policy=policy,
        seed=seed,
        n=12000,
        mean=mean,
        p50=mean / 2,
        p95=mean * 3,
        p99=mean * 5,
        deadline_hit_rate=0.5,
        utilization=0.85,
        cold_wait_s=0.25,
        wall_s=1.0,
        per_kind={k: mean * (i + 1) for i, k in enumerate(KINDS)},
    )


def _render(table: object) -> list[str]:
    console = Console(width=80, record=True, file=None, force_terminal=False)
    with console.capture() as cap:
        console.print(table)
    text = cap.get()
    assert "…" not in text
    return text.splitlines()


def test_summary_and_kind_tables_fit_80_columns_with_names_whole() -> None:
    rows = [
        _row(p, seed, scale)
        for p in DEFAULT_POLICIES
        for seed, scale in ((1, 1.0), (2, 1.3), (3, 0.8))
    ]
    summary = summarize(rows)
    lines = _render(summary_table(summary, "paper", 0.85))
    assert max(len(line) for line in lines) <= 80
    assert "3 seeds x 12000 apps" in lines[0]
    for policy in DEFAULT_POLICIES:
        assert any(line.split()[:1] == [policy] for line in lines), policy
    gittins = next(line for line in lines if line.startswith("gittins "))
    g = next(s for s in summary if s.policy == "gittins")
    assert g.mean_vs_fcfs_ci_low is not None and g.mean_vs_fcfs_ci_high is not None
    half = (g.mean_vs_fcfs_ci_high - g.mean_vs_fcfs_ci_low) / 2
    assert f"{g.mean_vs_fcfs:.2f}x ±{half:.2f}" in gittins and half > 0
    kinds = _render(kind_table(summary, "paper", 0.85))
    assert max(len(line) for line in kinds) <= 80
    for kind in KINDS:
        assert any(line.split()[:1] == [kind] for line in kinds), kind
    mapreduce = next(line for line in kinds if line.startswith("langchain_mapreduce"))
    assert len(mapreduce.split()) == 2 + len(KIND_POLICIES)


def test_kind_table_is_skipped_without_per_kind_means() -> None:
    rows = [_row(p, 1, 1.0) for p in ("fcfs", "gittins")]
    bare = [replace(r, per_kind={}) for r in rows]
    assert kind_table(summarize(bare), "paper", 0.85) is None
    assert kind_table(summarize(rows), "paper", 0.85) is not None
