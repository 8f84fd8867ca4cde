"""Headless Chromium loads /ui of a real server fed with simulator runs by two tenants.

The page polls ``/v1/ui/state`` with the key passed once as ``?key=``; after Chromium's virtual
time budget the rendered DOM must show acme's graphs, live queues and running apps, and nothing
of the rival tenant. The screenshot goes to the test's ``tmp_path``, so runs leave the checkout
clean. Set ``HERMES_UPDATE_SCREENSHOTS=1`` to also copy it to ``benchmarks/results/ui.png``
(the committed image for review): ``HERMES_UPDATE_SCREENSHOTS=1 pytest tests/ui/test_browser.py``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Final

import aiohttp
import pytest

from hermes_sdk.prewarm.planner import PrewarmConfig
from hermes_sdk.server import create_app
from hermes_sdk.server.admission import Lease
from hermes_sdk.server.prewarm_routes import PrewarmServerConfig, setup_prewarm
from hermes_sdk.server.scheduler import SCHEDULER
from tests.ui.feed import (
    ACME_APPS,
    ACME_KEY,
    RIVAL_APP,
    RIVAL_KEY,
    RIVAL_RUN,
    LoopbackServer,
    config,
    feed,
    serve_app,
)

CHROMIUM: Final = next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
)
SCREENSHOT: Final = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "ui.png"
UPDATE_SCREENSHOTS: Final = os.environ.get("HERMES_UPDATE_SCREENSHOTS", "") not in ("", "0")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium missing (scripts/test installs it)"),
    pytest.mark.slow,
]


async def chromium(profile: Path, *args: str) -> bytes:
    """Run headless Chromium (off the event loop, so the server keeps answering)."""
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=6000",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


def _hidden(dom: str, element_id: str) -> bool:
    tag = re.search(rf'<[a-z]+ id="{element_id}"[^>]*>', dom)
    assert tag is not None, element_id
    return " hidden" in tag.group(0)


async def test_dashboard_renders_graphs_queues_and_runs_of_its_tenant_only(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    app = create_app(config(tmp_path))
    setup_prewarm(app, PrewarmServerConfig(("container",), planner=PrewarmConfig()))
    server = await serve_app(app)
    try:
        await feed(http, server.url)
        await _check_dashboard(server, tmp_path)
    finally:
        await server.close()


async def _check_dashboard(server: LoopbackServer, tmp_path: Path) -> None:
    sched = server.app[SCHEDULER]
    held = [await sched.acquire("llm", tenant="acme", run_id=f"live-{i}") for i in range(2)]
    waiters = [
        asyncio.create_task(sched.acquire("llm", tenant="acme", run_id="live-2")),
        asyncio.create_task(sched.acquire("llm", tenant="rival", run_id=RIVAL_RUN)),
    ]
    try:
        dom = (
            await chromium(tmp_path / "p1", "--dump-dom", f"{server.url}/ui?key={ACME_KEY}")
        ).decode()
        png = tmp_path / "ui.png"
        await chromium(
            tmp_path / "p2",
            f"--screenshot={png}",
            "--window-size=1280,900",
            f"{server.url}/ui?key={ACME_KEY}",
        )
    finally:
        for task in waiters:
            task.cancel()
        for lease in held:
            sched.release(lease.lease_id)
        granted: list[Lease] = [
            t.result() for t in waiters if t.done() and not t.cancelled() and not t.exception()
        ]
        for lease in granted:
            sched.release(lease.lease_id)

    assert not _hidden(dom, "dashboard") and _hidden(dom, "key-form")
    assert '<strong id="policy">gittins+fair</strong>' in dom  # two tenants: fair sharing
    assert '<strong id="tenant">acme</strong>' in dom
    # Graphs: one article with a server-drawn SVG per app, nodes and edge probabilities drawn.
    for app in ACME_APPS:
        article = re.search(rf'<article class="app" data-app="{app}".*?</article>', dom, re.S)
        assert article is not None, app
        assert 'class="pdgraph"' in article.group(0) and 'role="img"' in article.group(0)
        assert 'data-node="START"' in article.group(0) and 'class="edge-p"' in article.group(0)
    assert dom.count('class="pdgraph"') == len(ACME_APPS)
    # Queues: the llm backend shows both slots busy and two waiting requests, one of them ours.
    llm = re.search(r'<tr data-backend="llm"[^>]*>.*?</tr>', dom, re.S)
    assert llm is not None
    assert 'data-inflight="2"' in llm.group(0) and 'data-waiting="2"' in llm.group(0)
    assert "<meter" in llm.group(0)
    # Running apps, most remaining demand first; prewarm state of the container backend.
    runs = re.findall(r'<tr data-run="(live-\d)"', dom)
    assert sorted(runs) == ["live-0", "live-1", "live-2", "live-3"]
    assert _hidden(dom, "prewarm-off") and not _hidden(dom, "prewarm")
    assert re.search(r'<table id="prewarm".*<tr data-backend="container">', dom, re.S)
    # Another tenant's apps and runs never reach the page, nor does the key.
    for secret in (RIVAL_APP, RIVAL_RUN, "rival", RIVAL_KEY, ACME_KEY):
        assert secret not in dom, secret
    # Accessible structure: every table has a caption and column headers with scope.
    assert dom.count("<caption>") == dom.count("<table") >= 3
    assert 'aria-live="polite"' in dom

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    if UPDATE_SCREENSHOTS:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, SCREENSHOT)


async def test_without_a_key_the_page_asks_for_one_and_shows_no_data(
    server: LoopbackServer, tmp_path: Path
) -> None:
    dom = (await chromium(tmp_path / "p", "--dump-dom", f"{server.url}/ui")).decode()
    assert _hidden(dom, "dashboard") and not _hidden(dom, "key-form")
    assert 'type="password"' in dom
    for secret in (*ACME_APPS, RIVAL_APP, "pdgraph"):
        assert secret not in dom, secret


async def test_a_wrong_key_is_refused(server: LoopbackServer, tmp_path: Path) -> None:
    dom = (await chromium(tmp_path / "p", "--dump-dom", f"{server.url}/ui?key=nope")).decode()
    assert _hidden(dom, "dashboard") and not _hidden(dom, "key-form")
    assert "That key was not accepted." in dom
    assert ACME_APPS[0] not in dom
