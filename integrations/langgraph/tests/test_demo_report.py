"""`hermes demo`'s progress bars and tables, without running the demo's servers."""

from __future__ import annotations

import pytest
from hermes_langgraph.demo.classes import KNOBS, per_class_vs_baseline, trade_note
from hermes_langgraph.demo.report import class_table, policy_progress
from hermes_langgraph.demo.runner import DemoConfig, PolicyOutcome
from rich.console import Console


def test_each_policy_progress_clock_starts_with_its_own_pass() -> None:
    config = DemoConfig(apps=3, policies=("fcfs", "gittins"))
    console = Console(width=80, file=None, force_terminal=False)
    progress, on_progress = policy_progress(config, console, disable=True)
    fcfs, gittins = progress.tasks
    on_progress("fcfs", 0, 3)
    for done in (1, 2, 3):
        on_progress("fcfs", done, 3)
    assert fcfs.finished and fcfs.start_time is not None and fcfs.finished_time is not None
    assert gittins.start_time is None and gittins.elapsed is None  # not started: no clock yet
    on_progress("gittins", 0, 3)
    assert gittins.start_time is not None and gittins.start_time >= fcfs.start_time
    assert gittins.completed == 0
    on_progress("gittins", 1, 3)
    assert gittins.completed == 1 and fcfs.completed == 3


def _outcome(policy: str, per_app: dict[str, float]) -> PolicyOutcome:
    return PolicyOutcome(policy, 10, 10, 0, 1.0, 2.0, per_app)


def test_per_class_ratio_to_fcfs_and_the_note_name_who_pays() -> None:
    fcfs = _outcome("fcfs", {"mapreduce": 4.9, "rag": 2.0, "react": 3.0})
    gittins = _outcome("gittins", {"mapreduce": 28.5, "rag": 0.5, "react": 1.5})
    ratios = per_class_vs_baseline([fcfs, gittins])
    assert ratios["fcfs"] == {"mapreduce": 1.0, "rag": 1.0, "react": 1.0}
    assert ratios["gittins"] == {
        "mapreduce": pytest.approx(28.5 / 4.9),
        "rag": pytest.approx(0.25),
        "react": pytest.approx(0.5),
    }
    note = trade_note([fcfs, gittins])
    assert "largest apps' time for everyone else's" in note[0]
    assert "mapreduce takes 28.5 s (5.82x the 4.9 s under fcfs)" in note[0]
    assert "while the others (rag, react) finish sooner" in note[0]
    assert note[-1] == KNOBS and "gittins_aging" in KNOBS and "[fairness]" in KNOBS
    assert trade_note([fcfs, _outcome("gittins", {"mapreduce": 4.0, "rag": 1.0})]) == []


def test_class_table_fits_80_columns_with_every_kind_and_ratio() -> None:
    fcfs = _outcome("fcfs", {"mapreduce": 4.9, "codefix": 2.0})
    gittins = _outcome("gittins", {"mapreduce": 28.5, "codefix": 1.0})
    aging = _outcome("gittins_aging", {"mapreduce": 9.8, "codefix": 1.2})
    console = Console(width=80, record=True, file=None, force_terminal=False)
    with console.capture() as cap:
        console.print(class_table([fcfs, gittins, aging]))
    text = cap.get()
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    mapreduce = next(line for line in text.splitlines() if "mapreduce" in line)
    cells = [c.strip() for c in mapreduce.split("│")[2:7]]
    assert cells == ["4.90", "28.50", "5.82x", "9.80", "2.00x"]
