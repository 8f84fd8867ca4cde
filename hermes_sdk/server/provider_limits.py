"""Read a hosted provider's rate-limit headers: what its limits are, what remains, when it resets.

Two header families (see docs/protocol.md for where each is documented):

- OpenAI style (OpenAI, Azure OpenAI, most OpenAI-compatible providers):
  ``x-ratelimit-limit-requests``, ``x-ratelimit-limit-tokens``, ``x-ratelimit-remaining-requests``,
  ``x-ratelimit-remaining-tokens``, ``x-ratelimit-reset-requests``, ``x-ratelimit-reset-tokens``;
  resets are durations such as ``6m0s``, ``1s``, ``20ms``.
- Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,
  reset}``; resets are RFC 3339 times.

and ``retry-after-ms`` (milliseconds) or ``Retry-After`` (seconds, or an HTTP date) on a 429.
A missing header is None; a malformed one (not a number, negative, Azure's ``-1``) is None too,
and so is a contradictory one (a ``remaining`` above its ``limit``): never guessed. When both
families are present, the more restrictive value wins.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S: Final = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
MAX_RETRY_AFTER_S: Final = 3600.0
"""A Retry-After beyond an hour is treated as malformed (seconds)."""


@dataclass(frozen=True, slots=True)
class LimitWindow:
    """One limit as the provider reported it: units per window, units left, seconds to full."""

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    """Everything a response's headers said about the provider's limits."""

    requests: LimitWindow = LimitWindow()
    tokens: LimitWindow = LimitWindow()
    """Anthropic: ``tokens`` is the most restrictive of its input and output limits in force."""
    input_tokens: LimitWindow = LimitWindow()
    output_tokens: LimitWindow = LimitWindow()
    retry_after_s: float | None = None

    @property
    def empty(self) -> bool:
        """True when the headers said nothing about limits."""
        return self == ProviderLimits()


def parse_duration_s(text: str) -> float | None:
    """OpenAI's reset duration (``6m0s``, ``1s``, ``20ms``, ``1h2m3.5s``; a bare number is
    seconds) in seconds; None if malformed."""
    text = text.strip()
    if not text:
        return None
    bare = _number(text)
    if bare is not None:
        return bare
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def parse_rfc3339_s(text: str, now_unix_s: float) -> float | None:
    """Seconds from ``now_unix_s`` to an RFC 3339 time (0.0 if past); None if malformed."""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_unix_s)


def parse_retry_after_s(headers: Mapping[str, str], now_unix_s: float) -> float | None:
    """``retry-after-ms`` (preferred, as the openai client reads it) or ``Retry-After`` (seconds
    or an HTTP date) in seconds; None if absent or malformed."""
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None and ms / 1000.0 <= MAX_RETRY_AFTER_S:
        return ms / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is None:
        try:
            parsed = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if parsed.tzinfo is None:
            return None
        seconds = max(0.0, parsed.timestamp() - now_unix_s)
    return seconds if seconds <= MAX_RETRY_AFTER_S else None


def parse_limits(headers: Mapping[str, str], now_unix_s: float) -> ProviderLimits:
    """The limits in ``headers`` (any case), both families merged (more restrictive wins)."""
    low = {k.lower(): v for k, v in headers.items()}
    requests = _merge(_openai(low, "requests"), _anthropic(low, "requests", now_unix_s))
    tokens = _merge(_openai(low, "tokens"), _anthropic(low, "tokens", now_unix_s))
    return ProviderLimits(
        requests=requests,
        tokens=tokens,
        input_tokens=_anthropic(low, "input-tokens", now_unix_s),
        output_tokens=_anthropic(low, "output-tokens", now_unix_s),
        retry_after_s=parse_retry_after_s(low, now_unix_s),
    )


def _number(raw: str | None) -> float | None:
    """A finite number >= 0, else None."""
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _count(raw: str | None) -> int | None:
    value = _number(raw)
    return None if value is None or value != int(value) else int(value)


def _window(limit: int | None, remaining: int | None, reset_s: float | None) -> LimitWindow:
    if limit == 0:  # a limit of 0 would block forever: not a real budget
        limit = None
    if limit is not None and remaining is not None and remaining > limit:
        remaining = None  # contradictory: trust neither guess, keep the limit
    return LimitWindow(limit, remaining, reset_s)


def _openai(h: Mapping[str, str], what: str) -> LimitWindow:
    reset = h.get(f"x-ratelimit-reset-{what}")
    return _window(
        _count(h.get(f"x-ratelimit-limit-{what}")),
        _count(h.get(f"x-ratelimit-remaining-{what}")),
        None if reset is None else parse_duration_s(reset),
    )


def _anthropic(h: Mapping[str, str], what: str, now_unix_s: float) -> LimitWindow:
    reset = h.get(f"anthropic-ratelimit-{what}-reset")
    return _window(
        _count(h.get(f"anthropic-ratelimit-{what}-limit")),
        _count(h.get(f"anthropic-ratelimit-{what}-remaining")),
        None if reset is None else parse_rfc3339_s(reset, now_unix_s),
    )


def _merge(a: LimitWindow, b: LimitWindow) -> LimitWindow:
    def low(x: float | None, y: float | None) -> float | None:
        return y if x is None else x if y is None else min(x, y)

    limit, remaining = low(a.limit, b.limit), low(a.remaining, b.remaining)
    return _window(
        None if limit is None else int(limit),
        None if remaining is None else int(remaining),
        low(a.reset_s, b.reset_s) if remaining is None else _reset_of(a, b, remaining),
    )


def _reset_of(a: LimitWindow, b: LimitWindow, remaining: float) -> float | None:
    """The reset of the window whose remaining was kept."""
    return a.reset_s if a.remaining == remaining else b.reset_s
