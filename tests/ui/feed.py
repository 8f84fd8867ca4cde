"""A loopback scheduler for the dashboard tests, fed with simulator paths by two tenants."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final, cast

import aiohttp
import numpy as np
from aiohttp import web

from hermes_sdk.graph.records import path_to_dict
from hermes_sdk.server import ServerConfig, create_app
from hermes_sdk.server.config import BackendConfig
from hermes_sdk.sim.workloads.paper import paper_apps
from hermes_sdk.sim.workloads.paths import sample_path
from hermes_sdk.sim.workloads.spec import Workload, llm_backend, pool_backend

ACME_KEY: Final = "key-acme-0123"
RIVAL_KEY: Final = "key-rival-4567"
ACME_APPS: Final = ("code_feedback", "react_fever", "langchain_mapreduce")
RIVAL_APP: Final = "rival-secret-app"
RIVAL_RUN: Final = "rival-secret-run"
RUNS_PER_APP: Final = 30
T0: Final = 1_800_000_000.0
"""A fake clock's start (unix seconds)."""


class LoopbackServer:
    """``create_app`` on 127.0.0.1 with a free port (stopped with :meth:`close`)."""

    def __init__(self, app: web.Application, runner: web.AppRunner, url: str) -> None:
        self.app = app
        self.runner = runner
        self.url = url

    async def close(self) -> None:
        await self.runner.cleanup()


async def start(config: ServerConfig) -> LoopbackServer:
    """Serve ``create_app(config)``."""
    return await serve_app(create_app(config))


async def serve_app(app: web.Application) -> LoopbackServer:
    """Serve an app built by ``create_app`` (and maybe extended) on a free loopback port."""
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return LoopbackServer(app, runner, f"http://127.0.0.1:{port}")


def config(tmp_path: Path, **fields: object) -> ServerConfig:
    base = ServerConfig(
        port=0,
        store_url=f"sqlite:///{tmp_path}/ui.db",
        backends={"llm": BackendConfig(max_inflight=2), "container": BackendConfig(4)},
        **fields,  # type: ignore[arg-type]
    )
    return base.with_api_keys({ACME_KEY: "acme", RIVAL_KEY: "rival"})


async def post_events(
    http: aiohttp.ClientSession, url: str, key: str, events: list[dict[str, object]]
) -> dict[str, object]:
    async with http.post(
        f"{url}/v1/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {key}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, object] = await resp.json()
        return body


def paper_workload() -> Workload:
    """The paper's app programs and backends (no arrival calibration: only paths are drawn)."""
    backends = {"llm": llm_backend(4), "search": pool_backend(2), "container": pool_backend(4)}
    return cast(Workload, {"apps": paper_apps(), "backends": {**backends, "dnn": pool_backend(2)}})


async def feed(http: aiohttp.ClientSession, url: str) -> None:
    """Completed simulator runs for acme's apps and one rival app, plus a few running apps."""
    workload = paper_workload()
    rng = np.random.default_rng(7)
    now = time.time()
    events: list[dict[str, object]] = []
    for app in ACME_APPS:
        for i in range(RUNS_PER_APP):
            path = sample_path(workload, app, rng, run_id=f"{app}-{i}")
            events.append({"type": "run_start", "run_id": path.run_id, "app": app, "ts": now})
            events.append(
                {
                    "type": "run_end",
                    "run_id": path.run_id,
                    "failed": False,
                    "path": path_to_dict(path),
                }
            )
    await post_events(http, url, ACME_KEY, events)
    live: list[dict[str, object]] = []
    for i, (app, node, kind) in enumerate(
        [
            ("react_fever", "thought", "llm"),
            ("code_feedback", "code_generation", "llm"),
            ("langchain_mapreduce", "generate_summary", "llm"),
            ("code_feedback", "code_execution", "container"),
        ]
    ):
        run_id = f"live-{i}"
        live.append({"type": "run_start", "run_id": run_id, "app": app, "ts": now})
        live.append(
            {
                "type": "unit_start",
                "run_id": run_id,
                "unit_id": "u1",
                "node": node,
                "kind": kind,
                "backend": kind,
                "ts": now,
            }
        )
    await post_events(http, url, ACME_KEY, live)
    rival = sample_path(workload, "react_fever", rng, run_id="r0")
    rival_doc = path_to_dict(rival)
    rival_doc["app"] = RIVAL_APP
    await post_events(
        http,
        url,
        RIVAL_KEY,
        [
            {"type": "run_start", "run_id": "r0", "app": RIVAL_APP, "ts": now},
            {"type": "run_end", "run_id": "r0", "failed": False, "path": rival_doc},
            {"type": "run_start", "run_id": RIVAL_RUN, "app": RIVAL_APP, "ts": now},
            {
                "type": "unit_start",
                "run_id": RIVAL_RUN,
                "unit_id": "u1",
                "node": "thought",
                "kind": "llm",
                "backend": "llm",
                "ts": now,
            },
        ],
    )


class Clock:
    """The scheduler's clock, moved by the test (unix seconds)."""

    def __init__(self) -> None:
        self.now_s = T0

    def __call__(self) -> float:
        return self.now_s
