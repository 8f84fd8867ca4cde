"""LiteLLM end to end: its Router in front of the simulated engine, fed by the ``litellm`` encoding.

The Router reads ``priority`` (lower first, ``litellm.scheduler.FlowItem``: 0..255) into its
scheduler queue and does not forward it; the ``X-Hermes-*`` headers reach the engine. The queue
order is checked on LiteLLM's own scheduler holding two runs' requests at once.
"""

from __future__ import annotations

import os

import aiohttp
import pytest

from hermes_sdk.client.hints import Hints
from hermes_sdk.client.openai_kwargs import openai_kwargs
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
litellm = pytest.importorskip("litellm")
scheduler_mod = pytest.importorskip("litellm.scheduler")


def _kwargs(run: str, rank_s: float) -> tuple[int, dict[str, str]]:
    kw = openai_kwargs(Hints(app="qa", run_id=run, rank_s=rank_s), engine="litellm")
    priority = kw["extra_body"]["priority"]
    assert isinstance(priority, int) and 0 <= priority <= 255  # LiteLLM's FlowItem range
    return priority, kw["extra_headers"]


async def test_router_queues_by_hermes_priority_and_reaches_the_engine() -> None:
    config = SimEngineConfig(model="m", step_base_s=0.001)
    async with serve_sim_engine(config) as url:
        router = litellm.Router(
            model_list=[
                {
                    "model_name": "m",
                    "litellm_params": {
                        "model": "openai/m",
                        "api_base": url,
                        "api_key": "k",
                        "rpm": 1,
                    },
                }
            ],
            polling_interval=0.01,
            timeout=30,
        )
        # LiteLLM's scheduler with two runs queued while the deployment is at its limit (no
        # healthy deployment): the lower Hermes rank (more urgent) is let through first.
        sched = router.scheduler
        slow_p, slow_h = _kwargs("slow", 500.0)
        fast_p, fast_h = _kwargs("fast", 0.05)
        assert fast_p < slow_p
        flow = scheduler_mod.FlowItem
        await sched.add_request(flow(priority=slow_p, request_id="slow", model_name="m"))
        await sched.add_request(flow(priority=fast_p, request_id="fast", model_name="m"))
        slow_item = flow(priority=slow_p, request_id="slow", model_name="m")
        fast_item = flow(priority=fast_p, request_id="fast", model_name="m")
        assert not await sched.poll(slow_item, health_deployments=[])  # arrived first, waits
        assert await sched.poll(fast_item, health_deployments=[])
        assert await sched.poll(slow_item, health_deployments=[])
        # Then the calls themselves, in that order, through the Router to the engine.
        for priority, headers in ((fast_p, fast_h), (slow_p, slow_h)):
            response = await router.acompletion(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=2,
                priority=priority,
                extra_headers=headers,
            )
            assert response.choices[0].message.content
        async with (
            aiohttp.ClientSession() as s,
            s.get(url.removesuffix("/v1") + "/debug/requests") as r,
        ):
            records = (await r.json())["requests"]
    assert [rec["headers"]["x-hermes-run"] for rec in records] == ["fast", "slow"]
    assert all(rec["priority"] == 0 for rec in records)  # consumed by LiteLLM, not forwarded
    assert records[0]["headers"]["x-hermes-rank"] == "0.05"
