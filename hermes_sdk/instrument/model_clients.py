"""``hermes.wrap(client)``: the official ``openai`` and ``anthropic`` clients, learned and hinted.

The wrap replaces ``create`` on the client's own resource objects (instance attributes, so other
clients, the SDK classes and ``isinstance`` checks are untouched) and returns the same client.
Replaced: ``chat.completions``, ``completions``, ``responses`` (kind ``llm``) and ``embeddings``
(kind ``retriever``: it feeds a retrieval step and has no output tokens) of ``OpenAI`` /
``AsyncOpenAI`` (and the Azure subclasses); ``messages`` (kind ``llm``) of ``Anthropic`` /
``AsyncAnthropic``. ``with_options()`` / ``copy()`` return wrapped copies. Neither SDK is imported:
clients are recognised by the module their class comes from, so the core installs without them.
Other methods (``parse``, ``stream`` helpers, files, batches...) are not units. Behind the Hermes
gateway, the slot wait it reports (``X-Hermes-Queue-Wait``) is recorded as the unit's wait by an
httpx response hook on the SDK's HTTP client, so the graph learns service, not queueing.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, Final, TypeVar

from hermes_sdk.client.hints import PRIORITY_LEVELS, QUEUE_WAIT_HEADER, Hints
from hermes_sdk.client.openai_kwargs import openai_kwargs
from hermes_sdk.graph.records import check_name
from hermes_sdk.instrument._context import CURRENT_UNIT
from hermes_sdk.instrument.gateway_discovery import note_gateway_response
from hermes_sdk.instrument.model_calls import (
    Endpoint,
    NameRule,
    WrapSettings,
    WrapState,
    async_call,
    sync_call,
)

log = logging.getLogger("hermes_sdk.instrument")

_C = TypeVar("_C")

WRAPPED_MARK: Final = "__hermes_wrapped__"
"""Attribute of replaced methods holding their :class:`WrapSettings` (wrapping twice is a no-op)."""

OPENAI_ENDPOINTS: Final = (
    Endpoint("chat.completions", "llm", stream_usage=True),
    Endpoint("completions", "llm", stream_usage=True),
    Endpoint("responses", "llm", stream_usage=False),  # usage is in ``response.completed``
    Endpoint("embeddings", "retriever", stream_usage=False),
)
ANTHROPIC_ENDPOINTS: Final = (Endpoint("messages", "llm", stream_usage=False),)
_NO_PRIORITY_HOSTS: Final = ("openai.com", "openai.azure.com", "anthropic.com")
"""Hosted APIs without a ``priority`` field: only the ``X-Hermes-*`` headers are sent there."""


def _family(client: object) -> str | None:
    for cls in type(client).__mro__:
        root = cls.__module__.split(".", 1)[0]
        if root in ("openai", "anthropic"):
            return root
    return None


def _default_engine(client: object, family: str) -> str:
    """``openai`` (headers only) for hosted APIs and Anthropic, else ``vllm``."""
    if family == "anthropic":
        return "openai"
    host = str(getattr(getattr(client, "base_url", None), "host", "") or "")
    if any(host == h or host.endswith("." + h) for h in _NO_PRIORITY_HOSTS):
        return "openai"
    return "vllm"


def _resource(client: object, dotted: str) -> object | None:
    obj: object | None = client
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _replace_create(resource: object, endpoint: Endpoint, state: WrapState) -> None:
    original = getattr(resource, "create", None)
    if original is None or getattr(original, WRAPPED_MARK, False):
        return
    if inspect.iscoroutinefunction(inspect.unwrap(original)):
        replacement = async_call(original, endpoint, state)
    else:
        replacement = sync_call(original, endpoint, state)
    replacement.__doc__ = original.__doc__
    replacement.__name__ = "create"
    replacement.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(replacement, WRAPPED_MARK, state.settings)
    setattr(resource, "create", replacement)  # noqa: B010  # an instance attribute on purpose
    # The SDKs build these once (cached) around ``create``: rebuild them around the replacement.
    for cached in ("with_raw_response", "with_streaming_response"):
        vars(resource).pop(cached, None)


def note_queue_wait(response: Any) -> None:
    """httpx response hook: the Hermes gateway's ``X-Hermes-Queue-Wait`` (seconds the request
    waited for a backend slot) is recorded as a wait of the unit making the call, so the graph
    learns service, not queueing; its ``X-Hermes-Gateway`` makes the gateway's server learn the
    runs when none is configured (:mod:`hermes_sdk.instrument.gateway_discovery`). Never raises."""
    try:
        unit = CURRENT_UNIT.get()
        value = response.headers.get(QUEUE_WAIT_HEADER) if unit is not None else None
        if unit is not None and value is not None:
            unit.record_wait(float(value))
        request = response.request
        note_gateway_response(
            str(request.url),
            response.headers,
            request.headers.get("Authorization"),
            run=unit.run if unit is not None else None,
        )
    except Exception as exc:
        log.debug("hermes: queue wait not recorded: %r", exc)


async def _note_queue_wait_async(response: Any) -> None:
    note_queue_wait(response)


def _hook_queue_waits(client: object) -> None:
    """Add :func:`note_queue_wait` to the SDK's httpx client (its ``_client``; shared by the
    client's copies), once. Clients without one are left alone."""
    http = getattr(client, "_client", None)
    hooks = getattr(http, "event_hooks", None)
    responses = hooks.get("response") if isinstance(hooks, dict) else None
    if not isinstance(responses, list) or any(getattr(h, WRAPPED_MARK, None) for h in responses):
        return
    is_async = inspect.iscoroutinefunction(getattr(http, "send", None))
    hook = _note_queue_wait_async if is_async else note_queue_wait
    setattr(hook, WRAPPED_MARK, True)
    responses.append(hook)


def _wrap_copies(client: object, settings: WrapSettings) -> None:
    copy = getattr(client, "copy", None)
    if copy is None or getattr(copy, WRAPPED_MARK, False):
        return

    def wrapped_copy(*args: Any, **kwargs: Any) -> Any:
        return _apply(copy(*args, **kwargs), settings)

    setattr(wrapped_copy, WRAPPED_MARK, settings)
    wrapped_copy.__doc__ = copy.__doc__
    for name in ("copy", "with_options"):
        setattr(client, name, wrapped_copy)


def _apply(client: _C, settings: WrapSettings) -> _C:
    family = _family(client)
    endpoints = ANTHROPIC_ENDPOINTS if family == "anthropic" else OPENAI_ENDPOINTS
    state = WrapState(settings)
    steps: list[tuple[str, Callable[[], None]]] = [
        (e.name, functools.partial(_wrap_endpoint, client, e, state)) for e in endpoints
    ]
    steps.append(("queue-wait hook", functools.partial(_hook_queue_waits, client)))
    steps.append(("copies", functools.partial(_wrap_copies, client, settings)))
    for what, step in steps:
        try:  # an SDK version laid out differently loses that part, never the client
            step()
        except Exception as exc:
            log.warning("hermes.wrap: %s of %s left unwrapped: %r", what, type(client), exc)
    return client


def _wrap_endpoint(client: object, endpoint: Endpoint, state: WrapState) -> None:
    resource = _resource(client, endpoint.name)
    if resource is not None:
        _replace_create(resource, endpoint, state)


def wrap(
    client: _C,
    *,
    backend: str | None = None,
    engine: str | None = None,
    name: NameRule | None = None,
    stream_usage: bool = True,
    levels: int = PRIORITY_LEVELS,
) -> _C:
    """Make every model call of ``client`` a unit of the current run, with its hints attached.

    ``client`` is an ``openai.OpenAI`` / ``AsyncOpenAI`` (Azure included) or ``anthropic.Anthropic``
    / ``AsyncAnthropic`` instance; it is changed in place and returned. Inside ``hermes.run``,
    each ``create`` call is a unit (named by a ``hermes_unit="..."`` keyword, else by
    ``name(endpoint, kwargs)``, else by its ``model``) with tokens read from ``usage``; it carries
    the ``X-Hermes-*`` headers and ``engine``'s priority field (an engine name as for
    :func:`~hermes_sdk.openai_kwargs`; default ``vllm``, or headers only for api.openai.com,
    Azure OpenAI and Anthropic). With ``stream_usage`` a chat/completions stream asks the server
    for its usage chunk (dropped again before the caller sees it; not asked again from a server
    that rejects ``stream_options``). Outside a run calls are unchanged. ``backend`` names the
    serving backend of the units. Raises :class:`TypeError` for an object that is not such a
    client, :class:`~hermes_sdk.GraphError` for an invalid backend name and :class:`ValueError`
    for an engine name the hint encodings do not know or ``levels`` < 1.
    """
    family = _family(client)
    if family is None:
        raise TypeError(
            "hermes.wrap needs an openai.OpenAI/AsyncOpenAI or anthropic.Anthropic/AsyncAnthropic"
            f" client, got {type(client).__name__}"
        )
    if backend is not None:
        check_name(backend, "backend")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be an int >= 1, got {levels!r}")
    if name is not None and not callable(name):
        raise TypeError(f"name must be a callable (endpoint, kwargs) -> str, got {name!r}")
    engine = engine if engine is not None else _default_engine(client, family)
    openai_kwargs(Hints(app="wrap", run_id="check"), engine=engine, levels=levels)  # validates
    settings = WrapSettings(
        engine=engine,
        levels=levels,
        backend=backend,
        name_rule=name,
        stream_usage=stream_usage,
    )
    return _apply(client, settings)


__all__ = ["ANTHROPIC_ENDPOINTS", "OPENAI_ENDPOINTS", "wrap"]
