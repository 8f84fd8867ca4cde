"""The dashboard's per-app completion table, rendered by headless Chromium from a live server.

Runs of two tenants go through a loopback server on a fake clock, so each app's completion
times are known; the page (loaded with acme's key) must show acme's apps with the endpoint's
numbers as the page formats them, and nothing of the rival's. Without Chromium the page's
markup and the endpoint it reads are still checked.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from hermes_sdk.server import create_app
from tests.ui.feed import (
    ACME_KEY,
    RIVAL_KEY,
    T0,
    Clock,
    LoopbackServer,
    config,
    post_events,
    serve_app,
)
from tests.ui.test_browser import CHROMIUM, _hidden, chromium

RIVAL_CLASS: Final = "rival-secret-class"


@pytest.fixture
async def server(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[LoopbackServer]:
    """acme: rag runs of 1, 2, 3, 4 and 120 s plus a failed one, a code run of 7.25 s; the
    rival: one run of its own app."""
    clock = Clock()
    srv = await serve_app(create_app(config(tmp_path), clock=clock))

    async def send(key: str, *events: dict[str, Any]) -> None:
        await post_events(http, srv.url, key, list(events))

    def start(run_id: str, app: str) -> dict[str, Any]:
        return {"type": "run_start", "run_id": run_id, "app": app}

    def end(run_id: str, failed: bool = False) -> dict[str, Any]:
        return {"type": "run_end", "run_id": run_id, "failed": failed}

    try:
        await send(ACME_KEY, *(start(f"rag-{i}", "rag") for i in range(6)), start("c", "code"))
        await send(RIVAL_KEY, start("r", RIVAL_CLASS))
        for i, at in enumerate((1.0, 2.0, 3.0, 4.0)):
            clock.now_s = T0 + at
            await send(ACME_KEY, end(f"rag-{i}"))
        await send(ACME_KEY, end("rag-5", failed=True))
        clock.now_s = T0 + 7.25
        await send(ACME_KEY, end("c"))
        await send(RIVAL_KEY, end("r"))
        clock.now_s = T0 + 120.0
        await send(ACME_KEY, end("rag-4"))
        yield srv
    finally:
        await srv.close()


async def test_the_endpoint_feeding_the_table(
    server: LoopbackServer, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {ACME_KEY}"}
    async with http.get(f"{server.url}/v1/ui/app_classes", headers=headers) as resp:
        body = await resp.json()
    assert [(c["app"], c["runs"], c["failed"]) for c in body["classes"]] == [
        ("code", 1, 0),
        ("rag", 5, 1),
    ]
    rag = body["classes"][1]
    assert (rag["mean_s"], rag["max_s"]) == (26.0, 120.0)  # (1 + 2 + 3 + 4 + 120) / 5
    assert rag["p95_s"] == pytest.approx(4.0 + 0.8 * 116.0)  # np.percentile, linear
    async with http.get(f"{server.url}/ui") as resp:
        page = await resp.text()
    assert '<table id="app-classes" hidden>' in page and 'id="classes-window"' in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium missing (scripts/test installs it)")
@pytest.mark.slow
async def test_the_page_shows_each_apps_completion_times(
    server: LoopbackServer, tmp_path: Path
) -> None:
    dom = (await chromium(tmp_path / "p", "--dump-dom", f"{server.url}/ui?key={ACME_KEY}")).decode()
    assert not _hidden(dom, "app-classes") and _hidden(dom, "app-classes-empty")
    table = re.search(r'<table id="app-classes".*?</table>', dom, re.S)
    assert table is not None
    rows = re.findall(r'<tr data-app-class="([^"]+)"[^>]*>(.*?)</tr>', table.group(0), re.S)
    cells = {app: re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", html) for app, html in rows}
    # app, completed, failed, mean, p95 (4 + 0.8 * 116 = 96.8), max: 3 significant digits
    assert cells == {
        "code": ["code", "1", "0", "7.25", "7.25", "7.25"],
        "rag": ["rag", "5", "1", "26", "96.8", "120"],
    }
    assert RIVAL_CLASS not in dom and ACME_KEY not in dom
