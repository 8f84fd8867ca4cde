"""`hermes bench --tenants --quick` as a user runs it: both fairness scenarios, a table, JSON."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from hermes_sdk.cli import app
from hermes_sdk.cli.bench_tables import tenants_table


def test_bench_tenants_shows_fair_sharing_and_the_guard(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "--tenants", "--quick", "--suite", "light", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps at the runner's 80 columns
    assert "tenants and starvation guard" in text and "of the gap closed" in text
    doc = json.loads((tmp_path / "tenants.json").read_text(encoding="utf-8"))
    policies = [(r["scenario"], r["policy"]) for r in doc["rows"]]
    assert policies[:4] == [
        ("tenants", "gittins"),
        ("tenants", "gittins+fair"),
        ("light_alone", "gittins"),
        ("light_alone", "gittins+fair"),
    ]
    assert [p for s, p in policies[4:]] == ["gittins", "gittins_aging", "srpt_oracle", "fcfs"]
    fair = next(r for r in doc["rows"] if r["policy"] == "gittins+fair")
    assert set(fair["tenant_share"]) == {"heavy", "light"}
    guard = [r for r in doc["rows"] if r["scenario"] == "guard"]
    assert all(r["max_slowdown"] >= r["max_slowdown_bound"] * 0.999 for r in guard)
    assert set(doc["checks"]["light_per_seed"]["1"]) == {
        "drop", "mean_rise", "largest_possible_drop", "gap_closed"
    }  # fmt: skip
    narrow = Console(width=80, record=True, file=None, force_terminal=False)
    with narrow.capture() as cap:
        narrow.print(tenants_table(doc["rows"], "light"))
    lines = cap.get().splitlines()
    assert max(len(line) for line in lines) <= 80
    for scenario, policy in policies:  # every name whole on one line, never "gittin…"
        assert any(scenario in line and policy in line for line in lines), (scenario, policy)
    assert "…" not in cap.get()


def test_bench_tenants_rejects_an_unknown_suite(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "--tenants", "--suite", "nope", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "unknown suite" in result.output
