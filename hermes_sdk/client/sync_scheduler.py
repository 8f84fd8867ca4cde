"""Blocking scheduler client: :class:`SchedulerClient` driven on a background event-loop thread.

``SyncSchedulerClient`` mirrors the async client name for name; every call runs the async one
on a daemon loop thread (restarted after a fork) and shares its circuit breaker, so it fails
open the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, TypeVar

from hermes_sdk.client.async_scheduler import SchedulerClient
from hermes_sdk.client.breaker import CircuitBreaker
from hermes_sdk.client.control_api import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_REQUEST_TIMEOUT_S,
    Grant,
)

T = TypeVar("T")


class SyncSchedulerClient:
    """Blocking mirror of :class:`SchedulerClient`, driven by a background event-loop thread."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        max_wait_s: float | None = None,
    ) -> None:
        self._args = (url, api_key, connect_timeout_s, request_timeout_s, max_wait_s)
        self.breaker = CircuitBreaker(name=f"scheduler at {url.rstrip('/')}")
        self._lock = threading.Lock()
        self._pid = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: SchedulerClient | None = None
        SchedulerClient(url)  # validate the URL now

    def _ensure(self) -> tuple[asyncio.AbstractEventLoop, SchedulerClient]:
        with self._lock:
            if self._loop is None or self._client is None or self._pid != os.getpid():
                url, key, connect_s, request_s, max_wait_s = self._args
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="hermes-scheduler-client", daemon=True
                ).start()
                self._loop, self._pid = loop, os.getpid()
                self._client = SchedulerClient(
                    url,
                    key,
                    connect_timeout_s=connect_s,
                    request_timeout_s=request_s,
                    max_wait_s=max_wait_s,
                    breaker=self.breaker,
                )
            return self._loop, self._client

    def _run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        loop, _ = self._ensure()
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return fut.result(timeout_s)
        except BaseException:
            fut.cancel()
            raise

    @property
    def client(self) -> SchedulerClient:
        """The async client behind this facade (lives on the background loop)."""
        return self._ensure()[1]

    async def acquire_async(self, backend: str, **kwargs: Any) -> Grant | None:
        """Acquire from any event loop (runs on the background loop, awaited here)."""
        loop, client = self._ensure()
        fut = asyncio.run_coroutine_threadsafe(client.acquire(backend, **kwargs), loop)
        return await asyncio.wrap_future(fut)

    async def release_async(self, grant: Grant | None) -> None:
        """Release from any event loop."""
        if grant is None:
            return
        loop, client = self._ensure()
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(client.release(grant), loop))

    def acquire(
        self,
        backend: str,
        *,
        run_id: str | None = None,
        app: str | None = None,
        deadline_s: float | None = None,
    ) -> Grant | None:
        """Block until a slot is granted; None means run anyway."""
        client = self.client
        return self._run(client.acquire(backend, run_id=run_id, app=app, deadline_s=deadline_s))

    def release(self, grant: Grant | None) -> None:
        """Give a slot back (waits at most the request timeout)."""
        if grant is None:
            return
        with contextlib.suppress(Exception):
            self._run(self.client.release(grant), self.client.request_timeout_s + 1.0)

    @contextlib.contextmanager
    def slot(
        self,
        backend: str,
        *,
        run_id: str | None = None,
        app: str | None = None,
        deadline_s: float | None = None,
    ) -> Iterator[Grant | None]:
        """``with sync.slot("gpu", run_id=...)``: hold a slot for the body (fail-open)."""
        grant = self.acquire(backend, run_id=run_id, app=app, deadline_s=deadline_s)
        try:
            yield grant
        finally:
            self.release(grant)

    def send_events(self, events: list[dict[str, object]], dropped: int = 0) -> int:
        """POST a batch of events; raises SchedulerUnavailable or InvalidRequest."""
        return self._run(self.client.send_events(events, dropped))

    def start_run(
        self, app: str, *, run_id: str | None = None, deadline_s: float | None = None
    ) -> str:
        """Open a run; returns its id."""
        return self._run(self.client.start_run(app, run_id=run_id, deadline_s=deadline_s))

    def end_run(
        self, run_id: str, *, path: Mapping[str, object] | None = None, failed: bool = False
    ) -> None:
        """Close a run with its path."""
        self._run(self.client.end_run(run_id, path=path, failed=failed))

    def hints(self, run_id: str) -> dict[str, Any]:
        """Rank and remaining-demand prediction of a run."""
        return self._run(self.client.hints(run_id))

    def apps(self) -> list[dict[str, Any]]:
        """This tenant's apps."""
        return self._run(self.client.apps())

    def backends(self) -> list[dict[str, Any]]:
        """Configured backends."""
        return self._run(self.client.backends())

    def graph(self, app: str, *, format: str = "json") -> str:
        """An app's graph text."""
        return self._run(self.client.graph(app, format=format))

    def close(self) -> None:
        """Close the session and stop the background loop."""
        with self._lock:
            loop, client = self._loop, self._client
            self._loop = self._client = None
        if loop is None or client is None:
            return
        if self._pid == os.getpid():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(client.close(), loop).result(2.0)
            loop.call_soon_threadsafe(loop.stop)


__all__ = ["SyncSchedulerClient"]
