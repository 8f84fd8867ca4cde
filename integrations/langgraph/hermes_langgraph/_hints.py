"""Hint delivery: the LLM unit now running in this context, and HTTP hooks that attach its hints.

:class:`~hermes_langgraph.HermesCallbackHandler` sets :data:`CURRENT_LLM_UNIT` in
``on_chat_model_start`` / ``on_llm_start`` and resets it at the end of the call. LangChain runs a
handler's start hook in the context that then performs the model's HTTP request (for sync calls
directly; for async calls because the handler is ``run_inline`` and the request task is created
after the hook), so an httpx request hook sees the unit and can add its ``X-Hermes-*`` headers and
the engine-native ``priority`` to the request body.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from hermes_sdk.client.encodings import encode, merge_body
from hermes_sdk.client.hints import PRIORITY_LEVELS, QUEUE_WAIT_HEADER, Engine, Hints
from hermes_sdk.graph.records import RunState
from hermes_sdk.instrument import current_hints as _instrument_hints
from hermes_sdk.instrument.gateway_discovery import note_gateway_response
from hermes_sdk.instrument.ranking import run_state
from hermes_sdk.instrument.runtime import current_runtime
from hermes_sdk.prewarm.retention import GraphRetention, remaining_llm_calls

if TYPE_CHECKING:
    from hermes_sdk.instrument import UnitHandle

log = logging.getLogger("hermes_langgraph")

CURRENT_LLM_UNIT: contextvars.ContextVar[UnitHandle | None] = contextvars.ContextVar(
    "hermes_langgraph_llm_unit", default=None
)
"""The LLM unit whose model call is executing in this context (``None`` outside model calls)."""


class _Headers(Protocol):
    def __contains__(self, key: object) -> bool: ...
    def __setitem__(self, key: str, value: str) -> None: ...
    def get(self, key: str, default: str | None = None) -> str | None: ...


class HttpRequest(Protocol):
    """The part of an ``httpx.Request`` (or ``httpx2.Request``) the hooks use."""

    @property
    def headers(self) -> _Headers: ...
    @property
    def content(self) -> bytes: ...


def current_hints() -> Hints | None:
    """Hints of the LLM call now running under a graph run, else ``hermes.current_hints()``.

    ``Hints.unit`` names the call's top-level unit (the graph node, i.e. the stage), so a gateway
    that sees ``X-Hermes-Unit`` nests the request under that stage instead of adding one; ``kind``
    stays the call's own (``llm``). Never raises; ``None`` outside any instrumented call.
    """
    try:
        unit = CURRENT_LLM_UNIT.get()
        if unit is not None:
            hints = unit.hints()
            if unit.root is not unit:
                hints = dataclasses.replace(hints, unit=unit.root.name)
            if hints.tenant is None:  # GIE's fairness id
                hints = dataclasses.replace(hints, tenant=unit.run.tenant)
            if hints.retain_s is None and unit.kind == "llm":
                retain, calls = _retention_hints(unit)
                hints = dataclasses.replace(hints, retain_s=retain, remaining_llm_calls=calls)
            return hints
        return _instrument_hints()
    except Exception as exc:
        log.debug("hermes_langgraph: no hints: %r", exc)
        return None


_RETENTION: list[GraphRetention] = []
"""One retention policy per process, over the instrumentation's graph registry."""


def _retention_hints(unit: UnitHandle) -> tuple[float | None, float | None]:
    """Seconds to keep this LLM call's prefix cached after it ends, and the LLM calls the run is
    expected to make after it, from the app's PDGraph (:mod:`hermes_sdk.prewarm.retention`);
    (None, None) without a graph. Never raises."""
    try:
        registry = current_runtime().registry()
        if not _RETENTION or _RETENTION[0].registry is not registry:
            _RETENTION[:] = [GraphRetention(registry)]
        run = unit.run
        state = run_state(run, unit.root)
        after = RunState(state.node, state.visits)
        retain = _RETENTION[0].retain_s(run.app, run.tenant, after, unit.backend, 0.0)
        graph = registry.get(run.app, run.tenant)
        if retain is None or graph is None:
            return retain, None
        return retain, remaining_llm_calls(graph, after)
    except Exception as exc:
        log.debug("hermes_langgraph: no retention hint: %r", exc)
        return None, None


def _with_fields(body: bytes, fields: dict[str, object]) -> bytes | None:
    """``body`` (a JSON object) with the engine ``fields`` added where the caller set none, or
    ``None`` to leave it unchanged."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or not merge_body(payload, fields):
        return None
    return json.dumps(payload, separators=(",", ":")).encode()


def _replace_body(request: HttpRequest, body: bytes) -> None:
    """Swap the (already read) body of an httpx/httpx2 request and fix ``Content-Length``."""
    module = sys.modules[type(request).__module__.split(".")[0]]
    stream_type = getattr(module, "ByteStream", None)
    if stream_type is None:
        return
    request.stream = stream_type(body)  # type: ignore[attr-defined]
    request._content = body  # type: ignore[attr-defined]
    request.headers["Content-Length"] = str(len(body))


def attach_hints(
    request: HttpRequest, *, engine: Engine | str = "vllm", levels: int = PRIORITY_LEVELS
) -> bool:
    """Add the current unit's ``X-Hermes-*`` headers and ``engine``'s fields to ``request``.

    ``engine`` names the stack (see :mod:`hermes_sdk.client.encodings`: body ``priority`` for
    vLLM/SGLang/LiteLLM, ``nvext`` for Dynamo, headers for GIE). Headers and body fields the
    caller set already are kept; the body is changed only for JSON object bodies. Returns
    whether hints were attached; never raises.
    """
    try:
        hints = current_hints()
        if hints is None:
            return False
        encoded = encode(hints, engine, levels=levels)
        for name, value in encoded.headers.items():
            if name not in request.headers:
                request.headers[name] = value
        content_type = request.headers.get("Content-Type") or ""
        if encoded.body and "json" in content_type:
            body = _with_fields(request.content, encoded.body)
            if body is not None:
                _replace_body(request, body)
        return True
    except Exception as exc:
        log.debug("hermes_langgraph: hints not attached: %r", exc)
        return False


def httpx_request_hook(
    *, engine: Engine | str = "vllm", levels: int = PRIORITY_LEVELS
) -> Callable[[HttpRequest], None]:
    """A sync httpx ``event_hooks["request"]`` entry that calls :func:`attach_hints`."""

    def hook(request: HttpRequest) -> None:
        attach_hints(request, engine=engine, levels=levels)

    return hook


def async_httpx_request_hook(
    *, engine: Engine | str = "vllm", levels: int = PRIORITY_LEVELS
) -> Callable[[HttpRequest], Awaitable[None]]:
    """The ``httpx.AsyncClient`` counterpart of :func:`httpx_request_hook`."""

    async def hook(request: HttpRequest) -> None:
        attach_hints(request, engine=engine, levels=levels)

    return hook


class HttpResponse(Protocol):
    """The part of an ``httpx.Response`` the response hooks use."""

    @property
    def headers(self) -> _Headers: ...


def note_queue_wait(response: HttpResponse) -> bool:
    """Subtract the gateway's reported slot wait (``X-Hermes-Queue-Wait``) from the LLM unit.

    So the PDGraph learns the call's service time, not how long it queued (which depends on the
    policy and the load). Returns whether a wait was recorded; never raises.
    """
    try:
        unit = CURRENT_LLM_UNIT.get()
        value = response.headers.get(QUEUE_WAIT_HEADER)
        if unit is None or value is None:
            return False
        unit.record_wait(float(value))
        return True
    except Exception as exc:
        log.debug("hermes_langgraph: queue wait not recorded: %r", exc)
        return False


def note_gateway(response: HttpResponse) -> bool:
    """Gateway discovery: a response of the Hermes gateway (``X-Hermes-Gateway``) makes the
    gateway's server learn this process's runs when no scheduler is configured (the rule:
    :mod:`hermes_sdk.instrument.gateway_discovery`). Returns whether it does; never raises."""
    try:
        request = response.request  # type: ignore[attr-defined]
        unit = CURRENT_LLM_UNIT.get()
        return note_gateway_response(
            str(request.url),
            response.headers,
            request.headers.get("Authorization"),
            run=unit.run if unit is not None else None,
        )
    except Exception as exc:
        log.debug("hermes_langgraph: gateway not noted: %r", exc)
        return False


def httpx_response_hook() -> Callable[[HttpResponse], None]:
    """A sync httpx ``event_hooks["response"]`` entry: :func:`note_queue_wait` and
    :func:`note_gateway`."""

    def hook(response: HttpResponse) -> None:
        note_queue_wait(response)
        note_gateway(response)

    return hook


def async_httpx_response_hook() -> Callable[[HttpResponse], Awaitable[None]]:
    """The ``httpx.AsyncClient`` counterpart of :func:`httpx_response_hook`."""

    async def hook(response: HttpResponse) -> None:
        note_queue_wait(response)
        note_gateway(response)

    return hook


def chat_openai_kwargs(
    *, engine: Engine | str = "vllm", levels: int = PRIORITY_LEVELS
) -> dict[str, object]:
    """``ChatOpenAI(**chat_openai_kwargs())``: HTTP clients that attach each call's hints.

    Returns ``http_client`` and ``http_async_client`` built with the ``openai`` SDK's default
    client classes (so the right httpx flavour is used) plus the request hooks above. Every
    request the model sends inside a graph run traced by a ``HermesCallbackHandler`` carries
    ``X-Hermes-App/Run/Unit/Kind/Deadline/Rank`` and ``engine``'s own fields (``vllm``,
    ``sglang``, ``litellm``: ``priority``; ``dynamo``: ``nvext.agent_hints``; ``gie``: the
    ``x-gateway-inference-*`` headers; ``openai``: none); the gateway's reported slot wait is
    subtracted from the call's measured time (:func:`note_queue_wait`). Requires the ``openai``
    package (installed with ``langchain-openai``).
    """
    import openai

    return {
        "http_client": openai.DefaultHttpxClient(
            event_hooks={
                "request": [httpx_request_hook(engine=engine, levels=levels)],
                "response": [httpx_response_hook()],
            }
        ),
        "http_async_client": openai.DefaultAsyncHttpxClient(
            event_hooks={
                "request": [async_httpx_request_hook(engine=engine, levels=levels)],
                "response": [async_httpx_response_hook()],
            }
        ),
    }
