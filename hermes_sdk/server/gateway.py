"""OpenAI-compatible gateway: queue LLM requests by server-side rank, forward with native priority.

``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` and ``GET /v1/models``.
A request names its run with ``X-Hermes-App/Run/Unit/Deadline`` headers (or ``metadata`` keys
``hermes_app``, ``hermes_run``, ``hermes_unit``, ``hermes_deadline``); it waits in the upstream's
admission queue (policy order, ``max_inflight``), is forwarded with the engine-native ``priority``
computed from the *server's* rank (a client-sent ``priority`` is dropped), and streams back chunk
by chunk. The slot is released when the response or stream ends or the client goes away; the
call's tokens (from ``usage``) are recorded as a unit of the run.
"""

from __future__ import annotations

import asyncio
import math
import time
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from typing import Final

from aiohttp import web

from hermes_sdk.client.encodings import Encoded, override_body, strip_client_priority
from hermes_sdk.server.admission import Lease, QueueTimeout
from hermes_sdk.server.auth import DEFAULT_TENANT, TENANT
from hermes_sdk.server.config import ServerConfig
from hermes_sdk.server.gateway_budget import (
    BUDGETS,
    BudgetBook,
    input_tokens_estimate,
    output_tokens_estimate,
)
from hermes_sdk.server.gateway_relay import CallState, forward
from hermes_sdk.server.gateway_requests import RunRef, openai_error, read_run_ref
from hermes_sdk.server.gateway_state import Gateway, GatewayCall
from hermes_sdk.server.middlewares import loads_json
from hermes_sdk.server.scheduler import SCHEDULER, Scheduler

__all__ = ["GATEWAY", "Gateway", "GatewayCall", "setup_gateway"]

_DISCONNECT_POLL_S: Final = 0.25
"""How often a queued request checks that its client is still there (without handler
cancellation aiohttp does not tell the handler), in seconds."""

GATEWAY: Final = web.AppKey("hermes_gateway", Gateway)


def _slot_free(scheduler: Scheduler, backend: str) -> bool:
    """True when ``backend`` has a free slot and nobody waiting (so acquiring cannot block)."""
    queue = scheduler.queues.get(backend)
    return queue is not None and queue.depth == 0 and queue.inflight < queue.max_inflight


def _disconnected(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _rank(gw: Gateway, lease: Lease, tenant: str, ref: RunRef) -> float | None:
    """The server-side rank in seconds for this request, None when it has no run."""
    if ref.run_id is None:
        return None
    # NaN: granted at once, never ranked; deadline policies queue by order keys, not seconds
    if not math.isnan(lease.rank_s) and not gw.scheduler.time_varying:
        return None if math.isinf(lease.rank_s) else lease.rank_s
    known = gw.scheduler.rank_of(tenant, ref.run_id)
    if known is not None:
        return None if math.isinf(known) else known
    return None if ref.app is None else gw.hint_rank(tenant, ref.app, ref.run_id, ref.deadline_s)


async def _wait_granted(
    request: web.Request,
    enter: asyncio.Future[Lease],
    slot: AbstractAsyncContextManager[Lease],
) -> bool:
    """Wait for the slot while watching the client; False (and no slot held) if it left."""
    try:
        while True:
            done, _ = await asyncio.wait({enter}, timeout=_DISCONNECT_POLL_S)
            if done:
                return True
            if _disconnected(request):
                break
    except asyncio.CancelledError:
        await _abandon(enter, slot)
        raise
    await _abandon(enter, slot)
    return False


async def _abandon(enter: asyncio.Future[Lease], slot: AbstractAsyncContextManager[Lease]) -> None:
    """Give up a pending acquire; release the slot if it was granted in the meantime."""
    enter.cancel()
    await asyncio.gather(enter, return_exceptions=True)
    if not enter.cancelled() and enter.exception() is None:
        await slot.__aexit__(None, None, None)


async def _queue_for(
    request: web.Request,
    slot: AbstractAsyncContextManager[Lease],
    waits: AbstractContextManager[None],
) -> Lease | None:
    """Wait in the admission queue for ``slot``'s lease (None: the client left meanwhile);
    ``waits`` is the budget ranker's block around the wait (:meth:`BudgetBook.queued`)."""
    with waits:  # a budgeted queue ranks the run by its waiting tokens
        enter = asyncio.ensure_future(slot.__aenter__())
        if not await _wait_granted(request, enter, slot):
            return None
        return enter.result()


async def _proxy(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    endpoint = request.path.rsplit("/v1/", 1)[-1]
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app._client_max_size
        return openai_error(
            413, "body_too_large", f"request body exceeds the limit of {limit} bytes"
        )
    try:
        body = loads_json(raw)
    except (ValueError, UnicodeDecodeError):
        return openai_error(400, "invalid_json", "request body is not valid JSON")
    if not isinstance(body, dict):
        return openai_error(400, "invalid_request", "request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return openai_error(400, "invalid_request", "`model` must be a non-empty string")
    upstream = await gw.route(model)
    if upstream is None:
        return openai_error(404, "model_not_found", f"The model `{model}` does not exist.")
    tenant = str(request.get(TENANT, DEFAULT_TENANT))
    ref = read_run_ref(request.headers, body)
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    options = dict(options) if isinstance(options, dict) else {}
    client_wants_usage = bool(options.get("include_usage"))
    if stream:
        body["stream_options"] = {**options, "include_usage": True}
    strip_client_priority(body)  # never trust a client-sent priority (body or Dynamo nvext)

    book = request.app.get(BUDGETS)
    budget = None if book is None else book.get(upstream.name)
    cost = 0
    if budget is not None:  # a hosted API: the request's tokens are charged to its budget
        node = ref.unit or model
        cost = input_tokens_estimate(body) + output_tokens_estimate(
            gw.scheduler, tenant, ref.app, node, body
        )
    queued_at = time.perf_counter()
    deadline_at = time.monotonic() + upstream.timeout_s

    def slot_for(timeout_s: float) -> AbstractAsyncContextManager[Lease]:
        return gw.scheduler.slot(
            upstream.name,
            tenant=tenant,
            run_id=ref.run_id,
            app=ref.app,
            deadline_s=ref.deadline_s,
            timeout_s=timeout_s,
            cost=cost,
        )

    def waits() -> AbstractContextManager[None]:
        if book is None:
            return nullcontext()
        return book.queued(upstream.name, tenant, ref.run_id, ref.app, ref.unit or model, cost)

    slot = slot_for(upstream.timeout_s)
    try:
        # fast path: granted without waiting (with a budget any request may have to wait)
        if budget is None and _slot_free(gw.scheduler, upstream.name):
            lease = await slot.__aenter__()
        else:
            granted = await _queue_for(request, slot, waits())
            if granted is None:
                return web.Response(status=499)  # the client left while queued
            lease = granted
    except QueueTimeout as exc:  # tell the client when to retry
        resp = openai_error(429, "queue_timeout", str(exc))
        resp.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return resp
    granted_at = time.perf_counter()
    unit_id = gw.unit_started(tenant, ref, upstream, model)
    rank = _rank(gw, lease, tenant, ref)
    priority = None
    fields = Encoded()
    if upstream.name not in gw.priority_rejected:
        # no rank: the middle level, neither jumps nor starves
        priority = upstream.priority(rank)
        fields = upstream.fields(rank, tenant=tenant, deadline_s=ref.deadline_s)
    override_body(body, fields.body)
    state = CallState(waited_s=granted_at - queued_at)
    charged, held = budget is not None, True
    throttled_s = 0.0
    try:
        while True:
            answer = await forward(
                request,
                gw,
                upstream,
                endpoint,
                body,
                stream,
                client_wants_usage,
                state,
                engine_headers=fields.headers,
            )
            if book is None or not state.throttled:
                return answer
            # a 429 from the provider: the charge is refunded and the request queues again at
            # its rank (the budget blocked by Retry-After meanwhile), until its timeout; the
            # wait counts as queueing (X-Hermes-Queue-Wait), not as the unit's service
            retry_from = time.perf_counter()
            book.refund(upstream.name, cost, tenant)
            charged = held = False
            await slot.__aexit__(None, None, None)
            slot = slot_for(deadline_at - time.monotonic())
            try:
                again = await _queue_for(request, slot, waits())
            except QueueTimeout:
                again = None
            book.count_429(upstream.name, absorbed=again is not None)
            if again is None:  # the timeout passed (or the client left): the app sees the 429
                return answer
            charged = held = True
            throttled_s += time.perf_counter() - retry_from
            state.waited_s = granted_at - queued_at + throttled_s
            state.throttled = False
    except asyncio.CancelledError:  # the client went away (aiohttp handler cancellation)
        state.disconnected = True
        raise
    finally:
        if held:
            await slot.__aexit__(None, None, None)
        if book is not None and charged:
            actual = None
            if state.input_tokens is not None and state.output_tokens is not None:
                actual = state.input_tokens + state.output_tokens
            book.settle(upstream.name, cost, actual)
        gw.unit_ended(
            tenant,
            unit_id,
            GatewayCall(
                upstream=upstream.name,
                endpoint=endpoint,
                model=model,
                tenant=tenant,
                app=ref.app,
                run_id=ref.run_id,
                unit=ref.unit,
                priority=None if state.priority_dropped else priority,
                rank_s=rank,
                status=state.status,
                waited_s=granted_at - queued_at + throttled_s,
                service_s=time.perf_counter() - granted_at - throttled_s,
                input_tokens=state.input_tokens,
                output_tokens=state.output_tokens,
                failed=state.status >= 400 or state.disconnected,
                disconnected=state.disconnected,
            ),
        )


async def _models(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    found = await asyncio.gather(*(gw.discover(u) for u in gw.router.upstreams))
    return web.json_response({"object": "list", "data": gw.router.model_cards(found)})


def setup_gateway(app: web.Application, config: ServerConfig) -> None:
    """Add the gateway routes and its upstream session (cleanup_ctx) to ``app``.

    Requests are admitted by the server's scheduler, ``app[SCHEDULER]``.
    """
    gateway = Gateway(config, app[SCHEDULER])
    app[GATEWAY] = gateway
    app[BUDGETS] = BudgetBook(config.upstreams, app[SCHEDULER])
    app.cleanup_ctx.append(gateway.lifetime)
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        app.router.add_post(path, _proxy)
    app.router.add_get("/v1/models", _models)
