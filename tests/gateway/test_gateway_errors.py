"""Bad requests never reach an upstream: 400 malformed, 404 unknown model, 413 oversize."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from hermes_sdk.server.config import ApiKey, hash_api_key
from hermes_sdk.server.upstreams import UpstreamConfig
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine
from tests.gateway.support import StartEngine, StartGateway, engine_records


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_request"),
        (b'{"messages": []}', 400, "invalid_request"),
        (b'{"model": 7}', 400, "invalid_request"),
        (b'{"model": "nope", "messages": []}', 404, "model_not_found"),
    ],
)
async def test_bad_requests_get_json_errors(
    stack: tuple[StartEngine, StartGateway], payload: bytes, status: int, code: str
) -> None:
    engine, gateway = stack
    url_a, url_b = await engine(model="a"), await engine(model="b")
    gw = await gateway(UpstreamConfig("ua", url_a), UpstreamConfig("ub", url_b))
    async with aiohttp.ClientSession() as s:
        for path in ("chat/completions", "completions", "embeddings"):
            async with s.post(f"{gw.url}/{path}", data=payload) as r:
                assert r.status == status
                assert (await r.json())["error"]["code"] == code
    assert await engine_records(url_a) == [] and await engine_records(url_b) == []
    assert not gw.gateway.calls


async def test_oversize_body_is_413(stack: tuple[StartEngine, StartGateway]) -> None:
    engine, gateway = stack
    url = await engine()
    gw = await gateway(UpstreamConfig("up", url), max_body_bytes=4096)
    huge = {"model": "m", "messages": [{"role": "user", "content": "x" * 10_000}]}
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/chat/completions", json=huge) as r,
    ):
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "body_too_large"
    assert await engine_records(url) == []


async def test_routing_by_model_across_upstreams(stack: tuple[StartEngine, StartGateway]) -> None:
    engine, gateway = stack
    url_a, url_b = await engine(model="a"), await engine(model="b")
    gw = await gateway(UpstreamConfig("ua", url_a), UpstreamConfig("ub", url_b, models=("b",)))
    async with aiohttp.ClientSession() as s:
        for model in ("a", "b", "b"):
            body = {"model": model, "prompt": "x", "max_tokens": 1}
            async with s.post(f"{gw.url}/completions", json=body) as r:
                assert r.status == 200
        async with s.get(f"{gw.url}/models") as r:
            assert [m["id"] for m in (await r.json())["data"]] == ["a", "b"]
    assert len(await engine_records(url_a)) == 1
    assert len(await engine_records(url_b)) == 2
    assert [c.upstream for c in gw.gateway.calls] == ["ua", "ub", "ub"]


async def test_upstream_started_after_gateway_is_found(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url_a = await engine(model="a")
    late = f"http://127.0.0.1:{port}/v1"
    gw = await gateway(UpstreamConfig("ua", url_a), UpstreamConfig("ub", late))
    body = {"model": "b", "prompt": "x", "max_tokens": 1}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{gw.url}/completions", json=body) as r:
            assert r.status == 404  # "ub" is down, so nobody serves "b"
        cfg = SimEngineConfig(model="b", step_base_s=0.001)
        async with serve_sim_engine(cfg, port=port):
            gw.gateway._discovered_at_s = float("-inf")  # skip the re-discovery rate limit
            async with s.post(f"{gw.url}/completions", json=body) as r:
                assert r.status == 200


async def test_api_keys_gate_the_gateway_and_set_the_tenant(
    stack: tuple[StartEngine, StartGateway],
) -> None:
    engine, gateway = stack
    url = await engine()
    keys = (ApiKey(hash_api_key("key-a"), "tenant-a"),)
    gw = await gateway(UpstreamConfig("up", url), api_keys=keys)
    body = {"model": "m", "prompt": "x", "max_tokens": 1}
    async with aiohttp.ClientSession() as s:
        for headers, status in (({}, 401), ({"Authorization": "Bearer nope"}, 401)):
            async with s.post(f"{gw.url}/completions", json=body, headers=headers) as r:
                assert r.status == status
                assert (await r.json())["error"]["code"] == "unauthorized"
        auth = {"Authorization": "Bearer key-a", "X-Hermes-App": "qa", "X-Hermes-Run": "r1"}
        async with s.post(f"{gw.url}/completions", json=body, headers=auth) as r:
            assert r.status == 200
    (call,) = gw.gateway.calls
    assert call.tenant == "tenant-a"
    (seen,) = await engine_records(url)
    assert "authorization" not in seen["headers"]  # the tenant's key never leaves the gateway
