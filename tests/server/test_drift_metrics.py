"""A real server learns an app whose service time changes: /metrics counts the detected change
(``hermes_graph_changes_total{app,node}``), the graph export says when it began and the
dashboard's graph view marks the node."""

from __future__ import annotations

import asyncio

import aiohttp

from .conftest import StartServer


async def _run(http: aiohttp.ClientSession, url: str, service_s: float) -> None:
    async with http.post(f"{url}/v1/runs", json={"app": "shift"}) as resp:
        assert resp.status == 201
        rid = (await resp.json())["run_id"]
    stage = {"node": "gen", "kind": "llm", "calls": [{"service_s": service_s}]}
    body = {"path": {"app": "shift", "stages": [stage]}}
    async with http.post(f"{url}/v1/runs/{rid}/end", json=body) as resp:
        assert resp.status == 200


def _changes(text: str) -> float:
    for line in text.splitlines():
        if line.startswith('hermes_graph_changes_total{app="shift",node="gen"}'):
            return float(line.split()[-1])
    return 0.0


async def test_metrics_and_export_show_a_detected_change(
    serve: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await serve()
    for i in range(120):  # ~1 s per call (distinct values), then 3x slower
        await _run(http, server.url, 1.0 + (i * 0.618) % 0.5)
    async with http.get(f"{server.url}/metrics") as resp:
        assert _changes(await resp.text()) == 0.0
    for i in range(60):
        await _run(http, server.url, 3.0 + (i * 0.618) % 0.5)
    changes = 0.0
    for _ in range(100):  # the learner folds stored paths in the background
        async with http.get(f"{server.url}/metrics") as resp:
            changes = _changes(await resp.text())
        if changes:
            break
        await asyncio.sleep(0.05)
    assert changes == 1.0
    async with http.get(f"{server.url}/v1/apps/shift/graph") as resp:
        graph = await resp.json()
    (node,) = graph["nodes"]
    assert node["changes"] == 1 and "changed_at" in node
    async with http.get(f"{server.url}/v1/ui/apps/shift/graph.svg") as resp:
        assert resp.status == 200
        svg = await resp.text()
    assert svg.count('class="changed"') == 2 and "1 change(s) detected" in svg
