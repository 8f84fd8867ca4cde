"""An instrumented app (hermes.run + @hermes.llm, events to the server) behind the gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from openai import AsyncOpenAI

import hermes_sdk as hermes
from hermes_sdk.server.upstreams import UpstreamConfig
from tests.gateway.support import StartEngine, StartGateway, engine_records, learn


@pytest.fixture
def restore_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HERMES_DISABLED", raising=False)
    yield
    hermes.configure(store="memory://", enabled=True)


async def test_gateway_call_nests_under_the_apps_llm_unit(
    stack: tuple[StartEngine, StartGateway], restore_config: None
) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url, engine="vllm"))
    learn(gw.scheduler, "qa", 3.0)
    hermes.configure(scheduler_url=gw.url.removesuffix("/v1"), store="memory://", enabled=True)
    client = AsyncOpenAI(base_url=gw.url, api_key="k", max_retries=0)
    seen_during: dict[str, object] = {}

    @hermes.llm(backend="up")
    async def answer(question: str) -> str:
        assert await asyncio.to_thread(hermes.flush, 5.0)  # run_start/unit_start reach the server
        out = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": question}],
            max_tokens=3,
            **hermes.openai_kwargs(),
        )
        run = gw.scheduler.run("default", "r-1")
        assert run is not None
        seen_during.update(node=run.node, attained_s=run.attained_s, units=len(run.units))
        return out.choices[0].message.content or ""

    async with hermes.run("qa", run_id="r-1"):
        await answer("what is hermes?")
    await client.close()
    assert await asyncio.to_thread(hermes.flush, 5.0)  # run_end delivered while the server runs
    assert gw.scheduler.run("default", "r-1") is None  # the run ended on the server too
    # The gateway's unit was nested under the app's own "answer" unit: one stage, no double count.
    assert seen_during == {"node": "answer", "attained_s": 0.0, "units": 1}
    (call,) = gw.gateway.calls
    assert (call.app, call.run_id, call.unit) == ("qa", "r-1", "answer")
    assert call.rank_s is not None and call.output_tokens == 3
    (record,) = await engine_records(url)
    assert record["priority"] == call.priority
