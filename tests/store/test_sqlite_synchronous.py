"""The SQLite store URL's ``synchronous`` option: the PRAGMA the connection runs with, the
default, refusals, and that both settings store the same rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hermes_sdk.errors import ConfigError
from hermes_sdk.graph.records import Call, RunPath, Stage
from hermes_sdk.store import open_store
from hermes_sdk.store.sqlite import DEFAULT_SYNCHRONOUS, SQLiteStore, split_sqlite_url

_PRAGMA = {"off": 0, "normal": 1, "full": 2}


def _pragma(store: object) -> int:
    assert isinstance(store, SQLiteStore)
    return int(store._db().execute("PRAGMA synchronous").fetchone()[0])


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [
        ("", DEFAULT_SYNCHRONOUS),
        ("?synchronous=normal", "normal"),
        ("?synchronous=NORMAL", "normal"),
        ("?synchronous=full", "full"),
    ],
)
def test_url_option_sets_the_pragma(tmp_path: Path, suffix: str, mode: str) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db{suffix}")
    try:
        assert _pragma(store) == _PRAGMA[mode]
        assert isinstance(store, SQLiteStore) and store.synchronous == mode
        assert store.path == f"{tmp_path}/s.db"  # the query is not part of the file name
    finally:
        store.close()
    assert not list(tmp_path.glob("*synchronous*"))


def test_default_is_full() -> None:
    assert DEFAULT_SYNCHRONOUS == "full"
    assert split_sqlite_url("sqlite:///~/.hermes/hermes.db") == (
        "sqlite:///~/.hermes/hermes.db",
        "full",
    )


@pytest.mark.parametrize(
    "suffix", ["?synchronous=off", "?synchronous=extra", "?sync=normal", "?synchronous", "?x=1"]
)
def test_other_options_are_refused(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(ConfigError):
        open_store(f"sqlite:///{tmp_path}/s.db{suffix}")
    assert not list(tmp_path.iterdir())  # refused before any file is created
    with pytest.raises(ConfigError):
        SQLiteStore(tmp_path / "t.db", synchronous=suffix)


def test_both_settings_store_the_same_rows(tmp_path: Path) -> None:
    paths = [
        RunPath(
            f"app{i % 3}",
            (Stage("x", (Call(0.1 * (i + 1), input_tokens=i, output_tokens=3),), "llm", "m"),),
            run_id=f"r{i}",
            started_at=1000.0 + i,
        )
        for i in range(300)
    ]
    rows = {}
    for mode in ("full", "normal"):
        store = open_store(f"sqlite:///{tmp_path}/{mode}.db?synchronous={mode}")
        store.append_paths(paths[:250])
        store.append_path(paths[250])
        store.append_paths(paths[251:])
        store.close()
        with sqlite3.connect(tmp_path / f"{mode}.db") as conn:
            rows[mode] = conn.execute("SELECT tenant, app, json FROM paths ORDER BY id").fetchall()
    assert rows["full"] == rows["normal"] and len(rows["full"]) == 300
