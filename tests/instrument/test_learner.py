"""The queue of completed runs: bounded by memory, exact counters, batches, warnings, exit drain."""

from __future__ import annotations

import gc
import logging
import random
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

import hermes_sdk.instrument as hi
from hermes_sdk.errors import ConfigError
from hermes_sdk.graph.records import Call, RunPath, Stage
from hermes_sdk.instrument import runtime as rt
from hermes_sdk.instrument.learner import DEFAULT_MAX_BYTES, RunLearner, estimate_bytes
from hermes_sdk.store import SQLiteStore

APPS = [f"app{i}" for i in range(5)]


@hi.llm(backend="small")
def think(i: int) -> dict[str, object]:
    return {"usage": {"prompt_tokens": 300 + i, "completion_tokens": 290 + i}}


@hi.tool
def act(i: int) -> int:
    return i


def produce(runs: int, seed: int) -> None:
    """The soak's shape: llm then tool, 1-12 iterations per run, five apps."""
    rng = random.Random(seed)
    for r in range(runs):
        with hi.run(APPS[r % len(APPS)]):
            for i in range(rng.randint(1, 12)):
                think(i)
                act(i)


class GatedStore:
    """A real SQLite store whose batch writes wait for ``gate`` and then sleep ``delay_s``:
    a store slower than any producer."""

    def __init__(self, path: Path, delay_s: float = 0.0) -> None:
        self.inner = SQLiteStore(path)
        self.corrupt_rows = 0
        self.gate = threading.Event()
        self.delay_s = delay_s
        self.batches: list[int] = []

    def append_path(self, path: RunPath) -> None:
        self.append_paths([path])

    def append_paths(self, paths: Sequence[RunPath]) -> None:
        self.gate.wait()
        time.sleep(self.delay_s)
        self.inner.append_paths(paths)
        self.batches.append(len(paths))

    def load_paths(self) -> Iterator[RunPath]:
        return self.inner.load_paths()

    def close(self) -> None:
        self.inner.close()

    def rows(self) -> int:
        conn = sqlite3.connect(self.inner.path)
        try:
            return int(conn.execute("SELECT count(*) FROM paths").fetchone()[0])
        finally:
            conn.close()


def test_estimate_bounds_the_memory_queued_runs_hold(tmp_path: Path) -> None:
    """With the store blocked, everything produced stays queued: the traced growth of the heap
    is at most what the queue accounts for, and the queue never exceeds its bound."""
    store = GatedStore(tmp_path / "h.db")
    hi.configure(store=store, learn_queue_bytes=2 * 2**20)  # type: ignore[arg-type]
    produce(20, seed=0)  # warm up: registry opened, code paths and name strings created
    store.gate.set()
    assert hi.flush(30)
    store.gate.clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        produce(3_000, seed=1)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    counters = rt.current_runtime().counters()
    assert counters.runs_dropped > 0  # the bound was reached
    assert counters.pending_bytes <= counters.max_pending_bytes == 2 * 2**20
    assert counters.peak_pending_bytes <= counters.max_pending_bytes
    # the estimate is an upper bound (32 KiB: the queue's own lists, a logged warning)
    assert grown <= counters.pending_bytes + 32 * 1024
    assert grown >= 0.6 * counters.pending_bytes  # ... and not a wild one
    store.gate.set()
    assert hi.flush(60)


def test_counters_are_exact_with_producers_faster_than_the_store(tmp_path: Path) -> None:
    """Four app threads against a store that sleeps 200 ms per batch: every run is either
    stored and learned or dropped and counted, the queue stays within its bound throughout."""
    store = GatedStore(tmp_path / "h.db", delay_s=0.2)  # ~55 runs fit: < 300 runs/s stored
    store.gate.set()
    bound = 256 * 1024
    hi.configure(store=store, learn_queue_bytes=bound)  # type: ignore[arg-type]
    learner = rt.current_runtime().learner
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(learner.stats().pending_bytes)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=produce, args=(1_500, seed)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert hi.flush(60)
    stats = hi.stats()
    assert stats.runs_dropped > 0
    assert stats.runs_completed + stats.runs_dropped == 6_000
    assert stats.runs_failed_to_record == stats.runs_dropped
    assert stats.runs_pending == 0 and stats.pending_bytes == 0
    assert max(seen) <= bound and stats.peak_pending_bytes <= bound
    assert store.rows() == stats.runs_completed == sum(store.batches)
    assert len(store.batches) < stats.runs_completed  # batched, not one write per run
    learned = sum(hi.graph(app).runs for app in APPS)
    assert learned == stats.runs_completed
    s = learner.stats()
    assert s.submitted == 6_000 and s.handled + s.dropped == s.submitted


def test_drops_warn_once_per_interval(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "h.db")
    hi.configure(store=store, learn_queue_bytes=20_000)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="hermes_sdk.instrument"):
        produce(500, seed=3)
    warnings = [r for r in caplog.records if "dropped, not learned" in r.getMessage()]
    assert len(warnings) == 1
    assert "HERMES_LEARN_QUEUE_MIB" in warnings[0].getMessage()
    store.gate.set()
    assert hi.flush(30)
    stats = hi.stats()
    assert stats.runs_completed + stats.runs_dropped == 500 and stats.runs_dropped > 0


def test_a_failing_store_counts_the_whole_batch_and_never_raises(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "h.db")
    hi.configure(store=store)
    produce(5, seed=4)
    assert hi.flush(30)
    store.close()  # every later write raises StoreError
    produce(40, seed=5)
    assert hi.flush(30)
    stats = hi.stats()
    assert stats.runs_completed == 5
    assert stats.runs_failed_to_record == 40 and stats.runs_dropped == 0


def test_learner_hands_over_everything_queued_as_one_batch() -> None:
    batches: list[int] = []
    gate = threading.Event()

    def handle(paths: list[RunPath]) -> None:
        gate.wait()
        batches.append(len(paths))

    learner = RunLearner(handle, max_bytes=10 * 2**20)
    path = RunPath("a", (), run_id="r")
    learner.submit(path)  # taken at once; the thread then blocks in handle
    while learner.stats().pending != 1 or learner._queue:
        time.sleep(0.001)
    for _ in range(999):
        assert learner.submit(path)
    gate.set()
    assert learner.close(10)
    assert batches == [1, 999]
    assert not learner.submit(path)  # closed: refused and counted
    s = learner.stats()
    assert (s.submitted, s.handled, s.dropped, s.batches) == (1001, 1000, 1, 2)


def test_an_encoding_queue_counts_the_encoded_bytes_exactly() -> None:
    """The process learner's queue: runs wait as ``encode_run`` blobs, each counted as its length
    plus the bytes object's overhead; what overflows the bound is dropped, the rest arrives in
    order and decodes to the same runs."""
    from hermes_sdk.instrument.learner import BYTES_OVERHEAD
    from hermes_sdk.instrument.learner_wire import decode_run_list, encode_run
    from tests.instrument.test_learner_process import drift_paths

    paths = drift_paths(200, seed=9)
    sizes = [len(encode_run(p)) + BYTES_OVERHEAD for p in paths]
    got: list[bytes] = []
    gate = threading.Event()

    def handle(blobs: list[bytes]) -> None:
        gate.wait()
        got.extend(blobs)

    bound = sum(sizes[:150])  # exactly the first 150 fit (the thread takes none before)
    learner = RunLearner(handle, max_bytes=bound, encode=encode_run)
    learner._start = lambda: None  # type: ignore[method-assign]  # no thread: nothing taken yet
    accepted = [learner.submit(p) for p in paths]
    s = learner.stats()
    assert s.pending_bytes == bound and s.pending == 150
    assert accepted == [True] * 150 + [False] * 50 and s.dropped == 50
    del learner._start
    learner._thread = None
    gate.set()
    assert learner.flush(10)
    assert decode_run_list(got) == paths[:150]
    assert len(paths[0].stages) and sum(sizes) < sum(estimate_bytes(p) for p in paths) / 4


def test_a_run_encode_refuses_is_counted_apart_from_a_full_queue(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A run ``marshal`` cannot write (a ``str`` subclass as a node name) is dropped and counted
    as unencodable, with a warning of its own (rate-limited), not the full queue's; the runs
    around it are queued and handled."""
    from hermes_sdk.instrument.learner_wire import decode_run_list, encode_run

    class Name(str):
        pass

    good = RunPath("a", (Stage("n", (Call(0.1),)),), run_id="ok")
    bad = RunPath("a", (Stage(Name("n"), (Call(0.1),)),), run_id="bad")
    got: list[bytes] = []
    learner = RunLearner(got.extend, max_bytes=10 * 2**20, encode=encode_run)
    with caplog.at_level(logging.WARNING, logger="hermes_sdk.instrument"):
        accepted = [learner.submit(p) for p in (good, bad, bad, good, bad)]
        assert learner.flush(10)
    assert accepted == [True, False, False, True, False]
    s = learner.stats()
    assert (s.submitted, s.handled, s.dropped, s.unencodable, s.pending) == (5, 2, 3, 3, 0)
    assert decode_run_list(got) == [good, good]
    messages = [r.getMessage() for r in caplog.records]
    assert not any("queue of runs waiting" in m for m in messages)
    encode_warnings = [m for m in messages if "cannot encode" in m]
    assert len(encode_warnings) == 1 and "'bad'" in encode_warnings[0]
    learner.close(1)


def test_flush_returns_only_once_the_batch_in_flight_is_stored(tmp_path: Path) -> None:
    """What ``kill -9`` safety rests on (tests/instrument/test_crash.py): a run acknowledged by
    ``flush()`` is in the store, even when the learner had already taken it off the queue."""
    store = GatedStore(tmp_path / "h.db")
    hi.configure(store=store)  # type: ignore[arg-type]
    learner = rt.current_runtime().learner
    produce(1, seed=8)
    while learner.stats().pending != 1 or learner._queue:  # taken off the queue, write held
        time.sleep(0.001)
    assert not hi.flush(0.3)
    assert store.rows() == 0 and learner.stats().pending == 1
    store.gate.set()
    assert hi.flush(30)
    assert store.rows() == 1 == hi.stats().runs_completed


def test_estimate_grows_with_stages_and_calls() -> None:
    call = Call(0.5, input_tokens=300, output_tokens=20)
    one = RunPath("a", (Stage("x", (call,)),), run_id="r")
    wide = RunPath("a", (Stage("x", (call,) * 8),), run_id="r")
    long = RunPath("a", (Stage("x", (call,)),) * 8, run_id="r")
    assert estimate_bytes(one) < estimate_bytes(wide) < estimate_bytes(long)
    assert estimate_bytes(replace(one, run_id="r" * 100)) == estimate_bytes(one) + 99


def test_queue_bound_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert rt.current_runtime().learner.max_bytes == DEFAULT_MAX_BYTES
    monkeypatch.setenv("HERMES_LEARN_QUEUE_MIB", "0.5")
    hi.configure(store="memory://")
    assert rt.current_runtime().learner.max_bytes == 2**19
    hi.configure(store="memory://", learn_queue_bytes=12_345)
    assert hi.stats().max_pending_bytes == 12_345
    for bad in ("0", "-1", "lots"):
        monkeypatch.setenv("HERMES_LEARN_QUEUE_MIB", bad)
        with pytest.raises(ConfigError):
            hi.configure(store="memory://")
    monkeypatch.delenv("HERMES_LEARN_QUEUE_MIB")
    with pytest.raises(ConfigError):
        hi.configure(store="memory://", learn_queue_bytes=0)


_EXIT_CHILD = """
import random, sys, time
import hermes_sdk as hermes
hermes.configure(store=sys.argv[1], learn_queue_bytes=64 * 2**20)

@hermes.llm(backend="m")
def think(i):
    return i

@hermes.tool
def act(i):
    return i

rng = random.Random(0)
for r in range(4000):
    with hermes.run(f"app{r % 5}"):
        for i in range(rng.randint(1, 12)):
            think(i)
            act(i)
print(time.time(), flush=True)
"""


def test_clean_exit_stores_every_pending_run_in_one_batch(tmp_path: Path) -> None:
    db = tmp_path / "exit.db"
    out = subprocess.run(
        [sys.executable, "-c", _EXIT_CHILD, f"sqlite:///{db}"],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    ended = float(out.stdout.split()[-1])
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM paths").fetchone()[0] == 4000
        # rows of one batch share created_at: after the app's last run, at most the batch in
        # flight then and the exit batch were written
        late = conn.execute(
            "SELECT count(DISTINCT created_at) FROM paths WHERE created_at >= ?", (ended,)
        ).fetchone()[0]
    finally:
        conn.close()
    assert late <= 2
    assert "not stored before" not in out.stderr


def test_learner_rebuilds_due_rank_tables_off_the_app_path() -> None:
    """A table looked up once goes due as its graph learns; the learner's batch rebuilds it."""
    from hermes_sdk.graph.records import RunState

    produce(100, seed=6)
    assert hi.flush(30)
    tables = rt.current_runtime().registry().rank_tables
    assert tables is not None
    tables.point("app0", RunState())  # builds the table of app0's start position
    produce(200, seed=7)  # app0 learns 40 more runs: more than the table's allowance
    assert hi.flush(30)
    assert tables.due() == 0  # the learner rebuilt it after its batch


def test_redis_store_takes_batches_from_the_learner(redis_url: str) -> None:
    """A real redis-server: every run reaches the list, in MULTI/EXEC batches, and is learned."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    # a queue that holds every run: what is checked is the batching, not drops
    hi.configure(store=redis_url, learn_queue_bytes=64 * 2**20)
    threads = [threading.Thread(target=produce, args=(400, seed)) for seed in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hi.flush(60)
    stats = hi.stats()
    assert stats.runs_completed == client.llen("hermes:paths") == 1_200
    assert stats.runs_dropped == stats.runs_failed_to_record == 0
    assert rt.current_runtime().learner.stats().batches < 1_200
    assert sum(hi.graph(app).runs for app in APPS) == 1_200
    client.close()
