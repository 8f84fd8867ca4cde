"""Hint encodings for Dynamo, GIE (llm-d) and LiteLLM beside vLLM/SGLang: names, polarity, trust.

Dynamo and GIE do not run on this machine (Dynamo's frontend is a Rust/NATS/etcd stack, GIE an
Envoy ext-proc in Kubernetes), so their tests check the request shapes documented in their own
code and docs (``docs/protocol.md`` cites them), sent by the real ``openai`` client and by the
real gateway to a real recording server on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from openai import AsyncOpenAI

from hermes_sdk.client.encodings import (
    ENGINE_NAMES,
    GIE_FAIRNESS_HEADER,
    GIE_OBJECTIVE_HEADER,
    GIE_TTFT_SLO_HEADER,
    encode,
    gie_objectives,
)
from hermes_sdk.client.hints import Hints
from hermes_sdk.client.openai_kwargs import openai_kwargs
from hermes_sdk.server.upstreams import UpstreamConfig, parse_upstream_flag
from tests.gateway.support import StartEngine, StartGateway, learn

RANKS = [None, 0.001, 0.01, 0.05, 0.3, 1.0, 4.0, 30.0, 200.0, 5e3, 1e4, 1e6]
RANKED = [r for r in RANKS if r is not None]


def _hints(rank_s: float | None = 1.0, **extra: object) -> Hints:
    return Hints(app="qa", run_id="r1", rank_s=rank_s, **extra)  # type: ignore[arg-type]


def _urgency(engine: str, rank_s: float | None) -> int:
    """A number that grows with how urgent ``engine`` is told the call is."""
    enc = encode(_hints(rank_s), engine)
    if engine in ("vllm", "litellm"):
        return -int(enc.body["priority"])  # type: ignore[call-overload]
    if engine == "sglang":
        return int(enc.body["priority"])  # type: ignore[call-overload]
    if engine == "dynamo":
        return int(enc.body["nvext"]["agent_hints"]["priority"])  # type: ignore[index]
    assert engine == "gie"
    return -int(enc.headers[GIE_OBJECTIVE_HEADER].rsplit("-", 1)[1])


@pytest.mark.parametrize("engine", ["vllm", "sglang", "litellm", "dynamo", "gie"])
def test_monotone_in_rank(engine: str) -> None:
    urgency = [_urgency(engine, r) for r in RANKED]
    assert urgency == sorted(urgency, reverse=True)  # a lower rank is never less urgent
    assert urgency[0] > urgency[-1]


def test_exact_fields_and_polarity() -> None:
    urgent, lazy = _hints(0.01), _hints(1e4)
    # vLLM and LiteLLM: body `priority`, lower first
    for engine in ("vllm", "litellm"):
        assert encode(urgent, engine).body == {"priority": 0}
        assert encode(lazy, engine).body == {"priority": 63}
    # SGLang: higher first
    assert encode(urgent, "sglang").body == {"priority": 63}
    # Dynamo: nvext.agent_hints.priority (i32, higher = more important), osl (u32)
    dyn = encode(_hints(0.01, predicted_output_tokens=300, retain_s=12.5), "dynamo").body
    assert dyn == {
        "nvext": {
            "agent_hints": {"priority": 63, "osl": 300},
            "cache_control": {"type": "ephemeral", "ttl": "13"},
        }
    }
    assert encode(lazy, "dynamo").body == {"nvext": {"agent_hints": {"priority": 0}}}
    # GIE: three headers, objective band 0 is the most urgent
    gie = encode(_hints(0.01, tenant="acme", deadline_s=2.5), "gie")
    assert gie.body == {}
    assert gie.headers[GIE_FAIRNESS_HEADER] == "acme"
    assert gie.headers[GIE_OBJECTIVE_HEADER] == "hermes-band-0"
    assert gie.headers[GIE_TTFT_SLO_HEADER] == "2500"
    assert encode(lazy, "gie").headers[GIE_OBJECTIVE_HEADER] == "hermes-band-3"
    assert (GIE_FAIRNESS_HEADER, GIE_OBJECTIVE_HEADER, GIE_TTFT_SLO_HEADER) == (
        "x-gateway-inference-fairness-id",
        "x-gateway-inference-objective",
        "x-slo-ttft-ms",
    )
    # OpenAI: headers only
    assert encode(urgent, "openai").body == {}
    # the retention hint for Hermes' own gateway and engines
    assert encode(_hints(retain_s=7.0), "vllm").headers["X-Hermes-Retain-S"] == "7"


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_absent_when_no_hint(engine: str) -> None:
    assert openai_kwargs(None, engine=engine) == {"extra_headers": {}, "extra_body": {}}
    enc = encode(Hints(app="qa", run_id="r1"), engine)  # a run with nothing predicted
    assert "X-Hermes-Retain-S" not in enc.headers
    assert "X-Hermes-Remaining-Llm-Calls" not in enc.headers
    assert not {GIE_FAIRNESS_HEADER, GIE_TTFT_SLO_HEADER} & set(enc.headers)
    if engine == "dynamo":
        assert enc.body == {"nvext": {"agent_hints": {"priority": 31}}}  # middle, no osl/cache
    if engine == "gie":
        assert enc.headers[GIE_OBJECTIVE_HEADER] == "hermes-band-2"  # middle band
    # retention "do not keep" is explicit for Hermes' engines but not a Dynamo pin
    zero = encode(Hints(app="qa", run_id="r1", retain_s=0.0), engine)
    assert zero.headers["X-Hermes-Retain-S"] == "0"
    assert "cache_control" not in str(zero.body)


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="engine must be one of"):
        openai_kwargs(_hints(), engine="tgi")


def test_gie_objectives_manifest_matches_the_bands() -> None:
    yaml = gie_objectives("my-pool")
    assert yaml.count("kind: InferenceObjective") == 4
    assert "name: hermes-band-0\nspec:\n  priority: 3\n" in yaml
    assert "name: hermes-band-3\nspec:\n  priority: 0\n" in yaml
    assert "poolRef:\n    name: my-pool" in yaml


def test_upstream_flag_accepts_the_new_engines() -> None:
    for engine in ("dynamo", "gie", "litellm"):
        up = parse_upstream_flag(f"x=http://h:1,engine={engine}")
        assert up.engine == engine
    assert UpstreamConfig("g", "http://h", engine="gie").priority(0.01) is None
    assert UpstreamConfig("d", "http://h", engine="dynamo").priority(0.01) == 63
    assert UpstreamConfig("l", "http://h", engine="litellm").priority(0.01) == 0


Seen = list[tuple[dict[str, str], dict[str, object]]]


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, Seen]]:
    """A real OpenAI-shaped server on loopback that records each request's headers and body."""
    seen: Seen = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(({k.lower(): v for k, v in request.headers.items()}, body))
        message = {"role": "assistant", "content": "ok"}
        usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
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


async def test_openai_client_sends_the_documented_dynamo_shape(
    recorder: tuple[str, Seen],
) -> None:
    url, seen = recorder
    client = AsyncOpenAI(base_url=url, api_key="k", max_retries=0)
    hints = _hints(0.05, predicted_output_tokens=1024, retain_s=600.0, tenant="acme")
    for engine in ("dynamo", "gie"):
        await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            **openai_kwargs(hints, engine=engine),
        )
    (_, dynamo_body), (gie_headers, gie_body) = seen
    # Dynamo's documented request (docs/components/frontend/nvext.md): nvext at the top level,
    # agent_hints.{priority: i32, osl: u32}, cache_control.{type: "ephemeral", ttl: "600"}
    nvext = dynamo_body["nvext"]
    assert isinstance(nvext, dict)
    agent = nvext["agent_hints"]
    assert isinstance(agent["priority"], int) and -(2**31) <= agent["priority"] < 2**31
    assert agent["osl"] == 1024
    assert nvext["cache_control"] == {"type": "ephemeral", "ttl": "600"}
    assert dynamo_body["messages"] == [{"role": "user", "content": "hi"}]
    assert "priority" not in dynamo_body
    # GIE reads headers only; the body is the plain OpenAI request
    assert gie_headers[GIE_FAIRNESS_HEADER] == "acme"
    assert gie_headers[GIE_OBJECTIVE_HEADER].startswith("hermes-band-")
    assert set(gie_body) == {"model", "messages"}


@pytest.mark.parametrize("engine", ["dynamo", "gie", "litellm"])
async def test_gateway_encodes_server_rank_and_never_trusts_the_client(
    stack: tuple[StartEngine, StartGateway], recorder: tuple[str, Seen], engine: str
) -> None:
    _, gateway = stack
    url, seen = recorder
    gw = await gateway(UpstreamConfig("up", url, engine=engine, models=("m",)))
    learn(gw.scheduler, "qa", 2.0)
    assert gw.scheduler.ingest("default", [{"type": "run_start", "run_id": "r1", "app": "qa"}])
    spoof = {
        "X-Hermes-App": "qa",
        "X-Hermes-Run": "r1",
        GIE_OBJECTIVE_HEADER: "critical",
        GIE_FAIRNESS_HEADER: "someone-else",
        "x-dynamo-request-priority": "999",
    }
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "priority": -999,
        "nvext": {"agent_hints": {"priority": 999, "strict_priority": 9, "osl": 5}},
    }
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/chat/completions", json=body, headers=spoof) as r,
    ):
        assert r.status == 200, await r.text()
    ((headers, sent),) = seen
    (call,) = gw.gateway.calls
    assert call.rank_s is not None
    expected = encode(_hints(call.rank_s, tenant="default"), engine)
    assert "x-dynamo-request-priority" not in headers
    if engine == "litellm":
        assert sent["priority"] == expected.body["priority"] == call.priority
    else:
        assert "priority" not in sent
    if engine == "dynamo":
        agent = sent["nvext"]["agent_hints"]  # type: ignore[index]
        want = expected.body["nvext"]["agent_hints"]["priority"]  # type: ignore[index]
        assert agent == {"priority": want, "osl": 5}  # client's osl kept, its priorities not
        assert call.priority == want
    if engine == "gie":
        assert headers[GIE_OBJECTIVE_HEADER] == expected.headers[GIE_OBJECTIVE_HEADER]
        assert headers[GIE_FAIRNESS_HEADER] == "default"  # the authenticated tenant
        assert call.priority is None
    else:
        assert GIE_OBJECTIVE_HEADER not in headers and GIE_FAIRNESS_HEADER not in headers
