"""SQLiteStore.append_paths writes a batch as multi-row INSERTs: the rows are what one INSERT per
path wrote (same columns, order, one timestamp per batch), a batch spanning several INSERT
statements is still all or none, and batches of every size share a few prepared statements."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hermes_sdk.errors import StoreError
from hermes_sdk.graph.records import Call, RunPath, Stage
from hermes_sdk.store.base import encode_path
from hermes_sdk.store.sqlite import _ROWS_PER_INSERT, SQLiteStore, insert_chunks


def _path(i: int, app: str) -> RunPath:
    return RunPath(
        app,
        (Stage("x", (Call(0.1 * (i + 1), input_tokens=i, output_tokens=2 * i),), "llm", "m"),),
        run_id=f"r{i}-\u00e9",
        tenant=f"t{i % 3}",
        started_at=1000.0 + i,
    )


def _rows(db: Path) -> list[tuple[str, str, str, float]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT tenant, app, json, created_at FROM paths ORDER BY id"
        ).fetchall()


@pytest.mark.parametrize(
    "n", [1, 77, _ROWS_PER_INSERT, _ROWS_PER_INSERT + 1, 3 * _ROWS_PER_INSERT + 7]
)
def test_batch_rows_equal_one_insert_per_path(tmp_path: Path, n: int) -> None:
    paths = [_path(i, f"app{i % 5}") for i in range(n)]
    batched, single = SQLiteStore(tmp_path / "b.db"), SQLiteStore(tmp_path / "s.db")
    batched.append_paths(paths)
    for p in paths:
        single.append_path(p)
    batched.close()
    single.close()
    got, want = _rows(tmp_path / "b.db"), _rows(tmp_path / "s.db")
    assert [r[:3] for r in got] == [r[:3] for r in want]
    assert [r[2] for r in got] == [encode_path(p) for p in paths]
    assert len({r[3] for r in got}) == 1  # one timestamp per batch


def test_batch_spanning_statements_is_all_or_none(tmp_path: Path) -> None:
    """A row refused in the last INSERT of a batch leaves none of the batch's earlier rows."""
    db = tmp_path / "h.db"
    store = SQLiteStore(db)
    store.append_paths([_path(0, "ok")])
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON paths WHEN NEW.app = 'refused' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    n = 2 * _ROWS_PER_INSERT + 5
    batch = [_path(i, "refused" if i == n else "ok") for i in range(1, n + 1)]
    with pytest.raises(StoreError):
        store.append_paths(batch)
    assert len(_rows(db)) == 1
    store.append_paths(batch[:-1])  # the store still works after the rollback
    assert list(store.load_paths()) == [_path(0, "ok"), *batch[:-1]]
    store.close()


class _Recording:
    """The store's real connection, recording the SQL text of every statement it executes."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn, self.texts = conn, set[str]()

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        self.texts.add(sql)
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


def test_batches_of_every_size_use_nine_insert_statements(tmp_path: Path) -> None:
    """The connection caches up to 128 prepared statements: one INSERT per batch size (1..240
    rows) held ~69 MiB of them. Every size now goes through the same nine."""
    store = SQLiteStore(tmp_path / "n.db")
    recording = _Recording(store._db())
    store._conn = recording  # type: ignore[assignment]
    sizes = [*range(1, _ROWS_PER_INSERT + 2), 2 * _ROWS_PER_INSERT + 255]
    for n in sizes:
        store.append_paths([_path(i, "app") for i in range(n)])
    rows = {sql.count("(?, ?, ?, ?)") for sql in recording.texts if sql.startswith("INSERT")}
    assert rows == {_ROWS_PER_INSERT, 128, 64, 32, 16, 8, 4, 2, 1}
    assert len(list(store.load_paths())) == sum(sizes)
    store.close()


@pytest.mark.parametrize("count", [0, 1, 7, 239, 240, 241, 479, 480, 1000, 12_345])
def test_insert_chunks_cover_the_batch(count: int) -> None:
    chunks = insert_chunks(count)
    full = count // _ROWS_PER_INSERT
    tail = chunks[full:]
    assert sum(chunks) == count and chunks[:full] == [_ROWS_PER_INSERT] * full
    assert tail == sorted(set(tail), reverse=True) and set(tail) <= {128, 64, 32, 16, 8, 4, 2, 1}
