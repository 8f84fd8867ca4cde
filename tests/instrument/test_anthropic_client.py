"""``hermes.wrap`` around the real ``anthropic`` client, against recorded Messages API shapes."""

from __future__ import annotations

import pytest

import hermes_sdk as hermes
from tests.instrument.model_servers import MESSAGE_USAGE, replay_server

anthropic = pytest.importorskip("anthropic")

MSGS = [{"role": "user", "content": "2+2?"}]


async def test_messages_are_units_with_tokens_and_headers_only() -> None:
    async with replay_server() as (url, seen):
        client = hermes.wrap(anthropic.AsyncAnthropic(base_url=url, api_key="k", max_retries=0))
        async with hermes.run(app="claude-qa") as run:
            message = await client.messages.create(
                model="claude-x", max_tokens=64, messages=MSGS, hermes_unit="answer"
            )
            stream = await client.messages.create(
                model="claude-x", max_tokens=64, messages=MSGS, stream=True
            )
            events = [e.type async for e in stream]
            with pytest.raises(anthropic.APIStatusError) as caught:
                await client.messages.create(model="overloaded", max_tokens=8, messages=MSGS)
        await client.messages.create(model="claude-x", max_tokens=8, messages=MSGS)  # outside
        await client.close()
    assert message.content[0].text == "four"
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert caught.value.status_code == 529
    expected = (MESSAGE_USAGE["input_tokens"], MESSAGE_USAGE["output_tokens"])
    units = [(u.name, u.input_tokens, u.output_tokens, u.failed) for u in run.units]
    assert units == [
        ("answer", *expected, False),
        ("claude-x", *expected, False),  # message_start input, message_delta output
        ("overloaded", None, None, True),
    ]
    assert seen[0]["headers"]["x-hermes-unit"] == "answer"
    assert seen[0]["headers"]["x-hermes-app"] == "claude-qa"
    assert all("priority" not in r["body"] for r in seen)  # Anthropic has no priority field
    assert "hermes_unit" not in seen[0]["body"]
    assert not any(k.startswith("x-hermes") for k in seen[-1]["headers"])


def test_sync_client_stream_and_engine_priority() -> None:
    import asyncio
    import threading

    box: dict[str, object] = {}
    ready, done = threading.Event(), threading.Event()

    async def serve() -> None:
        async with replay_server() as (url, seen):
            box["url"], box["seen"] = url, seen
            ready.set()
            while not done.is_set():
                await asyncio.sleep(0.01)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        raw = anthropic.Anthropic(base_url=str(box["url"]), api_key="k", max_retries=0)
        client = hermes.wrap(raw, engine="vllm")  # an Anthropic-compatible vLLM server
        with (
            hermes.run(app="claude-qa") as run,
            client.messages.create(
                model="claude-x", max_tokens=64, messages=MSGS, stream=True
            ) as stream,
        ):
            texts = [e.delta.text for e in stream if e.type == "content_block_delta"]
    finally:
        done.set()
        thread.join(10)
    assert texts == ["four"]
    (unit,) = run.units
    assert (unit.input_tokens, unit.output_tokens, unit.failed) == (13, 9, False)
    seen = box["seen"]
    assert isinstance(seen, list) and isinstance(seen[0]["body"]["priority"], int)
