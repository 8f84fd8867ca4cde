"""Forward a granted gateway request upstream and relay the answer (JSON or SSE) to the client.

Tokens are read from ``usage`` on the way past; a stream's complete lines are written as soon as
they arrive. An engine that refuses ``priority`` (no priority scheduling) gets the request again
without it, and no priority from then on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp import web

from hermes_sdk.client.events import GATEWAY_HEADER
from hermes_sdk.client.hints import QUEUE_WAIT_HEADER
from hermes_sdk.server.gateway_budget import BUDGETS
from hermes_sdk.server.gateway_requests import openai_error
from hermes_sdk.server.gateway_state import Gateway
from hermes_sdk.server.upstreams import UpstreamConfig

_FORWARD_HEADERS: Final = ("accept", "user-agent")
_PRIORITY_OFF: Final = b"riority scheduling is not enabled"
"""vLLM's 400 message for a ``priority`` sent to an engine without priority scheduling."""

log = logging.getLogger("hermes_sdk.server.gateway")


def _usage(raw: object) -> tuple[int | None, int | None]:
    if not isinstance(raw, dict):
        return None, None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )


@dataclass(slots=True)
class CallState:
    """What forwarding one call found out: final status, tokens, disconnect, dropped priority."""

    status: int = 502
    input_tokens: int | None = None
    output_tokens: int | None = None
    disconnected: bool = False
    priority_dropped: bool = False
    waited_s: float = 0.0
    throttled: bool = False
    """The upstream answered 429 and has a budget: the caller retries instead of answering."""

    def headers(self, content_type: str) -> dict[str, str]:
        """Response headers: the upstream's content type, the admission wait (seconds) and
        ``X-Hermes-Gateway``.

        ``X-Hermes-Queue-Wait`` lets the client subtract the time its request waited for a slot
        from the unit's measured time, so the PDGraph learns service demand, not queueing.
        ``X-Hermes-Gateway`` tells the SDK this server takes its run events (gateway discovery).
        """
        return {
            "Content-Type": content_type,
            QUEUE_WAIT_HEADER: f"{self.waited_s:.6f}",
            GATEWAY_HEADER: "1",
        }


async def forward(
    request: web.Request,
    gw: Gateway,
    upstream: UpstreamConfig,
    endpoint: str,
    body: dict[str, object],
    stream: bool,
    client_wants_usage: bool,
    state: CallState,
    *,
    engine_headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """POST ``body`` to ``upstream``'s ``endpoint`` and relay the answer; ``state`` learns how.

    ``engine_headers`` (the stack's own hint headers, e.g. GIE's) are set by the gateway; of the
    client's headers only ``X-Hermes-*``, ``Accept`` and ``User-Agent`` are forwarded.
    """
    headers = {"Content-Type": "application/json", **upstream.auth_headers()}
    for name in _FORWARD_HEADERS:
        if name in request.headers:
            headers[name] = request.headers[name]
    for name, value in request.headers.items():
        if name.lower().startswith("x-hermes-"):
            headers[name] = value
    headers.update(engine_headers or {})
    retry_without_priority = False
    sent_at_s = time.monotonic()
    try:
        async with gw.session.post(
            f"{upstream.base_url}/{endpoint}",
            data=json.dumps(body).encode(),
            headers=headers,
            timeout=aiohttp.ClientTimeout(sock_connect=10.0, sock_read=upstream.timeout_s),
        ) as up:
            state.status = up.status
            book = request.app.get(BUDGETS)
            if book is not None and book.observe(upstream.name, up.status, up.headers, sent_at_s):
                state.throttled = True
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
        return openai_error(502, "upstream_error", f"upstream {upstream.name!r} failed: {exc!r}")
    log.warning(
        "upstream %s runs without priority scheduling (vLLM: start it with "
        "--scheduling-policy priority); sending it no priority from now on",
        upstream.name,
    )
    gw.priority_rejected.add(upstream.name)
    del body["priority"]
    state.priority_dropped = True
    return await forward(
        request,
        gw,
        upstream,
        endpoint,
        body,
        stream,
        client_wants_usage,
        state,
        engine_headers=engine_headers,
    )


async def _relay_stream(
    up: aiohttp.ClientResponse,
    resp: web.StreamResponse,
    client_wants_usage: bool,
    state: CallState,
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
    resp: web.StreamResponse, data: bytes, up: aiohttp.ClientResponse, state: CallState
) -> bool:
    """Send ``data`` to the client; False (and the upstream request closed) if it went away."""
    try:
        await resp.write(data)
    except ConnectionResetError:
        state.disconnected = True
        up.close()
        return False
    return True
