"""Hosted model APIs through the gateway: the sim engine as a rate-limited provider, 429 storms
absorbed without losing or duplicating a request, headers learned, upstream keys kept secret."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from openai import AsyncOpenAI, RateLimitError

from hermes_sdk.server.gateway_budget import BUDGETS
from hermes_sdk.server.provider_limits import parse_duration_s
from hermes_sdk.server.upstreams import UpstreamConfig, parse_upstream_flag
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine
from hermes_sdk.sim.provider import RateLimitConfig, format_duration, parse_rate_limit
from tests.gateway.support import FAST_ENGINE, StartGateway, engine_records

SECRET = "sk-hermes-test-7f3a9c1e5b2d4068"
PROMPT_WORDS = 140
"""~150 tokens a request: 20 of them take the provider 3 s to refill."""


@pytest.fixture
async def provider() -> AsyncIterator[str]:
    """A sim engine limited like a hosted provider: 60,000 tokens/min (1,000/s), no RPM limit."""
    config = SimEngineConfig(model="m", **FAST_ENGINE)  # type: ignore[arg-type]
    async with serve_sim_engine(config, rate_limit=RateLimitConfig(tpm=60_000)) as url:
        yield url


async def _ratelimit(url: str) -> dict[str, int]:
    async with aiohttp.ClientSession() as s, s.get(url[:-3] + "/debug/ratelimit") as r:
        stats: dict[str, int] = await r.json()
    return stats


async def _drain(url: str) -> None:
    """Spend the provider's whole minute with one direct request (60,000 tokens)."""
    body = {"model": "m", "prompt": " ".join(["w"] * 59_995), "max_tokens": 5}
    async with aiohttp.ClientSession() as s, s.post(url + "/completions", json=body) as r:
        assert r.status == 200 and r.headers["x-ratelimit-remaining-tokens"] == "0"


def _prompt(i: int) -> str:
    return f"request {i} " + " ".join(["word"] * PROMPT_WORDS)


def test_upstream_flag_budget_options() -> None:
    up = parse_upstream_flag("openai=https://api.openai.com/v1,rpm=500,tpm=30000,api_key_env=K")
    assert (up.rpm, up.tpm, up.api_key_env, up.budgeted) == (500.0, 30000.0, "K", True)
    assert not parse_upstream_flag("local=http://h:8000").budgeted


async def test_sim_provider_headers_and_429(provider: str) -> None:
    body = {"model": "m", "prompt": " ".join(["w"] * 59_000), "max_tokens": 10}
    async with aiohttp.ClientSession() as s:
        async with s.post(provider + "/completions", json=body) as r:
            assert r.status == 200
            assert r.headers["x-ratelimit-limit-tokens"] == "60000"
            assert r.headers["x-ratelimit-remaining-tokens"] == "990"
            assert r.headers["x-ratelimit-reset-tokens"].endswith("s")
        more = {**body, "prompt": " ".join(["w"] * 1990)}  # 2,000 tokens: ~1 s short
        async with s.post(provider + "/completions", json=more) as r:
            assert r.status == 429
            assert (await r.json())["error"]["code"] == "rate_limit_exceeded"
            assert int(r.headers["Retry-After"]) >= 1
            assert 0 < int(r.headers["retry-after-ms"]) <= 1010
    stats = await _ratelimit(provider)
    assert (stats["accepted"], stats["limited"], stats["tokens"]) == (1, 1, 59_010)


async def test_429_storm_is_absorbed_without_loss_or_duplicates(
    provider: str, stack: tuple[object, StartGateway]
) -> None:
    """The gateway is told a budget 10x the provider's, whose minute another client just spent:
    the wave meets 429s, which the gateway absorbs (learning the real limit from headers) by
    queueing the request again; every app call succeeds, once."""
    _, gateway = stack
    await _drain(provider)
    gw = await gateway(UpstreamConfig("hosted", provider, max_inflight=64, tpm=600_000))
    client = AsyncOpenAI(base_url=gw.url, api_key="tenant-key", max_retries=0, timeout=60.0)
    n = 20

    async def call(i: int) -> str:
        out = await client.completions.create(model="m", prompt=_prompt(i), max_tokens=5)
        assert out.usage is not None
        return out.id

    ids = await asyncio.gather(*(call(i) for i in range(n)))
    assert len(set(ids)) == n
    stats = await _ratelimit(provider)
    assert stats["limited"] > 0  # the storm happened
    assert stats["accepted"] == n + 1  # and each request was served exactly once
    served = [str(r["id"]) for r in await engine_records(provider)]
    assert len(served) == n + 1 and sorted(ids) == sorted(served[1:])
    book = gw.app[BUDGETS]
    assert book.budgets["hosted"].tpm == 60_000  # learned from x-ratelimit-limit-tokens
    calls = list(gw.gateway.calls)
    assert len([c for c in calls if c.status == 200]) == n
    assert max(c.waited_s for c in calls) > 0  # retries counted as waiting, not as service
    metrics = gw.scheduler.metrics.render().decode()
    absorbed = 'hermes_gateway_upstream_429_total{outcome="absorbed",upstream="hosted"} '
    assert float(metrics.split(absorbed)[1].split()[0]) == stats["limited"]
    assert 'outcome="passed"' not in metrics
    # each 429 sent its request back through the admission queue (its rank, the reservation),
    # not around it: the queue granted every request once plus once per absorbed 429
    assert gw.scheduler.queue("hosted").granted == n + stats["limited"]
    await client.close()


async def test_a_429_reaches_the_app_only_after_its_timeout(
    provider: str, stack: tuple[object, StartGateway]
) -> None:
    _, gateway = stack
    up = UpstreamConfig("hosted", provider, max_inflight=8, tpm=10**7, timeout_s=1.0)
    gw = await gateway(up)
    client = AsyncOpenAI(base_url=gw.url, api_key="tenant-key", max_retries=0, timeout=60.0)
    # spend the provider's whole minute, then ask again: it would take ~30 s to fit
    huge = " ".join(["w"] * 59_990)
    await client.completions.create(model="m", prompt=huge, max_tokens=10)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(RateLimitError) as caught:
        await client.completions.create(model="m", prompt=_prompt(0) * 10, max_tokens=5)
    assert loop.time() - start >= 0.9  # held (not failed fast) up to the upstream's timeout
    # it waited in the queue for the budget the first answer's headers taught the gateway
    assert caught.value.code == "queue_timeout"
    assert int(caught.value.response.headers["Retry-After"]) >= 1
    assert (await _ratelimit(provider))["accepted"] == 1
    await client.close()


async def test_upstream_key_never_leaks(
    provider: str,
    stack: tuple[object, StartGateway],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("HERMES_TEST_UPSTREAM_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    _, gateway = stack
    up = parse_upstream_flag(f"hosted={provider},tpm=600000,api_key_env=HERMES_TEST_UPSTREAM_KEY")
    down = UpstreamConfig(
        "down", "http://127.0.0.1:9", models=("gone",), api_key_env="HERMES_TEST_UPSTREAM_KEY"
    )
    gw = await gateway(up, down)
    await _drain(provider)
    seen: list[str] = [repr(up), repr(down)]
    async with aiohttp.ClientSession() as s:

        async def post(body: dict[str, object], stream: bool = False) -> None:
            async with s.post(f"{gw.url}/completions", json={**body, "stream": stream}) as r:
                seen.append(str(r.status) + repr(dict(r.headers)) + await r.text())

        await asyncio.gather(*(post({"model": "m", "prompt": _prompt(i)}) for i in range(10)))
        await post({"model": "m", "prompt": "hi", "max_tokens": 3}, stream=True)
        await post({"model": "gone", "prompt": "hi"})  # upstream down: 502
        await post({"model": "nope", "prompt": "hi"})  # 404
        await post({"model": "m"})  # the provider's 400
        base = gw.url[:-3]
        for path in ("/metrics", "/v1/ui/state", "/v1/models", "/healthz", "/v1/backends"):
            async with s.get(base + path) as r:
                seen.append(await r.text())
    stats = await _ratelimit(provider)
    assert stats["limited"] > 0
    records = (await engine_records(provider))[1:]  # the first is the direct drain
    auth = {r["headers"].get("authorization") for r in records}  # type: ignore[attr-defined]
    assert auth == {f"Bearer {SECRET}"}  # the provider got the key from the environment
    seen.append(caplog.text)
    seen.extend(repr(c) for c in gw.gateway.calls)
    leaked = [text[:80] for text in seen if SECRET in text or SECRET[3:] in text]
    assert leaked == []
    assert "502" in "".join(seen)  # the failure paths were taken


def test_sim_rate_limit_flag_and_durations() -> None:
    assert parse_rate_limit("rpm=600,tpm=60000") == RateLimitConfig(rpm=600, tpm=60000)
    assert parse_rate_limit("tpm=100,window_s=0.5") == RateLimitConfig(tpm=100, window_s=0.5)
    for bad in ("rpm=x", "tpm", "foo=1", "tpm=0", "tpm=10,window_s=120"):
        with pytest.raises(ValueError):
            parse_rate_limit(bad)
    assert [format_duration(s) for s in (360.0, 1.0, 0.02, 1.5, 61.25)] == [
        "6m0s",
        "1s",
        "20ms",
        "1.5s",
        "1m1.25s",
    ]
    assert all(parse_duration_s(format_duration(s)) == pytest.approx(s) for s in (0.5, 75.5))
