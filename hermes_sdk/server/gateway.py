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
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp import web
from prometheus_client import Counter, Histogram

from hermes_sdk.client.hints import QUEUE_WAIT_HEADER
from hermes_sdk.policy.base import AppState
from hermes_sdk.server.admission import Lease, QueueTimeout
from hermes_sdk.server.config import ServerConfig
from hermes_sdk.server.scheduler import SCHEDULER, Scheduler
from hermes_sdk.server.upstreams import (
    ModelCard,
    UpstreamConfig,
    UpstreamRouter,
    fetch_model_cards,
)

MAX_CALL_RECORDS: Final = 10_000
_METADATA_KEYS: Final = ("hermes_app", "hermes_run", "hermes_unit", "hermes_deadline")
_FORWARD_HEADERS: Final = ("accept", "user-agent")
_DISCONNECT_POLL_S: Final = 0.25
"""How often a queued request checks that its client is still there (without handler
cancellation aiohttp does not tell the handler), in seconds."""
_REDISCOVER_S: Final = 5.0
_HINT_RANK_TTL_S: Final = 1.0
_PRIORITY_OFF: Final = b"riority scheduling is not enabled"
"""vLLM's 400 message for a ``priority`` sent to an engine without priority scheduling."""

log = logging.getLogger("hermes_sdk.server.gateway")


@dataclass(frozen=True, slots=True)
class GatewayCall:
    """One forwarded request, as the gateway saw it (seconds, tokens)."""

    upstream: str
    endpoint: str
    model: str
    tenant: str
    app: str | None
    run_id: str | None
    unit: str | None
    priority: int | None
    rank_s: float | None
    status: int
    waited_s: float
    service_s: float
    input_tokens: int | None
    output_tokens: int | None
    failed: bool
    disconnected: bool


@dataclass(frozen=True, slots=True)
class _RunRef:
    """Who a request belongs to: from headers, else from ``metadata``."""

    app: str | None
    run_id: str | None
    unit: str | None
    deadline_s: float | None


class Gateway:
    """Routes, the shared upstream session and the record of recent calls."""

    def __init__(self, config: ServerConfig, scheduler: Scheduler) -> None:
        self.config = config
        self.scheduler = scheduler
        self.router = UpstreamRouter(config.upstreams)
        self.calls: deque[GatewayCall] = deque(maxlen=MAX_CALL_RECORDS)
        self.priority_rejected: set[str] = set()
        """Upstreams that refused a ``priority`` (no priority scheduling): none is sent to them."""
        self._session: aiohttp.ClientSession | None = None
        self._discovered_at_s = -math.inf
        self._hint_ranks: dict[tuple[str, str], tuple[float, float | None]] = {}
        registry = scheduler.metrics.registry
        self._requests = Counter(
            "hermes_gateway_requests",
            "LLM requests forwarded by the gateway, by final status (499: client left)",
            ["upstream", "status"],
            registry=registry,
        )
        self._tokens = Counter(
            "hermes_gateway_tokens",
            "Tokens reported in upstream usage",
            ["upstream", "kind"],
            registry=registry,
        )
        self._service_s = Histogram(
            "hermes_gateway_upstream_seconds",
            "Seconds from slot grant to the end of the upstream response",
            ["upstream"],
            registry=registry,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The one client session to every upstream (created in the app's cleanup_ctx)."""
        if self._session is None:
            raise RuntimeError("gateway session used outside the app's lifetime")
        return self._session

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: open the upstream session, learn upstream models, close on shutdown."""
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
        )
        await asyncio.gather(*(self.discover(u) for u in self.router.upstreams if not u.models))
        yield
        await self._session.close()

    async def discover(self, upstream: UpstreamConfig) -> list[ModelCard]:
        """Fetch ``upstream``'s model cards and learn them for routing; [] if unreachable."""
        cards = await fetch_model_cards(self.session, upstream)
        self.router.learn(upstream, [str(c["id"]) for c in cards if "id" in c])
        return cards

    async def route(self, model: str) -> UpstreamConfig | None:
        """The upstream for ``model``; on a miss, asks upstreams for their models again (at
        most every ``_REDISCOVER_S``), e.g. when one was down when the gateway started."""
        found = self.router.route(model)
        now_s = time.monotonic()
        if found is None and now_s - self._discovered_at_s > _REDISCOVER_S:
            self._discovered_at_s = now_s
            await asyncio.gather(*(self.discover(u) for u in self.router.upstreams))
            found = self.router.route(model)
        return found

    def hint_rank(
        self, tenant: str, app: str, run_id: str, deadline_s: float | None
    ) -> float | None:
        """Rank of a run known only from headers: the policy's rank of a fresh run of ``app``.

        Without a deadline that rank depends only on the app's graph, so it is cached for
        ``_HINT_RANK_TTL_S`` (a Monte Carlo rank per request would cost more than the proxying).
        """
        now_s = time.time()
        key = (tenant, app)
        if deadline_s is None:
            hit = self._hint_ranks.get(key)
            if hit is not None and hit[0] > now_s:
                return hit[1]
        deadline = None if deadline_s is None else now_s + deadline_s
        state = AppState(
            app=app, run_id=run_id, arrival_s=now_s, deadline_s=deadline, tenant=tenant
        )
        try:
            rank = float(self.scheduler.policy.rank(state, now_s))
        except Exception:
            log.exception("policy failed to rank a fresh run of %s", app)
            return None
        out = rank if math.isfinite(rank) else None
        if deadline_s is None:
            if len(self._hint_ranks) >= MAX_CALL_RECORDS:
                self._hint_ranks.clear()
            self._hint_ranks[key] = (now_s + _HINT_RANK_TTL_S, out)
        return out

    def unit_started(
        self, tenant: str, ref: _RunRef, upstream: UpstreamConfig, model: str
    ) -> str | None:
        """Report the call as a unit of its run (if the scheduler tracks the run); its id.

        The unit is nested under the client's running unit of the same name when there is one
        (an instrumented ``@llm`` function calling through the gateway), so it is not counted as
        a second stage; otherwise it is a stage of its own, named by the unit header or model.
        """
        if ref.run_id is None:
            return None
        run = self.scheduler.run(tenant, ref.run_id)
        if run is None:
            return None
        parent = next(
            (uid for uid, u in run.units.items() if u.top_level and u.node == ref.unit), None
        )
        unit_id = "gw-" + secrets.token_hex(8)
        event: dict[str, object] = {
            "type": "unit_start",
            "run_id": ref.run_id,
            "unit_id": unit_id,
            "node": ref.unit or model,
            "kind": "llm",
            "backend": upstream.name,
            "ts": time.time(),
        }
        if parent is not None:
            event["parent_id"] = parent
        return unit_id if self._ingest(tenant, event) else None

    def unit_ended(self, tenant: str, unit_id: str | None, call: GatewayCall) -> None:
        """Keep the call, count it, and close its unit with the tokens from ``usage``."""
        self.calls.append(call)
        status = "499" if call.disconnected else str(call.status)
        self._requests.labels(call.upstream, status).inc()
        self._service_s.labels(call.upstream).observe(call.service_s)
        if call.input_tokens:
            self._tokens.labels(call.upstream, "prompt").inc(call.input_tokens)
        if call.output_tokens:
            self._tokens.labels(call.upstream, "completion").inc(call.output_tokens)
        if unit_id is None or call.run_id is None:
            return
        event: dict[str, object] = {
            "type": "unit_end",
            "run_id": call.run_id,
            "unit_id": unit_id,
            "service_s": call.service_s,
            "failed": call.failed,
            "ts": time.time(),
        }
        if call.input_tokens is not None:
            event["input_tokens"] = call.input_tokens
        if call.output_tokens is not None:
            event["output_tokens"] = call.output_tokens
        self._ingest(tenant, event)

    def _ingest(self, tenant: str, event: dict[str, object]) -> bool:
        try:
            return self.scheduler.ingest(tenant, [event]) == 1
        except Exception:  # recording must never fail the user's call
            log.exception("gateway could not record %s", event.get("type"))
            return False


GATEWAY: Final = web.AppKey("hermes_gateway", Gateway)


def _error(status: int, code: str, message: str) -> web.Response:
    """OpenAI-shaped error that also carries the server's stable ``code``."""
    body = {"error": {"code": code, "message": message, "type": "invalid_request_error"}}
    return web.json_response(body, status=status)


def _float(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) and out > 0 else None


def _run_ref(headers: Mapping[str, str], body: dict[str, object]) -> _RunRef:
    """Read the run reference; strips the hermes keys from ``body["metadata"]``."""
    meta = body.get("metadata")
    found: dict[str, str] = {}
    if isinstance(meta, dict):
        for key in _METADATA_KEYS:
            if key in meta:
                found[key] = str(meta.pop(key))
        if not meta:
            del body["metadata"]

    def pick(header: str, key: str) -> str | None:
        value = headers.get(header) or found.get(key)
        return value or None

    deadline = pick("X-Hermes-Deadline", "hermes_deadline")
    return _RunRef(
        app=pick("X-Hermes-App", "hermes_app"),
        run_id=pick("X-Hermes-Run", "hermes_run"),
        unit=pick("X-Hermes-Unit", "hermes_unit"),
        deadline_s=_float(deadline) if deadline else None,
    )


def _usage(raw: object) -> tuple[int | None, int | None]:
    if not isinstance(raw, dict):
        return None, None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


def _slot_free(scheduler: Scheduler, backend: str) -> bool:
    """True when ``backend`` has a free slot and nobody waiting (so acquiring cannot block)."""
    queue = scheduler.queues.get(backend)
    return queue is not None and queue.depth == 0 and queue.inflight < queue.max_inflight


def _disconnected(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _rank(gw: Gateway, lease: Lease, tenant: str, ref: _RunRef) -> float | None:
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


async def _proxy(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    endpoint = request.path.rsplit("/v1/", 1)[-1]
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app._client_max_size
        return _error(413, "body_too_large", f"request body exceeds the limit of {limit} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "invalid_json", "request body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "invalid_request", "request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _error(400, "invalid_request", "`model` must be a non-empty string")
    upstream = await gw.route(model)
    if upstream is None:
        return _error(404, "model_not_found", f"The model `{model}` does not exist.")
    tenant = str(request.get("tenant", "default"))
    ref = _run_ref(request.headers, body)
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    options = dict(options) if isinstance(options, dict) else {}
    client_wants_usage = bool(options.get("include_usage"))
    if stream:
        body["stream_options"] = {**options, "include_usage": True}
    body.pop("priority", None)  # never trust a client-sent priority

    queued_at = time.perf_counter()
    slot = gw.scheduler.slot(
        upstream.name,
        tenant=tenant,
        run_id=ref.run_id,
        app=ref.app,
        deadline_s=ref.deadline_s,
        timeout_s=upstream.timeout_s,
    )
    try:
        if _slot_free(gw.scheduler, upstream.name):  # fast path: granted without waiting
            lease = await slot.__aenter__()
        else:
            enter = asyncio.ensure_future(slot.__aenter__())
            if not await _wait_granted(request, enter, slot):
                return web.Response(status=499)  # the client left while queued
            lease = enter.result()
    except QueueTimeout as exc:  # tell the client when to retry
        resp = _error(429, "queue_timeout", str(exc))
        resp.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return resp
    granted_at = time.perf_counter()
    unit_id = gw.unit_started(tenant, ref, upstream, model)
    rank = _rank(gw, lease, tenant, ref)
    priority = None
    if upstream.name not in gw.priority_rejected:
        priority = upstream.priority(rank)  # no rank: the middle level, neither jumps nor starves
    if priority is not None:
        body["priority"] = priority
    state = _CallState(waited_s=granted_at - queued_at)
    try:
        return await _forward(
            request, gw, upstream, endpoint, body, stream, client_wants_usage, state
        )
    except asyncio.CancelledError:  # the client went away (aiohttp handler cancellation)
        state.disconnected = True
        raise
    finally:
        await slot.__aexit__(None, None, None)
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
                waited_s=granted_at - queued_at,
                service_s=time.perf_counter() - granted_at,
                input_tokens=state.input_tokens,
                output_tokens=state.output_tokens,
                failed=state.status >= 400 or state.disconnected,
                disconnected=state.disconnected,
            ),
        )


@dataclass(slots=True)
class _CallState:
    status: int = 502
    input_tokens: int | None = None
    output_tokens: int | None = None
    disconnected: bool = False
    priority_dropped: bool = False
    waited_s: float = 0.0

    def headers(self, content_type: str) -> dict[str, str]:
        """Response headers: the upstream's content type and the admission wait (seconds).

        ``X-Hermes-Queue-Wait`` lets the client subtract the time its request waited for a slot
        from the unit's measured time, so the PDGraph learns service demand, not queueing.
        """
        return {"Content-Type": content_type, QUEUE_WAIT_HEADER: f"{self.waited_s:.6f}"}


async def _forward(
    request: web.Request,
    gw: Gateway,
    upstream: UpstreamConfig,
    endpoint: str,
    body: dict[str, object],
    stream: bool,
    client_wants_usage: bool,
    state: _CallState,
) -> web.StreamResponse:
    headers = {"Content-Type": "application/json", **upstream.auth_headers()}
    for name in _FORWARD_HEADERS:
        if name in request.headers:
            headers[name] = request.headers[name]
    for name, value in request.headers.items():
        if name.lower().startswith("x-hermes-"):
            headers[name] = value
    retry_without_priority = False
    try:
        async with gw.session.post(
            f"{upstream.base_url}/{endpoint}",
            data=json.dumps(body).encode(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(sock_connect=10.0, sock_read=upstream.timeout_s),
        ) as up:
            state.status = up.status
            content_type = up.headers.get("Content-Type", "application/json")
            if not stream or up.status >= 400:
                payload = await up.read()
                if up.status == 400 and "priority" in body and _PRIORITY_OFF in payload:
                    retry_without_priority = True
                elif up.status < 400:
                    with suppress(ValueError, AttributeError):
                        usage = json.loads(payload).get("usage")
                        state.input_tokens, state.output_tokens = _usage(usage)
                if not retry_without_priority:
                    return web.Response(
                        status=up.status, body=payload, headers=state.headers(content_type)
                    )
            else:
                resp = web.StreamResponse(
                    status=up.status,
                    headers={**state.headers(content_type), "Cache-Control": "no-cache"},
                )
                await resp.prepare(request)
                await _relay_stream(up, resp, client_wants_usage, state)
                return resp
    except (aiohttp.ClientError, TimeoutError) as exc:
        state.status = 502
        return _error(502, "upstream_error", f"upstream {upstream.name!r} failed: {exc!r}")
    log.warning(
        "upstream %s runs without priority scheduling (vLLM: start it with "
        "--scheduling-policy priority); sending it no priority from now on",
        upstream.name,
    )
    gw.priority_rejected.add(upstream.name)
    del body["priority"]
    state.priority_dropped = True
    return await _forward(request, gw, upstream, endpoint, body, stream, client_wants_usage, state)


async def _relay_stream(
    up: aiohttp.ClientResponse,
    resp: web.StreamResponse,
    client_wants_usage: bool,
    state: _CallState,
) -> None:
    """Write each complete SSE line as soon as it arrives; read usage on the way past.

    Only a partial line is held back. The usage-only chunk the gateway asked for is dropped
    when the client did not ask for it (code indexing ``choices[0]`` would break on it).
    """
    pending = b""
    try:
        async for chunk in up.content.iter_any():
            if not pending and chunk.endswith(b"\n") and b'"prompt_tokens"' not in chunk:
                if not await _write(resp, chunk, up, state):  # whole lines, no usage: as is
                    return
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = []
            for line in lines:
                if b'"prompt_tokens"' in line and line.startswith(b"data:"):
                    try:
                        event = json.loads(line[5:])
                    except ValueError:
                        event = None
                    if isinstance(event, dict):
                        state.input_tokens, state.output_tokens = _usage(event.get("usage"))
                        if not client_wants_usage and not event.get("choices"):
                            continue
                out.append(line)
            if out and not await _write(resp, b"\n".join(out) + b"\n", up, state):
                return
        if pending and not await _write(resp, pending, up, state):
            return
    except asyncio.CancelledError:
        state.disconnected = True
        up.close()
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:  # the upstream broke mid-stream
        state.status = 502
        up.close()
        error = {"message": f"upstream failed mid-stream: {exc!r}", "code": "upstream_error"}
        if pending:  # never glue the error event onto a partial line
            await _write(resp, b"\n\n", up, state)
        await _write(resp, b"data: " + json.dumps({"error": error}).encode() + b"\n\n", up, state)
    with suppress(ConnectionResetError):
        await resp.write_eof()


async def _write(
    resp: web.StreamResponse, data: bytes, up: aiohttp.ClientResponse, state: _CallState
) -> bool:
    """Send ``data`` to the client; False (and the upstream request closed) if it went away."""
    try:
        await resp.write(data)
    except ConnectionResetError:
        state.disconnected = True
        up.close()
        return False
    return True


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
    app.cleanup_ctx.append(gateway.lifetime)
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        app.router.add_post(path, _proxy)
    app.router.add_get("/v1/models", _models)
