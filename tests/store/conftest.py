"""Store fixtures: one factory per backend (``redis_url`` comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from hermes_sdk import Store, open_store

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "memory", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Name of the backend under test."""
    name = str(request.param)
    if name == "redis":
        url = request.getfixturevalue("redis_url")
        redis.Redis.from_url(url).flushdb()
    return name


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL whose store starts empty; reopening it (except memory://) sees the same data."""
    if backend == "sqlite":
        return f"sqlite://{tmp_path}/hermes.db"
    if backend == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()
