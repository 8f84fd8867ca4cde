"""`hermes demo`'s progress bars and tables, without running the demo's servers."""

from __future__ import annotations

import pytest
from hermes_langgraph.demo.classes import KNOBS, per_class_vs_baseline, trade_note
from hermes_langgraph.demo.load import EngineLoad
from hermes_langgraph.demo.report import batching_note, class_table, load_table, policy_progress
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


def test_kinds_within_five_percent_are_named_the_same_not_slowed() -> None:
    fcfs = _outcome("fcfs", {"codefix": 8.15, "mapreduce": 12.2, "rag": 2.2, "react": 4.3})
    gittins = _outcome("gittins", {"codefix": 8.25, "mapreduce": 16.8, "rag": 1.7, "react": 2.9})
    note = trade_note([fcfs, gittins])[0]
    assert "mapreduce takes 16.8 s (1.38x the 12.2 s under fcfs)" in note
    assert "codefix takes" not in note
    assert "while rag, react finish sooner (codefix: within 5% of fcfs)." in note


def _loaded(policy: str, mean: float, p95: float, *, full: float, prios: int) -> PolicyOutcome:
    fast = EngineLoad("fast", 273, 16, 1.11, 14.0, full, 5.5, 0.81, 0.3, prios, 0)
    slow = EngineLoad("slow", 4, 16, 0.1, 0.7, 0.0, 0.0, 0.0, 0.05, 1, 0)
    return PolicyOutcome(policy, 160, 160, 0, mean, p95, {"rag": mean}, load=(fast, slow))


def test_batching_note_gives_the_load_the_gain_and_why_it_is_smaller() -> None:
    outcomes = [
        _loaded("fcfs", 4.25, 12.3, full=0.58, prios=1),
        _loaded("gittins", 3.72, 13.1, full=0.58, prios=21),
    ]
    lines = batching_note(outcomes, DemoConfig())
    assert "up to 16 requests per step" in lines[0] and "admits 16" in lines[0]
    assert "offered 1.11x what a full batch decodes" in lines[0]
    assert "full 58% of the arrival span (mean 14.0 of 16)" in lines[0]
    assert "waited 0.81 s on average at the gateway (5.5 waiting" in lines[0]
    assert "ride along" in lines[1] and "only while the batch is full" in lines[1]
    assert "gittins's mean speed-up over fcfs 1.14x, P95 speed-up 0.94x" in lines[1]
    assert "admits at most a batch" in lines[2] and "(0 preemptions)" in lines[2]
    deeper = batching_note(outcomes, DemoConfig(max_inflight=32))
    assert "admits more than a batch (32)" in deeper[2] and "0.3 waiting" in deeper[2]
    assert batching_note(outcomes, DemoConfig(max_batch=1)) == []
    assert batching_note([_outcome("fcfs", {"rag": 1.0})], DemoConfig()) == []


def test_load_table_fits_80_columns() -> None:
    outcomes = [_loaded("fcfs", 4.25, 12.3, full=0.58, prios=1)]
    outcomes.append(_loaded("gittins_aging", 3.72, 13.1, full=0.58, prios=21))
    console = Console(width=80, record=True, file=None, force_terminal=False)
    with console.capture() as cap:
        console.print(load_table(outcomes))
    text = cap.get()
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    row = next(line for line in text.splitlines() if "gittins_aging" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells == ["gittins_aging", "fast", "1.11", "14.0/16", "58%", "0.81", "5.5", "21"]
