"""A simulated OpenAI-compatible LLM engine on aiohttp, for loopback tests, demos and benchmarks.

It models what matters for scheduling: continuous batching (every step decodes one token for each
running request; a step takes ``step_base_s + step_per_request_s * batch + prefill_per_token_s *
new prompt tokens``), a bounded batch, a waiting queue that is FCFS or ordered by the request's
``priority`` field (vLLM semantics: lower first, FCFS ties, preemption of worse running requests;
or higher first like SGLang), deterministic output lengths (``max_tokens``, else seeded from the
prompt), real SSE streaming with ``usage``, and an optional cold start after idle. Every request it
saw is listed at ``GET /debug/requests`` so tests can assert on order and priority.

This module is the HTTP/OpenAI surface (request parsing, JSON and SSE bodies, fault injection,
the aiohttp app); the batching core and time model live in :mod:`hermes_sdk.sim.engine_batching`,
whose public names are re-exported here.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from aiohttp import web

from hermes_sdk.client.hints import RETAIN_HEADER
from hermes_sdk.sim.engine_batching import (
    BatchingEngine,
    SimEngineConfig,
    SimRequest,
    count_tokens,
)
from hermes_sdk.sim.kv_cache import PrefixKVCache
from hermes_sdk.sim.openai_bodies import (
    embedding_data,
    embedding_texts,
    prompt_text,
    text_digest,
    token_text,
    usage_body,
)
from hermes_sdk.sim.provider import RateLimitConfig, SimRateLimit

__all__ = [
    "ENGINE",
    "BatchingEngine",
    "SimEngineConfig",
    "SimRequest",
    "count_tokens",
    "create_engine_app",
    "serve_sim_engine",
]

ENGINE: Final = web.AppKey("hermes_sim_engine", BatchingEngine)
_FAULTS: Final = web.AppKey("hermes_sim_faults", list)  # list[tuple[int, dict[str, object]]]
_CUTS: Final = web.AppKey("hermes_sim_cuts", list)  # list[int]: drop a stream after n tokens
KV_CACHE: Final = web.AppKey("hermes_sim_kv_cache", PrefixKVCache)
RATE_LIMIT: Final = web.AppKey("hermes_sim_rate_limit", SimRateLimit)
_LIMIT_HEADERS: Final = web.RequestKey("hermes_sim_rate_limit_headers", dict)


def _limited(request: web.Request, cost_tokens: int) -> web.Response | None:
    """Charge the hosted provider's rate limit (if any); its 429 when the budget is spent."""
    limiter = request.app.get(RATE_LIMIT)
    if limiter is None:
        return None
    accepted, headers = limiter.admit(cost_tokens)
    request[_LIMIT_HEADERS] = headers
    if accepted:
        return None
    message = f"Rate limit reached: requested {cost_tokens} tokens; please try again later."
    body = {
        "error": {
            "message": message,
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    return web.json_response(body, status=429)


async def _limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer carries the rate-limit headers of its request."""
    headers = request.get(_LIMIT_HEADERS)
    if headers:
        response.headers.update(headers)


def _retain_s(request: web.Request) -> float | None:
    """The request's ``X-Hermes-Retain-S`` in seconds (None: absent or not a number >= 0)."""
    raw = request.headers.get(RETAIN_HEADER)
    try:
        value = float(raw) if raw is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _remember(request: web.Request, text: str, req: SimRequest, answer: str) -> None:
    """Cache the request's context (prompt + answer, as the next chat turn will start) under its
    own text, pinned for the request's ``X-Hermes-Retain-S`` seconds."""
    context = f"{text}\nassistant: {answer}" if req.endpoint == "chat" else text + answer
    tokens = count_tokens(context)
    request.app[KV_CACHE].store(context, tokens, time.monotonic(), _retain_s(request), text=context)


def _error(status: int, message: str, err_type: str = "invalid_request_error") -> web.Response:
    body = {"error": {"message": message, "type": err_type, "param": None, "code": status}}
    return web.json_response(body, status=status)


def _hermes_headers(request: web.Request) -> dict[str, str]:
    """The ``X-Hermes-*`` and ``Authorization`` headers (lower-cased), recorded for tests."""
    return {
        k.lower(): v
        for k, v in request.headers.items()
        if k.lower().startswith("x-hermes-") or k.lower() == "authorization"
    }


async def _parse(request: web.Request) -> dict[str, object] | web.Response:
    """Decoded JSON object, or an OpenAI-style error response (400/404/injected fault)."""
    faults: list[tuple[int, dict[str, object]]] = request.app[_FAULTS]
    if faults:
        status, body = faults.pop(0)
        return web.json_response(body, status=status)
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return _error(400, "request body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "request body must be a JSON object")
    model = request.app[ENGINE].config.model
    if body.get("model") != model:
        return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
    return body


async def _generate(request: web.Request) -> web.StreamResponse:
    endpoint = "chat" if request.path.endswith("chat/completions") else "completion"
    parsed = await _parse(request)
    if isinstance(parsed, web.Response):
        return parsed
    engine = request.app[ENGINE]
    cfg = engine.config
    text = prompt_text(parsed, endpoint)
    if text is None:
        return _error(
            400, "missing or malformed " + ("messages" if endpoint == "chat" else "prompt")
        )
    max_tokens = parsed.get("max_completion_tokens", parsed.get("max_tokens"))
    priority = parsed.get("priority", 0)
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        return _error(400, f"max_tokens must be a positive integer, got {max_tokens!r}")
    if not isinstance(priority, int) or isinstance(priority, bool):
        return _error(400, f"priority must be an integer, got {priority!r}")
    if priority != 0 and cfg.strict_priority and not cfg.priority_scheduling:
        return _error(400, f"Got priority {priority} but Priority scheduling is not enabled.")
    digest = text_digest(cfg.seed, text)
    if max_tokens is None:
        rng = random.Random(digest)
        target = rng.randint(cfg.min_output_tokens, cfg.max_output_tokens)
    else:
        target = max_tokens
    prompt_tokens = count_tokens(text)
    refused = _limited(request, prompt_tokens + target)
    if refused is not None:
        return refused
    seq = engine.next_seq()
    cache = request.app[KV_CACHE]
    cached = cache.lookup_text(text, prompt_tokens) if cache.capacity_tokens else 0
    req = SimRequest(
        request_id=f"{'chatcmpl' if endpoint == 'chat' else 'cmpl'}-sim{seq}",
        endpoint=endpoint,
        priority=priority,
        seq=seq,
        prompt_tokens=prompt_tokens,
        target_tokens=target,
        arrival_s=time.monotonic(),
        hermes_headers=_hermes_headers(request),
        cached_tokens=cached,
    )
    engine.submit(req)
    stream_options = parsed.get("stream_options")
    include_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    finish_reason = "length" if max_tokens is not None else "stop"
    common = {"id": req.request_id, "created": int(time.time()), "model": cfg.model}
    try:
        if parsed.get("stream"):
            cuts: list[int] = request.app[_CUTS]
            cut = cuts.pop(0) if cuts else None
            return await _stream(request, req, digest, common, include_usage, finish_reason, cut)
        pieces = []
        while (index := await req.tokens.get()) is not None:
            pieces.append(token_text(digest, index))
    finally:
        engine.abort(req)
        if cache.capacity_tokens and req.generated_tokens >= req.target_tokens:
            answer = "".join(token_text(digest, i) for i in range(1, req.generated_tokens + 1))
            _remember(request, text, req, answer)
    text_out = "".join(pieces)
    choice: dict[str, object] = {"index": 0, "logprobs": None, "finish_reason": finish_reason}
    if endpoint == "chat":
        choice["message"] = {"role": "assistant", "content": text_out}
        obj = "chat.completion"
    else:
        choice["text"] = text_out
        obj = "text_completion"
    body = {
        **common,
        "object": obj,
        "choices": [choice],
        "usage": usage_body(req.prompt_tokens, target, req.cached_tokens),
    }
    return web.json_response(body)


async def _stream(
    request: web.Request,
    req: SimRequest,
    digest: int,
    common: dict[str, object],
    include_usage: bool,
    finish_reason: str,
    cut_after_tokens: int | None = None,
) -> web.StreamResponse:
    """Write one SSE event per token as the batching loop produces it (or drop the connection
    after ``cut_after_tokens``, an injected fault)."""
    chat = req.endpoint == "chat"
    obj = "chat.completion.chunk" if chat else "text_completion"
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)

    async def send(choices: list[dict[str, object]], usage: object = None) -> None:
        chunk: dict[str, object] = {**common, "object": obj, "choices": choices}
        if include_usage:
            chunk["usage"] = usage
        await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    def choice(text: str, finish: str | None, first: bool = False) -> dict[str, object]:
        out: dict[str, object] = {"index": 0, "logprobs": None, "finish_reason": finish}
        if chat:
            out["delta"] = {"role": "assistant", "content": text} if first else {"content": text}
        else:
            out["text"] = text
        return out

    try:
        if chat:
            await send([choice("", None, first=True)])
        while (index := await req.tokens.get()) is not None:
            await send([choice(token_text(digest, index), None)])
            if cut_after_tokens is not None and index >= cut_after_tokens and request.transport:
                request.transport.close()  # the engine "crashed" mid-stream
                return response
        await send([{**choice("", finish_reason), **({"delta": {}} if chat else {})}])
        if include_usage:
            await send([], usage_body(req.prompt_tokens, req.generated_tokens, req.cached_tokens))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    except ConnectionResetError:  # the client went away; the caller aborts the request
        pass
    return response


async def _embeddings(request: web.Request) -> web.StreamResponse:
    parsed = await _parse(request)
    if isinstance(parsed, web.Response):
        return parsed
    engine = request.app[ENGINE]
    cfg = engine.config
    texts = embedding_texts(parsed.get("input"))
    if texts is None:
        return _error(
            400,
            "input must be a string, a list of strings, a list of token ids or a list of "
            "token-id lists (non-empty)",
        )
    tokens = sum(count_tokens(t) for t in texts)
    refused = _limited(request, tokens)
    if refused is not None:
        return refused
    priority = parsed.get("priority", 0)
    seq = engine.next_seq()
    req = SimRequest(
        f"embd-sim{seq}",
        "embedding",
        priority if isinstance(priority, int) else 0,
        seq,
        tokens,
        0,
        time.monotonic(),
        hermes_headers=_hermes_headers(request),
    )
    engine.records.append(req)
    req.cold_start_s = await engine.cold_start_wait()
    req.start_s = time.monotonic()
    await asyncio.sleep(cfg.step_base_s + cfg.prefill_per_token_s * tokens)
    req.finish_s = time.monotonic()
    as_base64 = parsed.get("encoding_format") == "base64"
    data = embedding_data(cfg.seed, texts, cfg.embedding_dim, as_base64)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return web.json_response({"object": "list", "data": data, "model": cfg.model, "usage": usage})


async def _models(request: web.Request) -> web.Response:
    model = request.app[ENGINE].config.model
    card = {"id": model, "object": "model", "created": 0, "owned_by": "hermes-sim"}
    return web.json_response({"object": "list", "data": [card]})


async def _health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def _debug_requests(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if request.method == "DELETE":
        engine.records.clear()
        return web.json_response({"cleared": True})
    return web.json_response({"requests": [r.record() for r in engine.records]})


async def _debug_kv(request: web.Request) -> web.Response:
    """The prefix KV cache's counters (tokens) and occupancy."""
    cache = request.app[KV_CACHE]
    stats = cache.stats()
    return web.json_response(
        {
            "capacity_tokens": cache.capacity_tokens,
            "used_tokens": cache.used_tokens,
            "entries": len(cache),
            "lookups": stats.lookups,
            "hits": stats.hits,
            "prompt_tokens": stats.prompt_tokens,
            "saved_tokens": stats.saved_tokens,
            "evictions": stats.evictions,
            "evicted_pinned": stats.evicted_pinned,
        }
    )


async def _debug_ratelimit(request: web.Request) -> web.Response:
    """The emulated provider's counters: accepted, limited (429s), tokens; {} without a limit."""
    limiter = request.app.get(RATE_LIMIT)
    return web.json_response({} if limiter is None else limiter.stats())


async def _debug_faults(request: web.Request) -> web.Response:
    """Inject ``count`` error responses ``{"status", "body"}`` before the next generations, or
    ``{"cut_after_tokens": n}``: the next ``count`` streams lose their connection after n."""
    body = await request.json()
    if "cut_after_tokens" in body:
        cut = int(body["cut_after_tokens"])
        request.app[_CUTS].extend([cut] * int(body.get("count", 1)))
        return web.json_response({"queued": len(request.app[_CUTS])})
    status = int(body.get("status", 500))
    err = body.get("body") or {"error": {"message": "injected fault", "type": "server_error"}}
    request.app[_FAULTS].extend([(status, err)] * int(body.get("count", 1)))
    return web.json_response({"queued": len(request.app[_FAULTS])})


def create_engine_app(
    config: SimEngineConfig, rate_limit: RateLimitConfig | None = None
) -> web.Application:
    """The simulated engine as an aiohttp application (stepping task tied to its lifetime);
    with ``rate_limit`` it also emulates a hosted provider's requests/tokens per minute."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    if rate_limit is not None:
        app[RATE_LIMIT] = SimRateLimit(rate_limit)
        app.on_response_prepare.append(_limit_headers)
    app[ENGINE] = BatchingEngine(config)
    app[_FAULTS] = []
    app[_CUTS] = []
    app[KV_CACHE] = PrefixKVCache(config.kv_cache_tokens)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        app[ENGINE].start()
        yield
        await app[ENGINE].stop()

    app.cleanup_ctx.append(lifetime)
    app.router.add_post("/v1/chat/completions", _generate)
    app.router.add_post("/v1/completions", _generate)
    app.router.add_post("/v1/embeddings", _embeddings)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    app.router.add_route("*", "/debug/requests", _debug_requests)
    app.router.add_post("/debug/faults", _debug_faults)
    app.router.add_get("/debug/kv", _debug_kv)
    app.router.add_get("/debug/ratelimit", _debug_ratelimit)
    return app


@asynccontextmanager
async def serve_sim_engine(
    config: SimEngineConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    rate_limit: RateLimitConfig | None = None,
) -> AsyncIterator[str]:
    """Run the engine on ``host:port`` (0 = a free port) and yield its base URL (``.../v1``)."""
    app = create_engine_app(config, rate_limit)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        sock_host, sock_port = runner.addresses[0][:2]
        yield f"http://{sock_host}:{sock_port}/v1"
    finally:
        await runner.cleanup()
