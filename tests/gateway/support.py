"""Helpers for gateway tests: a running gateway handle, engine records, graph teaching."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from hermes_sdk.graph.records import Call, RunPath, Stage
from hermes_sdk.server import SCHEDULER, Scheduler
from hermes_sdk.server.gateway import GATEWAY, Gateway

FAST_ENGINE = {"step_base_s": 0.001, "step_per_request_s": 0.0, "prefill_per_token_s": 0.0}


@dataclass
class Gw:
    """A running server with the gateway: base URL (``.../v1``) and its internals."""

    url: str
    app: web.Application

    @property
    def scheduler(self) -> Scheduler:
        return self.app[SCHEDULER]

    @property
    def gateway(self) -> Gateway:
        return self.app[GATEWAY]

    async def wait_inflight(self, upstream: str, inflight: int, depth: int = 0) -> None:
        """Wait until ``upstream``'s queue has exactly these counts (bounded wait)."""
        q = self.scheduler.queues[upstream]
        for _ in range(2000):
            if q.inflight == inflight and q.depth == depth:
                return
            await asyncio.sleep(0.002)
        raise AssertionError(f"{upstream}: inflight={q.inflight} depth={q.depth}")


async def engine_records(url: str) -> list[dict[str, object]]:
    """What a sim engine (base URL ``.../v1``) saw."""
    async with (
        aiohttp.ClientSession() as s,
        s.get(url.removesuffix("/v1") + "/debug/requests") as r,
    ):
        records: list[dict[str, object]] = (await r.json())["requests"]
    return records


def learn(scheduler: Scheduler, app: str, service_s: float, runs: int = 20) -> None:
    """Teach the scheduler's registry that ``app`` runs one LLM stage of ``service_s``."""
    for i in range(runs):
        call = Call(service_s=service_s * (1 + 0.01 * (i % 5)), input_tokens=10, output_tokens=5)
        stage = Stage(node="answer", calls=(call,), kind="llm", backend="up")
        scheduler.registry.observe(RunPath(app=app, stages=(stage,), run_id=f"{app}-{i}"))


StartEngine = Callable[..., Awaitable[str]]
StartGateway = Callable[..., Awaitable[Gw]]
