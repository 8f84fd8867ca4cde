"""Fixtures: a fed loopback scheduler with two tenants, and an HTTP session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.ui.feed import LoopbackServer, config, feed, start


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", "ignore::aiohttp.web_exceptions.NotAppKeyWarning")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[LoopbackServer]:
    """A scheduler fed with simulator runs of acme's apps and of one rival app."""
    srv = await start(config(tmp_path))
    try:
        await feed(http, srv.url)
        yield srv
    finally:
        await srv.close()
