"""``learner="process"``: completed runs stored and learned by a real child process.

Same runs -> the same stored rows, learned graphs and hints as the thread learner (SQLite and a
real redis-server); exact counters; the app's queue stays bounded while the child is stopped;
fail-open when the child cannot start or dies; 0 lost at a clean exit; a ``kill -9`` of the app
leaves a readable store and a child that exits by itself.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

import hermes_sdk.instrument as hi
from hermes_sdk.errors import ConfigError
from hermes_sdk.graph.records import Call, RunPath, RunState, Stage
from hermes_sdk.instrument import runtime as rt
from hermes_sdk.instrument.learner_process import ProcessLearner
from hermes_sdk.instrument.learner_wire import RUNS
from hermes_sdk.instrument.prometheus import register
from hermes_sdk.instrument.ranking import rank_tables
from hermes_sdk.store import SQLiteStore
from tests.instrument.test_learner import APPS, produce

STATES = (
    RunState(),
    RunState(node="plan", visits=(("plan", 1),)),
    RunState(node="search", visits=(("plan", 1), ("search", 1)), running=True, elapsed_s=0.3),
    RunState(node="answer", visits=(("answer", 1), ("plan", 1)), running=True, elapsed_s=0.05),
)


def drift_paths(n: int, seed: int = 3) -> list[RunPath]:
    """Two apps and a second tenant; a branch and a service change half way (the change
    detectors act), multi-call stages, tokens, cold starts, failed and abandoned runs."""
    rng = random.Random(seed)
    out = []
    for r in range(n):
        late = r > n // 2
        stages = [Stage("plan", (Call(rng.uniform(0.2, 0.4), 300 + r % 50, 40),), "llm", "m")]
        loops = rng.randint(1, 4 if late else 2)
        for _ in range(loops):
            width = rng.randint(1, 3)
            calls = tuple(
                Call(rng.expovariate(2.0 if late else 8.0), cold_start_s=0.01 * (r % 3))
                for _ in range(width)
            )
            stages.append(Stage("search", calls, "tool", "es"))
        if rng.random() < (0.7 if late else 0.2):
            stages.append(Stage("answer", (Call(rng.uniform(0.1, 1.0), 900, 120),), "llm", "m"))
        failed = r % 97 == 0
        out.append(
            RunPath(
                APPS[r % 2],
                tuple(stages),
                run_id=f"run-{r}",
                tenant="t2" if r % 11 == 0 else "default",
                started_at=1_700_000_000.0 + r,
                deadline_s=5.0 if r % 7 == 0 else None,
                failed=failed,
                abandoned=failed and r % 2 == 0,
            )
        )
    return out


def learn(paths: list[RunPath], store: str, learner: str) -> dict[str, Any]:
    """Deliver ``paths`` through the configured learner; what it learned and what hints say."""
    hi.configure(store=store, learner=learner)
    runtime = rt.current_runtime()
    for path in paths:
        runtime.deliver(path)
    assert hi.flush(120)
    out: dict[str, Any] = {"stats": hi.stats()}
    tables = rank_tables()
    for tenant in ("default", "t2"):
        for app in APPS[:2]:
            graph = hi.graph(app, tenant=tenant)
            out[f"{tenant}/{app}"] = (
                graph.to_dict(),
                graph.version,
                graph.changed_version,
                dict(graph.changes),
                [tables.hints(app, state, tenant) for state in STATES],
                graph.remaining_demand(STATES[2], n=64).tolist(),
            )
        out[f"prior/{tenant}"] = runtime.registry().prior(tenant).sketch.sorted().values.tolist()
    return out


def sqlite_rows(db: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute("SELECT tenant, app, json FROM paths ORDER BY id"))
    finally:
        conn.close()


def test_process_learner_learns_what_the_thread_learner_learns_sqlite(tmp_path: Path) -> None:
    paths = drift_paths(1_500)
    thread = learn(paths, f"sqlite:///{tmp_path}/t.db", "thread")
    process = learn(paths, f"sqlite:///{tmp_path}/p.db", "process")
    assert rt.current_runtime().process is not None
    assert rt.current_runtime().process.stats().started  # type: ignore[union-attr]
    pid = rt.current_runtime().process.stats().child_pid  # type: ignore[union-attr]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()  # any local user can read it
    assert b"learner_child" in cmdline and b"p.db" not in cmdline  # the URL (a password?) is not
    assert any(process[f"default/{app}"][3] for app in APPS[:2])  # a change was detected
    for key in thread:
        if key != "stats":
            assert process[key] == thread[key], key
    assert process["stats"].runs_completed == thread["stats"].runs_completed == len(paths)
    assert sqlite_rows(tmp_path / "p.db") == sqlite_rows(tmp_path / "t.db")
    assert len(sqlite_rows(tmp_path / "p.db")) == len(paths)


def test_process_learner_learns_what_the_thread_learner_learns_redis(redis_url: str) -> None:
    urls = [redis_url.rsplit("/", 1)[0] + f"/{db}" for db in (11, 12)]
    for url in urls:
        redis.Redis.from_url(url).flushdb()
    paths = drift_paths(600, seed=4)
    thread = learn(paths, urls[0], "thread")
    process = learn(paths, urls[1], "process")
    for key in thread:
        if key != "stats":
            assert process[key] == thread[key], key
    stored = [redis.Redis.from_url(u).lrange("hermes:paths", 0, -1) for u in urls]
    assert stored[0] == stored[1] and len(stored[0]) == len(paths)


def test_graphs_reopened_from_the_store_by_the_child(tmp_path: Path) -> None:
    """A new process (configure) whose store already holds runs: the child replays them and
    ``graph()`` answers with them before any new run."""
    db = f"sqlite:///{tmp_path}/h.db"
    hi.configure(store=db, learner="thread")
    produce(40, seed=1)
    assert hi.flush(30)
    runs = {app: hi.graph(app).runs for app in APPS}
    hi.configure(store=db, learner="process")
    assert {app: hi.graph(app).runs for app in APPS} == runs
    assert rt.current_runtime().process.stats().started  # type: ignore[union-attr]


def test_counters_are_exact(tmp_path: Path) -> None:
    hi.configure(store=f"sqlite:///{tmp_path}/h.db", learner="process")
    runtime = rt.current_runtime()
    paths = drift_paths(300)
    too_long = (Stage("plan", (Call(0.1),), "llm"),) * 10_001  # more than a graph takes
    bad = RunPath("app0", too_long, run_id="bad")
    for path in [*paths[:150], bad, *paths[150:]]:
        runtime.deliver(path)
    assert hi.flush(60)
    stats = hi.stats()
    p = runtime.process.stats()  # type: ignore[union-attr]
    assert (stats.runs_completed, stats.runs_failed_to_record) == (300, 1)
    assert (stats.runs_dropped, stats.runs_pending, stats.learner_process_failures) == (0, 0, 0)
    assert (p.sent, p.handled, p.completed, p.failed, p.lost) == (301, 301, 300, 1, 0)
    assert len(sqlite_rows(tmp_path / "h.db")) == 300
    assert p.child_peak_rss_mib >= p.child_rss_mib > 10


def _vm_hwm_mib(pid: int | str) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmHWM:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc")
def test_the_child_reports_its_own_peak_not_the_apps(tmp_path: Path) -> None:
    """Linux carries ``ru_maxrss`` across ``exec``: a child started by an app that once held
    256 MiB reported a peak of 256 MiB from its first status. Its own high-water mark is
    ``VmHWM``."""
    ballast = b"\x01" * (256 * 2**20)  # the app's high-water mark, then freed
    del ballast
    hi.configure(store=f"sqlite:///{tmp_path}/h.db", learner="process")
    produce(20, seed=2)
    assert hi.flush(60)
    p = rt.current_runtime().process.stats()  # type: ignore[union-attr]
    assert p.child_pid is not None
    child_hwm = _vm_hwm_mib(p.child_pid)  # read after the status: it only grows
    assert _vm_hwm_mib("self") > child_hwm + 100  # the premise: the app peaked far higher
    assert p.child_rss_mib <= p.child_peak_rss_mib <= child_hwm


def _child_environ() -> dict[str, str]:
    p = rt.current_runtime().process.stats()  # type: ignore[union-attr]
    assert p.child_pid is not None
    with open(f"/proc/{p.child_pid}/environ", "rb") as f:
        items = f.read().decode().split("\0")
    return dict(item.split("=", 1) for item in items if "=" in item)


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="Linux /proc")
def test_the_child_serves_large_blocks_by_mmap_unless_the_app_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """glibc's fixed mmap threshold in the child's environment (its heap does not keep the
    frames' and batches' large blocks); an app that set the variable keeps its value."""
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    hi.configure(store=f"sqlite:///{tmp_path}/a.db", learner="process")
    produce(3, seed=1)
    assert hi.flush(60)
    assert _child_environ()["MALLOC_MMAP_THRESHOLD_"] == str(128 * 1024)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    hi.configure(store=f"sqlite:///{tmp_path}/b.db", learner="process")
    produce(3, seed=1)
    assert hi.flush(60)
    assert _child_environ()["MALLOC_MMAP_THRESHOLD_"] == "65536"


def test_memory_bound_holds_while_the_child_is_stopped(tmp_path: Path) -> None:
    """SIGSTOP the child: the pipe fills, the app's queue fills to its bound and drops (counted
    exactly); once it runs again everything kept is stored."""
    bound = 256 * 1024
    hi.configure(store=f"sqlite:///{tmp_path}/h.db", learner="process", learn_queue_bytes=bound)
    produce(5, seed=1)
    assert hi.flush(60)  # started, said hello
    runtime = rt.current_runtime()
    pid = runtime.process.stats().child_pid  # type: ignore[union-attr]
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        produce(3_000, seed=2)
        during = runtime.counters()
        assert during.runs_dropped > 0
        assert during.peak_pending_bytes <= bound
    finally:
        os.kill(pid, signal.SIGCONT)
    assert hi.flush(60)
    stats = hi.stats()
    assert stats.runs_completed + stats.runs_dropped == 3_005
    assert stats.runs_failed_to_record == stats.runs_dropped
    assert stats.peak_pending_bytes <= bound and stats.runs_pending == 0
    assert len(sqlite_rows(tmp_path / "h.db")) == stats.runs_completed


@pytest.mark.parametrize("python", ["/nonexistent/python3", "/bin/false"])
def test_falls_back_to_the_thread_learner_when_the_child_cannot_start(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    python: str,
) -> None:
    monkeypatch.setenv("HERMES_LEARNER_PYTHON", python)
    hi.configure(store=f"sqlite:///{tmp_path}/h.db", learner="process")
    with caplog.at_level(logging.WARNING, logger="hermes_sdk.instrument"):
        produce(50, seed=1)
        assert hi.flush(60)
        produce(50, seed=2)
        assert hi.flush(60)
    stats = hi.stats()
    assert stats.learner_process_failures == 1
    assert stats.runs_completed == 100 and stats.runs_failed_to_record == 0
    assert sum(hi.graph(app).runs for app in APPS) == 100
    assert len(sqlite_rows(tmp_path / "h.db")) == 100
    warned = [r for r in caplog.records if "learner process is not used" in r.getMessage()]
    assert len(warned) == 1


def test_falls_back_when_the_child_dies(tmp_path: Path) -> None:
    hi.configure(store=f"sqlite:///{tmp_path}/h.db", learner="process")
    produce(100, seed=1)
    assert hi.flush(60)
    runtime = rt.current_runtime()
    process = runtime.process
    assert process is not None
    pid = process.stats().child_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while process.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process.active
    produce(100, seed=2)
    assert hi.flush(60)
    stats = hi.stats()
    assert stats.learner_process_failures == 1
    assert stats.runs_lost_in_learner_process == 0  # all 100 were confirmed before the kill
    assert stats.runs_completed == 200
    assert len(sqlite_rows(tmp_path / "h.db")) == 200
    assert sum(hi.graph(app).runs for app in APPS) == 200  # reopened from the store
    registry = CollectorRegistry()
    register(registry)
    assert registry.get_sample_value("hermes_sdk_learner_process_failures_total") == 1
    assert registry.get_sample_value("hermes_sdk_runs_lost_in_learner_process_total") == 0
    assert registry.get_sample_value("hermes_sdk_runs_learned_total") == 200


def test_a_store_object_cannot_cross_and_stays_in_process(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "h.db")
    hi.configure(store=store, learner="process")  # type: ignore[arg-type]
    assert rt.current_runtime().process is None
    produce(10, seed=1)
    assert hi.flush(30) and hi.stats().runs_completed == 10


def test_learner_option_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError):
        hi.configure(store="memory://", learner="fork")
    monkeypatch.setenv("HERMES_LEARNER", "process")
    hi.configure(store="memory://")
    assert isinstance(rt.current_runtime().process, ProcessLearner)


_APP = """
import random, sys
import hermes_sdk as hermes
hermes.configure(store=sys.argv[1], learner="process")

@hermes.llm(backend="m")
def think(i):
    return {"usage": {"prompt_tokens": 300 + i, "completion_tokens": 20}}

@hermes.tool
def act(i):
    return i

from hermes_sdk.instrument import runtime as rt
rng = random.Random(1)
batch, rounds = int(sys.argv[2]), int(sys.argv[3])
done = 0
while rounds < 0 or done < rounds:
    done += 1
    for r in range(batch):
        with hermes.run(f"app{r % 5}"):
            for i in range(rng.randint(1, 12)):
                think(i)
                act(i)
    if done == 1:
        assert hermes.flush(60)
        print(rt.current_runtime().process.stats().child_pid, flush=True)
    if rounds < 0 or done < rounds - 1:
        assert hermes.flush(60)
        print(done * batch, flush=True)
"""


def _gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return True  # exited; its parent (init) reaps it
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_clean_exit_stores_everything_without_flush(tmp_path: Path) -> None:
    db = tmp_path / "exit.db"
    proc = subprocess.run(
        [sys.executable, "-c", _APP, f"sqlite:///{db}", "2000", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        # a queue that holds the whole unflushed round: what is checked is the exit, not drops
        env={**os.environ, "HERMES_LEARN_QUEUE_MIB": "64"},
    )
    assert proc.returncode == 0, proc.stderr
    pid = int(proc.stdout.split()[0])
    assert _gone(pid, 30)  # the child exits at the app's end of stream
    assert len(sqlite_rows(db)) == 4_000  # the second round was never flushed: 0 lost
    assert "not stored" not in proc.stderr and "dropped" not in proc.stderr


def test_kill_9_of_the_app_leaves_a_readable_store(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    batch = 200
    proc = subprocess.Popen(
        [sys.executable, "-c", _APP, f"sqlite:///{db}", str(batch), "-1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        first = int(proc.stdout.readline())
        assert first == batch
        time.sleep(0.6)  # somewhere in producing, sending or flushing
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        acknowledged = max([first, *map(int, proc.stdout.read().split())])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert _gone(child, 30)  # end of stream: it stored what it had and exited
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT count(*) FROM paths").fetchone()[0]
    finally:
        conn.close()
    assert acknowledged <= rows <= acknowledged + batch
    store = SQLiteStore(db)
    try:
        assert sum(1 for _ in store.load_paths()) == rows and store.corrupt_rows == 0
        assert all(json.loads(r[2])["app"] == r[1] for r in sqlite_rows(db)[:5])
    finally:
        store.close()


def test_a_large_batch_goes_in_frames_of_at_most_frame_max_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog handed over at once is split (the child starts learning before the rest is
    sent, and decodes at most FRAME_MAX_RUNS runs per frame); every run arrives, in order."""
    import hermes_sdk.instrument.learner_process as lp

    hi.configure(store=f"sqlite:///{tmp_path}/f.db", learner="process")
    runtime = rt.current_runtime()
    process = runtime.process
    assert process is not None
    assert hi.flush(60) and process.registry_for_hints() is not None
    sizes: list[int] = []
    real = lp.write_frame

    def counting(fd: int, payload: bytes, prefix: bytes = b"") -> None:
        if (prefix or payload[:1]) == RUNS:
            sizes.append(len(prefix) + len(payload))
        real(fd, payload, prefix)

    monkeypatch.setattr(lp, "write_frame", counting)
    n = 2 * lp.FRAME_MAX_RUNS + 345
    paths = drift_paths(n, seed=5)
    process.handle(paths)
    assert hi.flush(60)
    assert len(sizes) == 3  # 1,000 + 1,000 + 345 runs
    p = process.stats()
    assert (p.sent, p.handled, p.completed, p.lost) == (n, n, n, 0)
    stored = [json.loads(row[2])["run_id"] for row in sqlite_rows(tmp_path / "f.db")]
    assert stored == [path.run_id for path in paths]
