"""Embedded SQLite store (WAL): the default for single-process and embedded use.

One connection shared by all threads behind a lock (``check_same_thread=False``).
``synchronous`` (a URL option, ``sqlite:///path.db?synchronous=normal``): ``full`` (the default)
syncs the WAL at every commit, so a committed append survives a crash of the process or of the
machine; ``normal`` syncs it only at checkpoints: a commit still survives a crash of the process
(``kill -9``), and an OS crash or a power loss may roll back the last transactions, never corrupt
the database (https://www.sqlite.org/pragma.html#pragma_synchronous).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hermes_sdk.errors import ConfigError, StoreError
from hermes_sdk.graph.records import RunPath
from hermes_sdk.store.base import decode_path, decode_value, encode_path, encode_value

_SCHEMA = """
CREATE TABLE IF NOT EXISTS paths (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    app TEXT NOT NULL,
    json TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    json TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""
_BATCH = 500
_ROWS_PER_INSERT = 240
"""Rows per multi-row INSERT of :meth:`SQLiteStore.append_paths`: 960 parameters, under the
999 of SQLite before 3.32. One statement step per 240 rows instead of executemany's one per
row: each step releases the GIL, and a thread that releases it waits up to
``sys.getswitchinterval()`` (5 ms) to get it back from a CPU-bound app thread."""
_TAIL_SIZES = (128, 64, 32, 16, 8, 4, 2, 1)
"""The rows after the last full 240 go in INSERTs of these sizes (the binary digits of their
count: at most 8 more steps). Only 9 distinct statements are ever prepared: the connection
caches up to 128 prepared statements, and one of every size 1..240 held ~69 MiB (measured:
240 commits of 1..240 rows, RSS +68.8 MiB; of 240 rows each time, +2.7 MiB)."""


SYNCHRONOUS_MODES = ("full", "normal")
"""``PRAGMA synchronous`` values a store URL may ask for (WAL: see the module docstring)."""
DEFAULT_SYNCHRONOUS = "full"


def split_sqlite_url(url: str) -> tuple[str, str]:
    """``(url without its query, synchronous mode)`` of a ``sqlite://`` URL: the only option is
    ``synchronous=full|normal`` (default :data:`DEFAULT_SYNCHRONOUS`); ConfigError otherwise."""
    base, _, query = url.partition("?")
    mode = DEFAULT_SYNCHRONOUS
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key != "synchronous" or value.lower() not in SYNCHRONOUS_MODES:
            raise ConfigError(
                f"SQLite URL option must be synchronous={'|'.join(SYNCHRONOUS_MODES)}, "
                f"got {item!r} in {url!r}"
            )
        mode = value.lower()
    return base, mode


def _insert_rows_sql(n: int) -> str:
    """One INSERT of ``n`` path rows (the connection caches the statement per ``n``)."""
    return "INSERT INTO paths (tenant, app, json, created_at) VALUES " + ", ".join(
        ["(?, ?, ?, ?)"] * n
    )


def insert_chunks(count: int) -> list[int]:
    """Row counts of the INSERTs that write ``count`` rows: full ``_ROWS_PER_INSERT`` ones,
    then the binary digits of the rest (:data:`_TAIL_SIZES`)."""
    full, rest = divmod(count, _ROWS_PER_INSERT)
    return [_ROWS_PER_INSERT] * full + [size for size in _TAIL_SIZES if rest & size]


class SQLiteStore:
    """Store backed by one SQLite file (``":memory:"`` for a throwaway database)."""

    def __init__(self, path: str | Path, synchronous: str = DEFAULT_SYNCHRONOUS) -> None:
        if synchronous not in SYNCHRONOUS_MODES:
            raise ConfigError(
                f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}"
            )
        self.path = str(path)
        self.synchronous = synchronous
        self.corrupt_rows = 0
        self._lock = threading.Lock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite store {self.path!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("store is closed")
        return self._conn

    def append_path(self, path: RunPath) -> None:
        """Insert and commit one path (durable on return)."""
        text = encode_path(path)
        with self._lock:
            try:
                self._db().execute(
                    "INSERT INTO paths (tenant, app, json, created_at) VALUES (?, ?, ?, ?)",
                    (path.tenant, path.app, text, time.time()),
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot append path: {exc}") from exc

    def append_paths(self, paths: Sequence[RunPath]) -> None:
        """Insert several paths in one transaction: one fsync, all or none (durable on return)."""
        now = time.time()
        texts = [encode_path(p) for p in paths]  # StoreError on anything but a RunPath
        rows = [(p.tenant, p.app, text, now) for p, text in zip(paths, texts, strict=True)]
        if not rows:
            return
        with self._lock:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")
                start = 0
                for size in insert_chunks(len(rows)):
                    chunk = rows[start : start + size]
                    db.execute(_insert_rows_sql(size), [v for row in chunk for v in row])
                    start += size
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise StoreError(f"cannot append paths: {exc}") from exc

    def load_paths(self) -> Iterator[RunPath]:
        """Every stored path in insertion order; corrupt rows are skipped and counted."""
        last_id = 0
        while True:
            with self._lock:
                try:
                    rows = (
                        self._db()
                        .execute(
                            "SELECT id, json FROM paths WHERE id > ? ORDER BY id LIMIT ?",
                            (last_id, _BATCH),
                        )
                        .fetchall()
                    )
                except sqlite3.Error as exc:
                    raise StoreError(f"cannot read paths: {exc}") from exc
            if not rows:
                return
            for row_id, raw in rows:
                last_id = row_id
                path = decode_path(raw, f"sqlite row {row_id}")
                if path is None:
                    self.corrupt_rows += 1
                else:
                    yield path

    def put_json(self, namespace: str, key: str, value: dict[str, Any]) -> None:
        """Upsert a JSON document."""
        text = encode_value(namespace, key, value)
        with self._lock:
            try:
                self._db().execute(
                    "INSERT INTO kv (namespace, key, json, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(namespace, key) DO UPDATE SET json=excluded.json, "
                    "updated_at=excluded.updated_at",
                    (namespace, key, text, time.time()),
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write {namespace}/{key}: {exc}") from exc

    def get_json(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The document under (namespace, key), or None."""
        with self._lock:
            try:
                row = (
                    self._db()
                    .execute(
                        "SELECT json FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
                    )
                    .fetchone()
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read {namespace}/{key}: {exc}") from exc
        return None if row is None else decode_value(row[0], f"{namespace}/{key}")

    def list_keys(self, namespace: str) -> list[str]:
        """Sorted keys in ``namespace``."""
        with self._lock:
            try:
                rows = (
                    self._db()
                    .execute("SELECT key FROM kv WHERE namespace = ? ORDER BY key", (namespace,))
                    .fetchall()
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot list {namespace}: {exc}") from exc
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
