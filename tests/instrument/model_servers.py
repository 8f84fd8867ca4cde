"""Loopback servers for the wrapped-client tests: the simulated engine on a background thread (for
the sync clients) and a replay server answering the Responses API and Anthropic's Messages API
with recorded response shapes (no such server runs here).

The recorded bodies follow the field names of the OpenAI API reference (``Response``,
``response.completed`` streaming event) and Anthropic's Messages API reference (``message``,
``message_start`` / ``message_delta`` events); see docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aiohttp import web

from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine

SEEN: web.AppKey[list[dict[str, Any]]] = web.AppKey("seen", list)


@contextmanager
def engine_thread(config: SimEngineConfig) -> Iterator[str]:
    """``hermes sim-engine`` in-process on its own event loop thread; yields its ``/v1`` URL."""
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        box["loop"], box["stop"] = asyncio.get_running_loop(), stop
        async with serve_sim_engine(config) as url:
            box["url"] = url
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10), "sim engine did not start"
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)


RESPONSE_USAGE = {
    "input_tokens": 11,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 7,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 18,
}


def _response(model: str, status: str, usage: object) -> dict[str, Any]:
    return {
        "id": "resp_0123",
        "object": "response",
        "created_at": 1760000000,
        "status": status,
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_0123",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "four", "annotations": []}],
            }
        ]
        if status == "completed"
        else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def _sse(events: list[dict[str, Any]], named: bool) -> bytes:
    out = b""
    for event in events:
        if named:
            out += f"event: {event['type']}\n".encode()
        out += b"data: " + json.dumps(event).encode() + b"\n\n"
    return out


async def _responses(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    headers = {k.lower(): v for k, v in request.headers.items()}
    request.app[SEEN].append({"path": request.path, "headers": headers, "body": body})
    model = body["model"]
    if not body.get("stream"):
        return web.json_response(_response(model, "completed", RESPONSE_USAGE))
    events = [
        {"type": "response.created", "sequence_number": 0,
         "response": _response(model, "in_progress", None)},
        {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_0123",
         "output_index": 0, "content_index": 0, "delta": "four", "logprobs": []},
        {"type": "response.completed", "sequence_number": 2,
         "response": _response(model, "completed", RESPONSE_USAGE)},
    ]  # fmt: skip
    return web.Response(body=_sse(events, named=True), content_type="text/event-stream")


MESSAGE_USAGE = {"input_tokens": 13, "output_tokens": 9}


def _message(model: str, usage: dict[str, int], text: str) -> dict[str, Any]:
    return {
        "id": "msg_01ABC",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": "end_turn" if text else None,
        "stop_sequence": None,
        "usage": usage,
    }


async def _messages(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    headers = {k.lower(): v for k, v in request.headers.items()}
    request.app[SEEN].append({"path": request.path, "headers": headers, "body": body})
    model = body["model"]
    if body.get("model") == "overloaded":
        error = {"type": "overloaded_error", "message": "Overloaded"}
        return web.json_response({"type": "error", "error": error}, status=529)
    if not body.get("stream"):
        return web.json_response(_message(model, MESSAGE_USAGE, "four"))
    start = _message(model, {"input_tokens": 13, "output_tokens": 1}, "")
    events = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0,
         "delta": {"type": "text_delta", "text": "four"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]  # fmt: skip
    return web.Response(body=_sse(events, named=True), content_type="text/event-stream")


@asynccontextmanager
async def replay_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Serve the recorded shapes on a free port; yields (base URL, requests seen)."""
    app = web.Application()
    app[SEEN] = []
    app.router.add_post("/v1/responses", _responses)
    app.router.add_post("/v1/messages", _messages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", app[SEEN]
    finally:
        await runner.cleanup()
