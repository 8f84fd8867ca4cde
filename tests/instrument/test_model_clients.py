"""``hermes.wrap`` around the real ``openai`` client, against the simulated engine on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI, AzureOpenAI, OpenAI

import hermes_sdk as hermes
from hermes_sdk.instrument.model_calls import FAILURES
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine
from tests.instrument.model_servers import RESPONSE_USAGE, engine_thread, replay_server

MSGS = [{"role": "user", "content": "what is two plus two?"}]


@pytest.fixture(scope="module")
def engine_url() -> Iterator[str]:
    with engine_thread(SimEngineConfig(model="m", step_base_s=0.001)) as url:
        yield url


def _seen(url: str) -> list[dict[str, Any]]:
    root = url.removesuffix("/v1")
    records: list[dict[str, Any]] = httpx.get(root + "/debug/requests").json()["requests"]
    httpx.delete(root + "/debug/requests")
    return records


def _client(url: str, **kw: Any) -> OpenAI:
    return hermes.wrap(OpenAI(base_url=url, api_key="k", max_retries=0), **kw)


def test_outside_a_run_the_client_is_unchanged(engine_url: str) -> None:
    _seen(engine_url)
    plain = OpenAI(base_url=engine_url, api_key="k", max_retries=0)
    wrapped = _client(engine_url)
    a = plain.chat.completions.create(model="m", messages=MSGS, max_tokens=3)
    b = wrapped.chat.completions.create(model="m", messages=MSGS, max_tokens=3, hermes_unit="x")
    first, second = _seen(engine_url)
    assert first["headers"] == second["headers"] == {"authorization": "Bearer k"}
    assert first["priority"] == second["priority"] == 0
    assert a.choices[0].message.content == b.choices[0].message.content
    assert isinstance(wrapped, OpenAI)


def test_a_call_in_a_run_is_a_unit_carrying_its_hints(engine_url: str) -> None:
    _seen(engine_url)
    client = _client(engine_url, backend="small")
    with hermes.run(app="qa", deadline_s=30) as run:
        out = client.chat.completions.create(model="m", messages=MSGS, max_tokens=4)
    (unit,) = run.units
    assert (unit.name, unit.kind, unit.backend) == ("m", "llm", "small")
    assert out.usage is not None
    assert (unit.input_tokens, unit.output_tokens) == (out.usage.prompt_tokens, 4)
    assert unit.ended and not unit.failed
    (record,) = _seen(engine_url)
    hints = unit.hints()
    assert record["headers"]["x-hermes-app"] == "qa"
    assert record["headers"]["x-hermes-run"] == run.run_id
    assert record["headers"]["x-hermes-unit"] == "m"
    assert record["headers"]["x-hermes-deadline"] == "30"
    assert hints.rank_s is not None
    assert record["priority"] == hints.engine_priority("vllm")
    assert run.path is not None and [s.node for s in run.path.stages] == ["m"]


def test_unit_names_per_call_and_by_rule(engine_url: str) -> None:
    client = _client(engine_url, name=lambda endpoint, kw: f"{endpoint}/{kw.get('max_tokens')}")
    with hermes.run(app="qa") as run:
        client.chat.completions.create(model="m", messages=MSGS, max_tokens=2)
        client.chat.completions.create(model="m", messages=MSGS, max_tokens=2, hermes_unit="plan")
        client.embeddings.create(model="m", input="two plus two")
        typed = {"x-hermes-unit": "review"}  # for type checkers: the caller's own header
        client.chat.completions.create(model="m", messages=MSGS, extra_headers=typed)
    assert [(u.name, u.kind) for u in run.units] == [
        ("chat.completions/2", "llm"),
        ("plan", "llm"),
        ("embeddings/None", "retriever"),
        ("review", "llm"),
    ]
    default = _client(engine_url)
    with hermes.run(app="qa") as run:
        out = default.embeddings.create(model="m", input="two plus two")
    (unit,) = run.units
    assert (unit.name, unit.kind, unit.input_tokens, unit.output_tokens) == (
        "embeddings:m",
        "retriever",
        out.usage.prompt_tokens,
        None,
    )


def test_streams_ask_for_usage_and_hide_the_usage_chunk(engine_url: str) -> None:
    plain = OpenAI(base_url=engine_url, api_key="k", max_retries=0)
    client = _client(engine_url)
    expected = list(plain.chat.completions.create(model="m", messages=MSGS, stream=True))
    with hermes.run(app="qa") as run:
        stream = client.chat.completions.create(model="m", messages=MSGS, stream=True)
        assert not run.units[0].ended  # measured until the stream ends
        chunks = list(stream)
    assert [c.model_dump(exclude={"id", "created", "usage"}) for c in chunks] == [
        c.model_dump(exclude={"id", "created", "usage"}) for c in expected
    ]
    (unit,) = run.units
    generated = sum(1 for c in expected if c.choices and c.choices[0].delta.content)
    assert unit.ended and not unit.failed
    assert unit.output_tokens == generated and unit.input_tokens is not None


def test_streams_keep_the_callers_own_usage_choice(engine_url: str) -> None:
    client = _client(engine_url)
    with hermes.run(app="qa") as run:
        with client.chat.completions.create(
            model="m", messages=MSGS, max_tokens=3, stream=True,
            stream_options={"include_usage": True},
        ) as stream:  # fmt: skip
            mine = list(stream)
        off = client.completions.create(
            model="m", prompt="hi", max_tokens=3, stream=True,
            stream_options={"include_usage": False},
        )  # fmt: skip
        plain = list(off)
    assert mine[-1].choices == [] and mine[-1].usage is not None  # the caller asked: kept
    assert all(c.usage is None for c in plain)
    first, second = run.units
    assert (first.output_tokens, second.output_tokens) == (3, None)
    assert first.ended and second.ended and not (first.failed or second.failed)


def test_stream_closed_early_is_not_a_failure(engine_url: str) -> None:
    client = _client(engine_url)
    with hermes.run(app="qa") as run:
        stream = client.chat.completions.create(model="m", messages=MSGS, stream=True)
        next(stream)
        stream.close()
    (unit,) = run.units
    assert unit.ended and not unit.failed


def test_a_server_rejecting_stream_options_is_asked_again_without(engine_url: str) -> None:
    root = engine_url.removesuffix("/v1")
    message = "Unrecognized request argument supplied: stream_options"
    body = {"error": {"message": message, "type": "invalid_request_error", "code": 400}}
    httpx.post(root + "/debug/faults", json={"status": 400, "body": body})
    client = _client(engine_url)
    with hermes.run(app="qa") as run:
        chunks = list(client.chat.completions.create(model="m", messages=MSGS, stream=True))
        again = list(client.chat.completions.create(model="m", messages=MSGS, stream=True))
    assert chunks and again
    assert [u.failed for u in run.units] == [False, False]
    assert [u.output_tokens for u in run.units] == [None, None]  # not asked again


def test_errors_are_failed_units_and_reraised_unchanged(engine_url: str) -> None:
    root = engine_url.removesuffix("/v1")
    body = {"error": {"message": "engine overloaded", "type": "server_error", "code": 503}}
    httpx.post(root + "/debug/faults", json={"status": 503, "body": body})
    client = _client(engine_url)
    with hermes.run(app="qa") as run:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="m", messages=MSGS, max_tokens=2)
        client.chat.completions.create(model="m", messages=MSGS, max_tokens=2)
    assert type(caught.value) is openai.InternalServerError
    assert caught.value.status_code == 503 and "engine overloaded" in caught.value.message
    assert [u.failed for u in run.units] == [True, False]
    assert all(u.ended for u in run.units)


def test_raw_and_streaming_response_behave_as_unwrapped(engine_url: str) -> None:
    _seen(engine_url)
    client = _client(engine_url)
    with hermes.run(app="qa") as run:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=MSGS, max_tokens=2
        )
        with client.chat.completions.with_streaming_response.create(
            model="m", messages=MSGS, max_tokens=2
        ) as response:
            lines = list(response.iter_lines())
    assert raw.http_response.status_code == 200
    completion = raw.parse()
    assert completion.usage is not None and completion.usage.completion_tokens == 2
    assert response.status_code == 200 and '"chat.completion"' in "".join(lines)
    assert run.units == []  # their bodies belong to the caller: not measured
    records = _seen(engine_url)
    assert [r["headers"]["x-hermes-run"] for r in records] == [run.run_id] * 2  # but hinted


def test_copies_are_wrapped_and_wrapping_twice_is_harmless(engine_url: str) -> None:
    client = hermes.wrap(_client(engine_url))
    with hermes.run(app="qa") as run:
        client.with_options(timeout=5).completions.create(model="m", prompt="hi", max_tokens=2)
        client.chat.completions.create(model="m", messages=MSGS, max_tokens=2)
    assert [(u.name, u.output_tokens) for u in run.units] == [("m", 2), ("m", 2)]


def test_hermes_side_failures_fail_open(engine_url: str) -> None:
    def broken(endpoint: str, kwargs: object) -> str:
        raise RuntimeError("name rule bug")

    client = _client(engine_url, name=broken)
    before = FAILURES.count
    with hermes.run(app="qa") as run:
        out = client.chat.completions.create(model="m", messages=MSGS, max_tokens=2)
    assert out.choices[0].message.content
    assert FAILURES.count == before + 1
    (unit,) = run.units
    assert unit.name == "chat.completions" and unit.output_tokens == 2


def test_wrap_rejects_what_it_cannot_wrap() -> None:
    with pytest.raises(TypeError, match=r"hermes\.wrap needs"):
        hermes.wrap(object())
    with pytest.raises(hermes.GraphError):
        hermes.wrap(OpenAI(api_key="k"), backend="")
    with pytest.raises(ValueError, match="levels"):
        hermes.wrap(OpenAI(api_key="k"), levels=0)


def test_hosted_apis_get_headers_but_no_priority_field() -> None:
    from hermes_sdk.instrument.model_clients import WRAPPED_MARK

    def engine_of(client: OpenAI) -> str:
        settings = getattr(client.chat.completions.create, WRAPPED_MARK)
        return str(settings.engine)

    hosted = hermes.wrap(OpenAI(api_key="k"))
    azure = hermes.wrap(AzureOpenAI(api_key="k", api_version="2024-10-21",
                                    azure_endpoint="https://x.openai.azure.com"))  # fmt: skip
    local = hermes.wrap(OpenAI(api_key="k", base_url="http://127.0.0.1:1/v1"))
    chosen = hermes.wrap(OpenAI(api_key="k"), engine="sglang")
    assert [engine_of(c) for c in (hosted, azure, local, chosen)] == [
        "openai",
        "openai",
        "vllm",
        "sglang",
    ]


async def test_async_client_calls_streams_and_errors() -> None:
    config = SimEngineConfig(model="m", step_base_s=0.001)
    async with serve_sim_engine(config) as url:
        client = hermes.wrap(AsyncOpenAI(base_url=url, api_key="k", max_retries=0))
        async with hermes.run(app="qa") as run:
            out = await client.chat.completions.create(model="m", messages=MSGS, max_tokens=3)
            stream = await client.chat.completions.create(
                model="m", messages=MSGS, max_tokens=4, stream=True
            )
            chunks = [c async for c in stream]
            embedded = await client.embeddings.create(model="m", input=["a b", "c"])
            async with httpx.AsyncClient() as http:
                body = {"error": {"message": "bad", "type": "invalid_request_error"}}
                await http.post(url.removesuffix("/v1") + "/debug/faults",
                                json={"status": 400, "body": body})  # fmt: skip
            with pytest.raises(openai.BadRequestError):
                await client.chat.completions.create(model="m", messages=MSGS, max_tokens=1)
            early = await client.chat.completions.create(model="m", messages=MSGS, stream=True)
            async with early:
                await early.__anext__()
        # outside any run: no hints
        await client.chat.completions.create(model="m", messages=MSGS, max_tokens=1)
        async with httpx.AsyncClient() as http:
            records = (await http.get(url.removesuffix("/v1") + "/debug/requests")).json()
        await client.close()
    assert out.usage is not None and out.usage.completion_tokens == 3
    assert all(c.choices for c in chunks)  # the injected usage chunk is not shown
    assert embedded.usage.prompt_tokens == 3
    units = [(u.name, u.output_tokens, u.failed, u.ended) for u in run.units]
    assert units == [
        ("m", 3, False, True),
        ("m", 4, False, True),
        ("embeddings:m", None, False, True),
        ("m", None, True, True),
        ("m", None, False, True),
    ]
    generated = records["requests"]
    assert [bool(r["headers"].get("x-hermes-run")) for r in generated] == [True] * 4 + [False]


async def test_responses_api_sync_shapes_and_streams() -> None:
    async with replay_server() as (url, seen):
        client = hermes.wrap(AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0))
        async with hermes.run(app="qa") as run:
            response = await client.responses.create(model="gpt-x", input="2+2?")
            stream = await client.responses.create(model="gpt-x", input="2+2?", stream=True)
            events = [e.type async for e in stream]
        await client.close()
    assert response.output_text == "four"
    assert events == ["response.created", "response.output_text.delta", "response.completed"]
    expected = (RESPONSE_USAGE["input_tokens"], RESPONSE_USAGE["output_tokens"])
    assert [(u.input_tokens, u.output_tokens) for u in run.units] == [expected, expected]
    assert "stream_options" not in seen[1]["body"]  # the Responses API reports usage itself
    assert seen[0]["headers"]["x-hermes-unit"] == "gpt-x"
    assert isinstance(seen[0]["body"]["priority"], int)


def test_a_call_inside_a_decorated_unit_is_nested_in_it(engine_url: str) -> None:
    client = _client(engine_url)

    @hermes.llm
    def draft() -> str:
        out = client.chat.completions.create(model="m", messages=MSGS, max_tokens=3)
        return out.choices[0].message.content or ""

    with hermes.run(app="qa") as run:
        draft()
    outer, inner = run.units
    assert inner.parent is outer and inner.name == "m"
    assert run.path is not None
    (stage,) = run.path.stages  # the nested call does not move the run's node
    assert stage.node == "draft" and stage.calls[0].output_tokens == 3
