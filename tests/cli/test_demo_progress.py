"""`hermes demo`'s progress: a real (tiny) demo run drives the bars, each policy's clock its own.

Issue 17: the second policy's bar counted from the first's start (FCFS 38 s, then Gittins shown
as 1:17). The runner must report each pass's start (``done=0``) when that pass starts, after the
previous pass finished, so each bar's elapsed time is its own pass only.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from rich.console import Console

pytest.importorskip("hermes_langgraph")

from hermes_langgraph.demo.report import policy_progress
from hermes_langgraph.demo.runner import DemoConfig, run_demo


@pytest.mark.slow
def test_each_policys_bar_starts_when_its_own_pass_starts(tmp_path: Path) -> None:
    config = DemoConfig(apps=6, arrival_rate=20.0, out=tmp_path)
    calls: list[tuple[str, int, int]] = []
    progress, on_progress = policy_progress(config, Console(file=None, width=80), disable=True)

    def record(policy: str, done: int, total: int) -> None:
        calls.append((policy, done, total))
        on_progress(policy, done, total)

    sigterm = signal.getsignal(signal.SIGTERM)  # run_demo turns SIGTERM into SystemExit
    try:
        with progress:
            outcomes, _, _ = run_demo(config, on_progress=record)
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    assert [o.completed for o in outcomes] == [6, 6]
    # each pass reports its start, then its apps one by one, before the next pass begins
    assert calls == [(p, done, 6) for p in ("fcfs", "gittins") for done in range(7)]
    fcfs, gittins = progress.tasks
    assert fcfs.finished and gittins.finished
    assert fcfs.start_time is not None and gittins.start_time is not None
    assert fcfs.finished_time is not None  # rich: the elapsed seconds when the bar filled
    # the second clock started after the first pass ended (it was not running since the start)
    assert gittins.start_time >= fcfs.start_time + fcfs.finished_time
