"""Client-side hint encoding: what the official openai client actually sends to an engine."""

from __future__ import annotations

import aiohttp
import pytest
from openai import AsyncOpenAI

from hermes_sdk.client.hints import Hints
from hermes_sdk.client.openai_kwargs import OpenAIKwargs, openai_kwargs
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine


def test_no_hints_means_no_change() -> None:
    assert openai_kwargs() == {"extra_headers": {}, "extra_body": {}}


def test_hints_encode_headers_and_engine_priority() -> None:
    hints = Hints(app="qa", run_id="r1", unit="draft", deadline_s=30.0, rank_s=0.5)
    vllm = openai_kwargs(hints)
    assert vllm["extra_headers"]["X-Hermes-App"] == "qa"
    assert vllm["extra_headers"]["X-Hermes-Run"] == "r1"
    assert vllm["extra_body"] == {"priority": hints.engine_priority("vllm")}
    sglang = openai_kwargs(hints, engine="sglang")
    assert sglang["extra_body"] == {"priority": 63 - vllm["extra_body"]["priority"]}
    assert openai_kwargs(hints, engine="openai")["extra_body"] == {}
    unranked = openai_kwargs(Hints(app="qa", run_id="r2"))
    assert unranked["extra_body"] == {"priority": 32}  # middle level: neither jumps nor starves


async def test_openai_client_sends_priority_and_headers_to_engine() -> None:
    hints = Hints(app="qa", run_id="r1", unit="draft", rank_s=0.02)
    async with serve_sim_engine(SimEngineConfig(model="m", step_base_s=0.001)) as url:
        client = AsyncOpenAI(base_url=url, api_key="k", max_retries=0)
        await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=1,
            **openai_kwargs(hints),
        )
        await client.close()
        async with (
            aiohttp.ClientSession() as s,
            s.get(url.removesuffix("/v1") + "/debug/requests") as r,
        ):
            (record,) = (await r.json())["requests"]
    assert record["priority"] == hints.engine_priority("vllm")
    assert record["headers"]["x-hermes-run"] == "r1"
    assert record["headers"]["x-hermes-unit"] == "draft"


def test_current_hints_of_the_running_unit_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import hermes_sdk as hermes

    monkeypatch.delenv("HERMES_DISABLED", raising=False)
    hermes.configure(store="memory://", enabled=True)
    try:

        @hermes.llm(backend="gpt")
        def draft() -> tuple[Hints | None, OpenAIKwargs]:
            return hermes.current_hints(), openai_kwargs()

        with hermes.run("doc-qa", run_id="run-7", deadline_s=30.0):
            hints, kwargs = draft()
        assert openai_kwargs() == {"extra_headers": {}, "extra_body": {}}  # outside: no hints
    finally:
        hermes.configure(store="memory://", enabled=True)
    assert hints is not None
    assert kwargs["extra_headers"] == hints.headers()
    assert kwargs["extra_headers"]["X-Hermes-App"] == "doc-qa"
    assert kwargs["extra_headers"]["X-Hermes-Run"] == "run-7"
    assert kwargs["extra_headers"]["X-Hermes-Unit"] == "draft"
    assert kwargs["extra_body"] == {"priority": hints.engine_priority("vllm")}
