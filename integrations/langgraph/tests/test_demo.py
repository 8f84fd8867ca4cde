"""`hermes demo` end to end, run as a new user runs it: a subprocess with real child servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hermes_langgraph.demo.runner import DemoConfig, plan


def test_plan_is_seeded_and_mixes_every_app() -> None:
    a, b = plan(DemoConfig(apps=80, seed=3)), plan(DemoConfig(apps=80, seed=3))
    assert a == b
    assert {p.name for p in a} == {"rag", "react", "codefix", "mapreduce"}
    starts = [p.start_s for p in a]
    assert starts == sorted(starts)
    assert plan(DemoConfig(apps=80, seed=4)) != a


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes once reaped or defunct.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.slow
def test_quick_demo_json_batches_ranks_and_leaves_no_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hermes_sdk", "demo", "--quick", "--json", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    fcfs, hermes = doc["policies"]["fcfs"], doc["policies"]["gittins"]
    for result in (fcfs, hermes):
        assert result["completed"] == result["apps"] > 0
        assert 0 < result["mean"] <= result["p95"]
        fast = result["load"]["fast"]  # the shared engine batches what the gateway admits
        assert fast["max_batch"] == 16 and fast["requests"] >= result["apps"]
        assert 1.0 < fast["mean_batch"] <= 16 and fast["preemptions"] == 0
        assert fast["utilisation"] == pytest.approx(fast["mean_batch"] / 16)
        assert fast["offered_load"] > 0 and fast["gateway_wait_s"] >= 0
        assert result["load"]["slow"]["requests"] > 0  # mapreduce's combine step
    # FCFS ranks by arrival time (unix seconds): one priority level; Gittins' ranks spread out
    assert fcfs["load"]["fast"]["priorities"] == 1 < hermes["load"]["fast"]["priorities"]
    for result in (fcfs, hermes):  # the per-app-class view: each kind's mean and its ratio
        assert set(result["per_app_vs_fcfs"]) == set(result["per_app"]) == set(fcfs["per_app"])
    assert all(r == 1.0 for r in fcfs["per_app_vs_fcfs"].values())
    for name, ratio in hermes["per_app_vs_fcfs"].items():
        assert ratio == pytest.approx(hermes["per_app"][name] / fcfs["per_app"][name], rel=1e-3)
    assert doc["graphs"] and all(Path(p).is_file() for p in doc["graphs"])
    for name in ("rag", "react", "codefix", "mapreduce"):
        graph = json.loads((tmp_path / "graphs" / f"{name}.json").read_text())
        assert graph["schema_version"] == 1 and graph["runs"] > 0
    assert (tmp_path / "demo.png").read_bytes()[:4] == b"\x89PNG"
    assert doc["processes"] and not any(_alive(pid) for pid in doc["processes"])


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_demo_stops_every_child(tmp_path: Path, signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hermes_sdk", "demo", "--quick", "--json", "--out", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # a shell's background job (`./scripts/test &`, some CI runners) ignores SIGINT and its
        # children inherit that, as POSIX wants; the user's terminal Ctrl-C is what we test
        preexec_fn=_default_sigint,
    )
    pids_file = tmp_path / "logs" / "pids"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if pids_file.exists() and len(pids_file.read_text().splitlines()) >= 3:
            break  # both engines and the first scheduler are up: apps are running
        time.sleep(0.1)
    assert proc.poll() is None, "the demo ended before it could be interrupted"
    proc.send_signal(signum)
    assert proc.wait(timeout=60) != 0
    pids = [int(line.split()[0]) for line in pids_file.read_text().splitlines()]
    assert len(pids) >= 3 and not any(_alive(pid) for pid in pids)
