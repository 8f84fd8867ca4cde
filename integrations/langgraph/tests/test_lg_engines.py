"""ChatOpenAI calls carry Dynamo's nvext and GIE's headers when the hooks are built for them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypedDict

import pytest
from aiohttp import web
from hermes_langgraph import HermesCallbackHandler, chat_openai_kwargs
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph

Seen = list[tuple[dict[str, str], dict[str, Any]]]


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, Seen]]:
    """A real OpenAI-shaped server on loopback recording each request's headers and body."""
    seen: Seen = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(({k.lower(): v for k, v in request.headers.items()}, body))
        usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        message = {"role": "assistant", "content": "ok"}
        return web.json_response(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model"),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v1", seen
    finally:
        await runner.cleanup()


class S(TypedDict, total=False):
    q: str


def one_call_graph(chat: ChatOpenAI) -> Any:
    async def answer(state: S) -> S:
        await chat.ainvoke([HumanMessage(state["q"])])
        return {}

    builder = StateGraph(S)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile()


@pytest.mark.parametrize("engine", ["dynamo", "gie", "litellm"])
async def test_hooks_fill_the_stack_fields(recorder: tuple[str, Seen], engine: str) -> None:
    url, seen = recorder
    chat = ChatOpenAI(
        model="m",
        base_url=url,
        api_key="sk-test",  # type: ignore[arg-type]
        max_retries=0,
        **chat_openai_kwargs(engine=engine),
    )
    handler = HermesCallbackHandler(app="stacks", tenant="acme")
    await one_call_graph(chat).ainvoke({"q": "hi"}, {"callbacks": [handler]})
    ((headers, body),) = seen
    assert headers["x-hermes-app"] == "stacks" and headers["x-hermes-unit"] == "answer"
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    if engine == "dynamo":
        agent = body["nvext"]["agent_hints"]
        assert isinstance(agent["priority"], int) and "priority" not in body
    elif engine == "gie":
        assert headers["x-gateway-inference-fairness-id"] == "acme"
        assert headers["x-gateway-inference-objective"].startswith("hermes-band-")
        assert "priority" not in body and "nvext" not in body
    else:
        assert isinstance(body["priority"], int) and "nvext" not in body
