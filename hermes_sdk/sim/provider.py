"""A hosted provider's rate limit for the simulated engine (``hermes sim-engine --rate-limit``).

Like OpenAI's limits, requests and tokens per minute are each a bucket refilled continuously
(limit / 60 per second, capped at the limit). A request costs one request and its prompt tokens
plus the output tokens it will generate, charged when it arrives; if either bucket lacks them the
engine answers 429 with ``Retry-After`` (whole seconds) and ``retry-after-ms`` (the exact wait, as
the openai client reads first). Every answer carries OpenAI's ``x-ratelimit-limit-*``,
``x-ratelimit-remaining-*`` and ``x-ratelimit-reset-*`` headers (resets like ``6m0s``, ``1s``,
``20ms``). Written independently of Hermes' own budget so tests of one check the other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """Requests and tokens per minute (None: unlimited)."""

    rpm: int | None = None
    tpm: int | None = None
    window_s: float = WINDOW_S
    """Seconds over which the limits are enforced: a burst holds ``limit * window_s / 60``
    (OpenAI may enforce a minute's limit over shorter periods)."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.window_s) or not 0 < self.window_s <= WINDOW_S:
            raise ValueError(f"window_s must be within (0, 60], got {self.window_s!r}")
        for name, value in (("rpm", self.rpm), ("tpm", self.tpm)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def parse_rate_limit(text: str) -> RateLimitConfig:
    """``rpm=N,tpm=N[,window_s=S]`` (any may be left out)."""
    values: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key not in ("rpm", "tpm", "window_s"):
            raise ValueError(f"--rate-limit wants rpm=N,tpm=N[,window_s=S], got {text!r}")
        try:
            values[key] = float(value) if key == "window_s" else int(value)
        except ValueError:
            raise ValueError(f"--rate-limit: {key} must be a number, got {value!r}") from None
    return RateLimitConfig(**values)  # type: ignore[arg-type]


def format_duration(seconds: float) -> str:
    """OpenAI's reset duration: ``6m0s``, ``1s``, ``1.5s``, ``20ms``."""
    if seconds < 1.0:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60.0)
    secs = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{secs}s" if minutes else f"{secs}s"


@dataclass(slots=True)
class _Bucket:
    limit: float
    """Per minute."""
    capacity: float
    level: float
    at_s: float

    def now(self, now_s: float) -> float:
        self.level = min(self.capacity, self.level + (now_s - self.at_s) * self.limit / WINDOW_S)
        self.at_s = now_s
        return self.level

    def wait_s(self, cost: float) -> float:
        return max(0.0, (min(cost, self.capacity) - self.level) * WINDOW_S / self.limit)

    def reset_s(self) -> float:
        return (self.capacity - self.level) * WINDOW_S / self.limit


@dataclass(slots=True)
class SimRateLimit:
    """The provider's buckets and what they let through (counts and tokens)."""

    config: RateLimitConfig
    clock: Callable[[], float] = time.monotonic
    accepted: int = 0
    limited: int = 0
    """Requests answered 429."""
    tokens: int = 0
    """Tokens of accepted requests (prompt + output)."""
    first_s: float | None = None
    last_s: float | None = None
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        now = self.clock()
        for name, limit in (("requests", self.config.rpm), ("tokens", self.config.tpm)):
            if limit is not None:
                capacity = limit * self.config.window_s / WINDOW_S
                self._buckets[name] = _Bucket(float(limit), capacity, capacity, now)

    def admit(self, cost_tokens: int) -> tuple[bool, dict[str, str]]:
        """Charge a request of ``cost_tokens`` if both buckets allow; (accepted, headers)."""
        now = self.clock()
        costs = {"requests": 1.0, "tokens": float(cost_tokens)}
        for bucket in self._buckets.values():
            bucket.now(now)
        wait = max((b.wait_s(costs[n]) for n, b in self._buckets.items()), default=0.0)
        if wait <= 0.0:
            for name, bucket in self._buckets.items():
                bucket.level -= costs[name]
            self.accepted += 1
            self.tokens += cost_tokens
            self.first_s = now if self.first_s is None else self.first_s
            self.last_s = now
        else:
            self.limited += 1
        headers: dict[str, str] = {}
        for name, bucket in self._buckets.items():
            headers[f"x-ratelimit-limit-{name}"] = str(int(bucket.limit))
            headers[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(bucket.level)))
            headers[f"x-ratelimit-reset-{name}"] = format_duration(bucket.reset_s())
        if wait > 0.0:
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        return wait <= 0.0, headers

    def stats(self) -> dict[str, object]:
        """Counters for ``GET /debug/ratelimit``."""
        return {
            "rpm": self.config.rpm,
            "tpm": self.config.tpm,
            "window_s": self.config.window_s,
            "accepted": self.accepted,
            "limited": self.limited,
            "tokens": self.tokens,
            "first_s": self.first_s,
            "last_s": self.last_s,
        }
