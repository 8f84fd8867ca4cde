"""``kill -9`` in the middle of learning: at most the unflushed runs are lost, the SQLite store
is never corrupted (a real child process writing a real database file)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hermes_sdk.store import SQLiteStore

BATCH = 200
"""Runs the child produces between two flush() calls."""

_CHILD = """
import random, sys
import hermes_sdk as hermes
hermes.configure(store=sys.argv[1])

@hermes.llm(backend="m")
def think(i):
    return {"usage": {"prompt_tokens": 300 + i, "completion_tokens": 20}}

@hermes.tool
def act(i):
    return i

rng = random.Random(int(sys.argv[2]))
batch = int(sys.argv[3])
done = 0
while True:
    for r in range(batch):
        with hermes.run(f"app{r % 5}"):
            for i in range(rng.randint(1, 12)):
                think(i)
                act(i)
    done += batch
    assert hermes.flush(60)
    print(done, flush=True)
"""


@pytest.mark.parametrize(
    ("delay_s", "option"),
    [(0.35, ""), (0.8, ""), (1.6, ""), (0.8, "?synchronous=normal"), (1.2, "?synchronous=normal")],
)
def test_kill_9_loses_at_most_the_unflushed_runs(
    tmp_path: Path, delay_s: float, option: str
) -> None:
    """With ``synchronous=normal`` too: a commit survives a crash of the process (only an OS
    crash or a power loss may roll the last ones back)."""
    db = tmp_path / "crash.db"
    url = f"sqlite:///{db}{option}"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, str(int(delay_s * 100)), str(BATCH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the child is running and has stored a first batch
        assert first.strip() == str(BATCH)
        time.sleep(delay_s)  # then kill it somewhere in producing, writing or flushing
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        flushed = [int(line) for line in [first, *proc.stdout.read().split()] if line.strip()]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    acknowledged = max(flushed)  # every run before this was stored when flush() returned
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT count(*) FROM paths").fetchone()[0]
    finally:
        conn.close()
    # nothing acknowledged is lost; nothing beyond the batch in progress was produced
    assert acknowledged <= rows <= acknowledged + BATCH
    store = SQLiteStore(db)  # reopening replays every row: all parse, none is half-written
    try:
        paths = list(store.load_paths())
    finally:
        store.close()
    assert len(paths) == rows and store.corrupt_rows == 0
    assert all(p.stages and p.app.startswith("app") for p in paths)
