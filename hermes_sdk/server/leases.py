"""Admission routes: list backends, acquire a slot (long-poll), release it.

``acquire`` waits until the backend's queue grants a slot or the server-side timeout passes
(429 with a retry hint); if the client disconnects while waiting, its place in the queue is
removed. Ranks come only from the server's view of the run; rank/priority fields in the body
are ignored.
"""

from __future__ import annotations

import asyncio
import math
import time
import traceback
import weakref
from collections.abc import Awaitable
from typing import Any, Final, cast

from aiohttp import web

from hermes_sdk.server.admission import Lease, QueueTimeout
from hermes_sdk.server.auth import TENANT
from hermes_sdk.server.backends_view import backend_fields
from hermes_sdk.server.middlewares import ApiError
from hermes_sdk.server.scheduler import SCHEDULER, Scheduler, UnknownBackend
from hermes_sdk.server.wire import read_message
from hermes_sdk.wire.messages import Acquire

routes = web.RouteTableDef()

DISCONNECT_POLL_S = 0.2
"""How often (seconds) the sweep checks whether waiting acquires' clients went away: a backstop
(``hermes serve`` runs aiohttp with ``handler_cancellation``, which cancels a gone client's
handler at once). Every 1 s instead measured no difference under 10,000 waiters (client p99,
server CPU; ``bench_server_live`` mode ``sweep_1s``), so it stays at 0.2 s."""
SWEEP_CHUNK = 256
"""Waiting acquires checked per event-loop turn by a sweep (10,000 at once block the loop)."""
HANDLERS_CANCELLED: Final = web.AppKey("hermes_handlers_cancelled", bool)
"""``app[HANDLERS_CANCELLED] = True``: the app is served with aiohttp's
``handler_cancellation`` (``hermes serve``), which cancels a gone client's handler at once, so
its waiting acquires are not swept (the sweep's passes over 10,000 waiters were ~4% of the
loop's time, in 0.25-1 ms turns)."""
SWEEP_ANYWAY = 0
"""1: sweep even where :data:`HANDLERS_CANCELLED` is set (a ``bench_server_live`` A/B mode)."""


def _lease_json(lease: Lease, lease_s: float) -> dict[str, object]:
    rank = lease.rank_s
    return {
        "lease_id": lease.lease_id,
        "backend": lease.backend,
        "rank_s": None if math.isnan(rank) or math.isinf(rank) else rank,
        "waited_s": lease.waited_s,
        "lease_s": lease_s,
    }


def drop_tracebacks(exc: BaseException) -> None:
    """Clear the finished frames of ``exc``'s tracebacks (and of its chain) and drop them.

    A timed-out acquire raises QueueTimeout while handling TimeoutError, itself raised while
    handling CancelledError; each traceback holds the frames that caught the previous one, and
    those frames hold it back: ~20 objects in reference cycles per 429 that only a full
    (generation-2) collection frees (400 a second for 10,000 runs long-polling 25 s). With the
    frames cleared, reference counting frees them as the request ends.
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        e = pending.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if e.__traceback__ is not None:
            traceback.clear_frames(e.__traceback__)  # skips the frame still running (this one)
            e.__traceback__ = None
        pending += [c for c in (e.__context__, e.__cause__) if c is not None]


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@routes.get("/v1/backends")
async def list_backends(request: web.Request) -> web.Response:
    """Every backend with its slots in use and queue depth, and what it is (``kind``: a gateway
    ``upstream`` with its url, engine and models, or an ``admission`` backend)."""
    sched = request.app[SCHEDULER]
    return web.json_response(
        {
            "backends": [
                {
                    "name": q.backend,
                    "max_inflight": q.max_inflight,
                    "inflight": q.inflight,
                    "waiting": q.depth,
                    "lease_s": q.lease_s,
                    **backend_fields(sched.config, q.backend),
                }
                for q in sched.queues.values()
            ],
            "policy": sched.policy.name,
        }
    )


class _Watch:
    """The waiting acquires of one event loop, checked for gone clients by one sweeper task
    (one wake-up per DISCONNECT_POLL_S for all of them, not one per waiter).

    ``waiting`` maps each waiting handler's own task to its request: the handler awaits the
    queue directly (no task of its own per waiter: a grant reaches the handler one event-loop
    turn sooner, and each waiting acquire holds ~5 fewer tracked objects), and the sweep
    cancels the handler's task itself, remembering it in ``swept`` so the handler can tell
    that cancellation (answer 499) from its server's (re-raise).
    """

    def __init__(self) -> None:
        self.waiting: dict[asyncio.Task[Any], web.Request] = {}
        self.swept: set[asyncio.Task[Any]] = set()
        self.sweeper: asyncio.Task[None] | None = None

    async def sweep(self) -> None:
        """Every DISCONNECT_POLL_S, a pass over the waiting acquires, SWEEP_CHUNK per loop turn
        (a backstop: with ``handler_cancellation`` aiohttp cancels a gone client's handler)."""
        while self.waiting:
            await asyncio.sleep(DISCONNECT_POLL_S)
            # one list of the tasks, not 10,000 (task, request) tuples 5 times a second: every
            # tuple is a new object the young garbage collections traverse
            tasks = list(self.waiting)
            for start in range(0, len(tasks), SWEEP_CHUNK):
                if start:
                    await asyncio.sleep(0)  # requests are served between chunks
                for task in tasks[start : start + SWEEP_CHUNK]:
                    request = self.waiting.get(task)
                    if request is not None and task not in self.swept and _gone(request):
                        self.swept.add(task)
                        task.cancel()


_WATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watch] = weakref.WeakKeyDictionary()


async def _wait_or_disconnect(request: web.Request, waiting: Awaitable[Lease]) -> Lease | None:
    """The lease ``waiting`` gives, or None if the client went away first (the sweep cancelled
    this handler; the queue removed the waiter, or released a lease granted meanwhile)."""
    if request.app.get(HANDLERS_CANCELLED, False) and not SWEEP_ANYWAY:
        return await waiting  # aiohttp cancels this handler if the client goes
    current = asyncio.current_task()
    assert current is not None  # a request handler runs in a task
    loop = asyncio.get_running_loop()
    watch = _WATCHES.get(loop)
    if watch is None:
        watch = _WATCHES[loop] = _Watch()
    watch.waiting[current] = request
    if watch.sweeper is None or watch.sweeper.done():
        watch.sweeper = asyncio.ensure_future(watch.sweep())
    try:
        return await waiting
    except asyncio.CancelledError:
        if current in watch.swept and current.cancelling() == 1:  # only the sweep cancelled
            current.uncancel()
            return None
        raise
    finally:
        watch.waiting.pop(current, None)
        watch.swept.discard(current)


@routes.post("/v1/backends/{name}/acquire")
async def acquire(request: web.Request) -> web.StreamResponse:
    """Long-poll for a slot: ``{"run_id"?, "app"?, "deadline_s"?, "timeout_s"?}``."""
    backend = request.match_info["name"]
    sched: Scheduler = request.app[SCHEDULER]
    try:
        q = sched.queue(backend)
    except UnknownBackend:
        raise ApiError(404, "unknown_backend", f"no backend named {backend!r}") from None
    body = await read_message(request, Acquire, allow_empty=True)
    limit_s = sched.config.acquire_timeout_s
    timeout_s = limit_s if body.timeout_s is None else min(body.timeout_s, limit_s)
    tenant = cast(str, request[TENANT])
    coro = sched.acquire(
        backend,
        tenant=tenant,
        run_id=body.run_id,
        app=body.app,
        deadline_s=body.deadline_s,
        timeout_s=timeout_s,
    )
    lease: Lease | None = None
    timed_out: tuple[str, float] | None = None  # (message, retry_after_s)
    try:
        if q.depth == 0 and q.inflight < q.max_inflight and sched.ledger is None:
            lease = await coro  # a free slot: granted without suspending
        else:
            lease = await _wait_or_disconnect(request, coro)
    except QueueTimeout as exc:
        timed_out = (str(exc), exc.retry_after_s)
        drop_tracebacks(exc)
    if timed_out is not None:  # raised outside the except block: no exception chain to keep
        sched.metrics.acquire_timeouts.labels(backend).inc()
        message, retry = timed_out
        raise ApiError(
            429,
            "queue_timeout",
            message,
            extra={"retry_after_s": retry},
            headers={"Retry-After": str(max(1, math.ceil(retry)))},
        )
    if lease is None:
        return web.Response(status=499)
    if _gone(request):
        sched.release(lease.lease_id)
        return web.Response(status=499)
    response = web.json_response(_lease_json(lease, q.lease_s))
    if lease.waited_s > 0.0:  # it queued: how long the loop took to answer once granted
        answer_s = max(0.0, time.monotonic() - lease.granted_at_s)
        sched.metrics.grant_answer_s.labels(backend).observe(answer_s)
    return response


@routes.post("/v1/leases/{lease_id}/release")
async def release(request: web.Request) -> web.Response:
    """Give a slot back; 404 if the lease is unknown, already released or reclaimed."""
    lease_id = request.match_info["lease_id"]
    if not request.app[SCHEDULER].release(lease_id, tenant=cast(str, request[TENANT])):
        raise ApiError(404, "unknown_lease", f"no live lease {lease_id!r} for this tenant")
    return web.json_response({"released": True})


@routes.post("/v1/leases/{lease_id}/renew")
async def renew(request: web.Request) -> web.Response:
    """Keep a slot for another ``lease_s`` seconds (for calls longer than the lease)."""
    lease_id = request.match_info["lease_id"]
    sched = request.app[SCHEDULER]
    lease = sched.renew(lease_id, tenant=cast(str, request[TENANT]))
    if lease is None:
        raise ApiError(404, "unknown_lease", f"no live lease {lease_id!r} for this tenant")
    return web.json_response(_lease_json(lease, sched.queue(lease.backend).lease_s))
