"""Token usage read from what an LLM call returned, duck-typed so no client library is imported.

Recognised shapes: OpenAI/Anthropic response objects (``.usage.prompt_tokens`` /
``completion_tokens`` or ``input_tokens`` / ``output_tokens``), the same as plain dicts
(``{"usage": {...}}``), LangChain messages (``.usage_metadata`` with ``input_tokens`` /
``output_tokens``) and streamed chunks that carry a final ``usage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from hermes_sdk.graph.records import MAX_TOKENS

_INPUT_KEYS: Final = ("prompt_tokens", "input_tokens")
_OUTPUT_KEYS: Final = ("completion_tokens", "output_tokens")


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return None


def _field(usage: object, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        raw = usage.get(key) if isinstance(usage, Mapping) else getattr(usage, key, None)
        count = _count(raw)
        if count is not None:
            return count
    return None


def _usage_block(value: object) -> object | None:
    if isinstance(value, Mapping):
        return value.get("usage") or value.get("usage_metadata")
    block = getattr(value, "usage_metadata", None)
    if block is None:
        block = getattr(value, "usage", None)
    return block


def usage_of(value: object) -> tuple[int | None, int | None] | None:
    """``(input_tokens, output_tokens)`` carried by an LLM result, or ``None`` if it has none.

    Never raises: objects with exotic attribute access simply yield ``None``.
    """
    if value is None or isinstance(value, (str, bytes, int, float)):
        return None
    try:
        block = _usage_block(value)
    except Exception:
        return None
    return usage_counts(block)


def usage_counts(block: object) -> tuple[int | None, int | None] | None:
    """``(input_tokens, output_tokens)`` of a usage block itself (``response.usage``), or ``None``.

    For callers that know where the block is (a wrapped client's response); never raises.
    """
    if block is None:
        return None
    try:
        input_tokens = _field(block, _INPUT_KEYS)
        output_tokens = _field(block, _OUTPUT_KEYS)
    except Exception:
        return None
    if input_tokens is None and output_tokens is None:
        return None
    return input_tokens, output_tokens
