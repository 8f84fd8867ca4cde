"""Hint encoding for users who call an OpenAI-compatible engine directly (no gateway).

``client.chat.completions.create(..., **openai_kwargs())`` with the official ``openai`` client, or
``chat_model.invoke(messages, **openai_kwargs())`` with LangChain ``ChatOpenAI`` (call kwargs are
passed through to ``create``), attaches the unit's ``X-Hermes-*`` headers and the engine-native
fields (``priority``; Dynamo's ``nvext.agent_hints``; GIE's headers: see
:mod:`hermes_sdk.client.encodings`). Hints belong to one call, so pass them per call rather
than to a constructor.
"""

from __future__ import annotations

import importlib
from typing import TypedDict

from hermes_sdk.client.encodings import encode
from hermes_sdk.client.hints import PRIORITY_LEVELS, Engine, Hints


class OpenAIKwargs(TypedDict):
    """Keyword arguments understood by ``openai`` ``create(...)`` calls and ``ChatOpenAI``."""

    extra_headers: dict[str, str]
    extra_body: dict[str, object]


def _current_hints() -> Hints | None:
    """The running unit's hints from the instrumentation, if it is installed and active."""
    try:
        module = importlib.import_module("hermes_sdk.instrument")
    except ImportError:
        return None
    current = getattr(module, "current_hints", None)
    if current is None:
        return None
    hints = current()
    return hints if isinstance(hints, Hints) else None


def openai_kwargs(
    hints: Hints | None = None,
    *,
    engine: Engine | str = "vllm",
    levels: int = PRIORITY_LEVELS,
) -> OpenAIKwargs:
    """``extra_headers`` (``X-Hermes-*`` and the stack's headers) and ``extra_body`` for one call.

    Uses ``hints`` if given, else the instrumentation's ``current_hints()``. Without hints the
    result is empty, so the call is unchanged. ``engine`` is one of ``vllm`` (body ``priority``,
    lower first), ``sglang`` (higher first), ``litellm`` (lower first), ``dynamo``
    (``nvext.agent_hints.priority`` higher first, ``osl``, ``nvext.cache_control``), ``gie``
    (``x-gateway-inference-*`` headers) or ``openai`` (headers only). A hint without a rank gets
    the middle level so it neither jumps nor starves. Raises ValueError for an unknown engine.
    """
    if hints is None:
        hints = _current_hints()
    encoded = encode(hints, engine, levels=levels)
    return {"extra_headers": encoded.headers, "extra_body": encoded.body}
