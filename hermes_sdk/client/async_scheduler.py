"""Async scheduler client (aiohttp): admission slots with lease keep-alive, runs, events, reads.

Fails open: if the scheduler is down, slow to connect (default 50 ms), or answers garbage,
``acquire``/``slot()`` give ``None`` at once so the unit runs anyway; the circuit breaker then
skips calls for a while and logs one warning per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import msgspec

from hermes_sdk.client.breaker import CircuitBreaker
from hermes_sdk.client.control_api import (
    DEFAULT_ACQUIRE_POLL_S,
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_REQUEST_TIMEOUT_S,
    Grant,
    decode_answer,
    parse_grant,
    raise_for_error,
)
from hermes_sdk.errors import InvalidRequest, SchedulerUnavailable
from hermes_sdk.graph.records import RunPath
from hermes_sdk.wire.codec import convert, encode, event_batch
from hermes_sdk.wire.messages import Acquire, EndRun, StartRun

_JSON_BODY = {"Content-Type": "application/json"}


class SchedulerClient:
    """Async client of one scheduler (``url`` like ``http://127.0.0.1:8700``)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        max_wait_s: float | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidRequest(f"scheduler url must be http(s)://..., got {url!r}")
        self.url = url.rstrip("/")
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_wait_s = max_wait_s
        """Give up waiting for a slot after this long and run anyway (None: wait)."""
        self.breaker = breaker or CircuitBreaker(name=f"scheduler at {self.url}")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session: aiohttp.ClientSession | None = None
        self._keepers: dict[str, asyncio.Task[None]] = {}

    async def __aenter__(self) -> SchedulerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        for task in self._keepers.values():
            task.cancel()
        self._keepers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
            )
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        body: msgspec.Struct | None = None,
        *,
        read_timeout_s: float | None = None,
    ) -> tuple[int, Any]:
        """(status, parsed JSON or text); SchedulerUnavailable on network errors or 5xx."""
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.connect_timeout_s,
            sock_read=read_timeout_s or self.request_timeout_s,
        )
        try:
            data = None if body is None else encode(body)
            async with self._http().request(
                method,
                self.url + path,
                data=data,
                headers=None if data is None else _JSON_BODY,
                timeout=timeout,
            ) as resp:
                text = await resp.text()
                status = resp.status
                ctype = resp.content_type
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise SchedulerUnavailable(f"{method} {path}: {exc!r}") from None
        return decode_answer(method, path, status, ctype, text)

    # --- admission -------------------------------------------------------------------------

    async def acquire(
        self,
        backend: str,
        *,
        run_id: str | None = None,
        app: str | None = None,
        deadline_s: float | None = None,
    ) -> Grant | None:
        """Wait for a slot on ``backend``; None means run anyway (scheduler unavailable)."""
        if not self.breaker.allow():
            return None
        wanted = Acquire(run_id=run_id, app=app, deadline_s=deadline_s)
        loop = asyncio.get_running_loop()
        give_up_at = math.inf if self.max_wait_s is None else loop.time() + self.max_wait_s
        path = f"/v1/backends/{backend}/acquire"
        while True:
            left_s = give_up_at - loop.time()
            if left_s <= 0:
                return None
            poll_s = min(DEFAULT_ACQUIRE_POLL_S, left_s)
            body = msgspec.structs.replace(wanted, timeout_s=poll_s)
            try:
                status, data = await self._call("POST", path, body, read_timeout_s=poll_s + 5.0)
            except SchedulerUnavailable as exc:
                self.breaker.failure(str(exc))
                return None
            if status == 429:
                self.breaker.success()
                continue
            grant = parse_grant(data) if status == 200 else None
            if grant is None:
                self.breaker.failure(f"acquire on {backend!r} answered HTTP {status}: {data!r}")
                return None
            self.breaker.success()
            if grant.lease_s is not None:
                self._keepers[grant.lease_id] = asyncio.ensure_future(self._keep_alive(grant))
            return grant

    async def _keep_alive(self, grant: Grant) -> None:
        """Renew the lease at half its lifetime while it is held (calls longer than lease_s)."""
        assert grant.lease_s is not None
        while True:
            await asyncio.sleep(grant.lease_s / 2)
            try:
                status, _ = await self._call("POST", f"/v1/leases/{grant.lease_id}/renew")
            except SchedulerUnavailable:
                continue
            if status != 200:
                return

    async def release(self, grant: Grant | None) -> None:
        """Give a slot back (best effort: an unreleased lease is reclaimed by the server)."""
        if grant is None:
            return
        keeper = self._keepers.pop(grant.lease_id, None)
        if keeper is not None:
            keeper.cancel()
        try:
            await self._call("POST", f"/v1/leases/{grant.lease_id}/release")
        except SchedulerUnavailable as exc:
            self.breaker.failure(str(exc))

    @contextlib.asynccontextmanager
    async def slot(
        self,
        backend: str,
        *,
        run_id: str | None = None,
        app: str | None = None,
        deadline_s: float | None = None,
    ) -> AsyncIterator[Grant | None]:
        """``async with client.slot("gpu", run_id=...)``: hold a slot for the body (fail-open)."""
        grant = await self.acquire(backend, run_id=run_id, app=app, deadline_s=deadline_s)
        try:
            yield grant
        finally:
            await self.release(grant)

    # --- runs, events, reads ---------------------------------------------------------------

    async def send_events(self, events: list[dict[str, object]], dropped: int = 0) -> int:
        """POST a batch; returns how many were accepted (SchedulerUnavailable if down)."""
        body = event_batch(events, dropped)
        data = await self._json("POST", "/v1/events", body)
        return int(data.get("accepted", 0))

    async def start_run(
        self, app: str, *, run_id: str | None = None, deadline_s: float | None = None
    ) -> str:
        """Open a run; returns its id."""
        body = StartRun(app=app, run_id=run_id, deadline_s=deadline_s)
        return str((await self._json("POST", "/v1/runs", body))["run_id"])

    async def end_run(
        self, run_id: str, *, path: Mapping[str, object] | None = None, failed: bool = False
    ) -> None:
        """Close a run, with its path (``path_to_dict``) so the app's graph learns it."""
        run_path = None if path is None else convert(dict(path), RunPath)
        await self._json("POST", f"/v1/runs/{run_id}/end", EndRun(failed=failed, path=run_path))

    async def hints(self, run_id: str) -> dict[str, Any]:
        """The server's rank and remaining-demand prediction for a run."""
        return await self._json("GET", f"/v1/runs/{run_id}/hints")

    async def apps(self) -> list[dict[str, Any]]:
        """This tenant's apps."""
        return list((await self._json("GET", "/v1/apps"))["apps"])

    async def backends(self) -> list[dict[str, Any]]:
        """Configured backends with slots in use and queue depth."""
        return list((await self._json("GET", "/v1/backends"))["backends"])

    async def graph(self, app: str, *, format: str = "json") -> str:
        """An app's graph as JSON, DOT or Mermaid text."""
        name = urllib.parse.quote(app, safe="")  # subgraph apps are named "<app>/<node>"
        fmt = urllib.parse.quote(format, safe="")
        status, data = await self._call("GET", f"/v1/apps/{name}/graph?format={fmt}")
        raise_for_error(status, data)
        return data if isinstance(data, str) else json.dumps(data)

    async def _json(
        self, method: str, path: str, body: msgspec.Struct | None = None
    ) -> dict[str, Any]:
        status, data = await self._call(method, path, body)
        raise_for_error(status, data)
        if not isinstance(data, dict):
            raise SchedulerUnavailable(f"{method} {path}: expected a JSON object")
        return data


__all__ = ["SchedulerClient"]
