"""Online Gittins on the default rank tables stays within 1% of the exact ranker (every table
rebuilt on every learned run) on the paper workload: the staleness bound costs nothing
measurable (issue 18; benchmarks/bench_rank.py measures the 12000-app point)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from hermes_sdk.graph.rank_tables import RankTableSettings
from hermes_sdk.sim import simulate
from hermes_sdk.sim.workloads.suites import paper_suite

EXACT = RankTableSettings(max_stale_fraction=0.0, min_stale_runs=0)


def _mean(monkeypatch: pytest.MonkeyPatch, settings: RankTableSettings, seed: int) -> float:
    """Mean completion of online Gittins with the simulator's registry on ``settings``."""
    graph_pkg = importlib.import_module("hermes_sdk.graph")
    original = graph_pkg.GraphRegistry

    class Configured(original):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("rank_tables", settings)
            super().__init__(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(graph_pkg, "GraphRegistry", Configured)
        result = simulate(paper_suite(0.85, seed=seed, n_apps=1200), "gittins")
    assert result.learning == "online"
    return result.mean


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_default_tables_are_within_one_percent_of_the_exact_ranker(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    tables = _mean(monkeypatch, RankTableSettings(), seed)
    exact = _mean(monkeypatch, EXACT, seed)
    assert tables != exact  # the staleness is real: the two rankers did differ
    assert abs(tables / exact - 1.0) <= 0.01
