"""`hermes sim-engine`'s prefix KV cache: reuse across chat turns, LRU, X-Hermes-Retain-S pins."""

from __future__ import annotations

import aiohttp
from openai import AsyncOpenAI

from hermes_sdk.sim.engine import SimEngineConfig, count_tokens, serve_sim_engine


async def _kv(url: str) -> dict[str, int]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(url.removesuffix("/v1") + "/debug/kv") as r,
    ):
        stats: dict[str, int] = await r.json()
    return stats


async def _turn(
    client: AsyncOpenAI, history: list[dict[str, str]], retain: str | None = None
) -> int:
    """One chat turn; appends the answer to ``history``; returns the cached prompt tokens."""
    headers = {"X-Hermes-Retain-S": retain} if retain is not None else {}
    out = await client.chat.completions.create(
        model="m",
        messages=history,
        max_tokens=4,
        extra_headers=headers,  # type: ignore[arg-type]
    )
    history.append({"role": "assistant", "content": out.choices[0].message.content or ""})
    details = out.usage.prompt_tokens_details if out.usage else None
    return (details.cached_tokens or 0) if details else 0


async def test_next_turn_reuses_the_previous_context() -> None:
    async with serve_sim_engine(SimEngineConfig(model="m", kv_cache_tokens=10_000)) as url:
        client = AsyncOpenAI(base_url=url, api_key="k", max_retries=0)
        history = [{"role": "user", "content": "plan the trip to the mountains"}]
        assert await _turn(client, history) == 0  # cold
        context = "\n".join(f"{m['role']}: {m['content']}" for m in history)
        history.append({"role": "user", "content": "tool says: sunny"})
        assert await _turn(client, history) == count_tokens(context)
        stats = await _kv(url)
        assert stats["hits"] == 1 and stats["saved_tokens"] == count_tokens(context)
        assert stats["lookups"] == 2 and stats["entries"] == 2
        other = [{"role": "user", "content": "something else entirely"}]
        assert await _turn(client, other) == 0  # no shared prefix


async def test_retained_prefix_survives_pressure_that_lru_would_not() -> None:
    async def run(retain_first: str | None) -> int:
        # room for about two conversations' contexts
        config = SimEngineConfig(model="m", kv_cache_tokens=60)
        async with serve_sim_engine(config) as url:
            client = AsyncOpenAI(base_url=url, api_key="k", max_retries=0)
            first = [{"role": "user", "content": "alpha " * 12}]
            await _turn(client, first, retain_first)  # its tool call takes a while...
            for i in range(2):  # ...while two other runs pass through the engine
                await _turn(client, [{"role": "user", "content": f"other{i} " * 12}], "0")
            first.append({"role": "user", "content": "tool result"})
            return await _turn(client, first)

    assert await run(None) == 0  # LRU: the oldest context was evicted
    assert await run("60") > 0  # pinned for 60 s: kept, the next turn reuses it
    assert await run("0") == 0  # "do not keep": first to go
