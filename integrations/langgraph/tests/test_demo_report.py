"""`hermes demo`'s progress bars and tables, without running the demo's servers."""

from __future__ import annotations

from hermes_langgraph.demo.report import policy_progress
from hermes_langgraph.demo.runner import DemoConfig
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
