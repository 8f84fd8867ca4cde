"""Persistence of completed paths and small documents: SQLite (default), memory, Redis.

``open_store(url)`` accepts ``sqlite:///abs/path.db``, ``sqlite:///~/.hermes/hermes.db``,
``sqlite://:memory:`` (option ``?synchronous=normal|full``: :mod:`hermes_sdk.store.sqlite`), a
plain file path, ``memory://`` and ``redis://host:port/db`` (``rediss://`` too).
:func:`default_store_url` is ``$HERMES_STORE`` or the embedded default.
"""

from __future__ import annotations

import os
from pathlib import Path

from hermes_sdk.errors import ConfigError
from hermes_sdk.store.base import Store
from hermes_sdk.store.memory import MemoryStore
from hermes_sdk.store.sqlite import SQLiteStore, split_sqlite_url

DEFAULT_STORE_URL = "sqlite:///~/.hermes/hermes.db"


def default_store_url() -> str:
    """``$HERMES_STORE`` if set, else ``sqlite:///~/.hermes/hermes.db``."""
    return os.environ.get("HERMES_STORE") or DEFAULT_STORE_URL


def sqlite_path(url: str) -> str:
    """File path of a ``sqlite://`` URL (``~`` expanded; ``:memory:`` kept)."""
    rest = url[len("sqlite://") :]
    if rest in (":memory:", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/"):
        raise ConfigError(f"SQLite URL must look like sqlite:///path/to.db, got {url!r}")
    rest = rest[1:] if rest.startswith("/~") else rest
    rest = "/" + rest.lstrip("/") if rest.startswith("//") else rest
    if not rest or rest == "/":
        raise ConfigError(f"SQLite URL has no file path: {url!r}")
    return str(Path(rest).expanduser())


def open_store(url: str | None = None) -> Store:
    """Open the store at ``url`` (default: :func:`default_store_url`); ConfigError if malformed."""
    url = default_store_url() if url is None else url
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"store URL must be a non-empty string, got {url!r}")
    url = url.strip()
    if url.startswith("sqlite://"):
        base, synchronous = split_sqlite_url(url)
        return SQLiteStore(sqlite_path(base), synchronous)
    if url in ("memory://", "memory:"):
        return MemoryStore()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from hermes_sdk.store.redis import RedisStore

        return RedisStore(url)
    if "://" not in url:
        return SQLiteStore(str(Path(url).expanduser()))
    raise ConfigError(f"unknown store URL scheme in {url!r} (use sqlite://, memory:// or redis://)")


__all__ = [
    "DEFAULT_STORE_URL",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "default_store_url",
    "open_store",
]
