"""Wire format of the scheduler's control API, shared by the async and sync clients.

Timeouts the clients default to, the :class:`Grant` value an acquire returns, and the parsing
of answers: which ones mean "scheduler unavailable" (fail open), which ones mean the request
was wrong (:class:`~hermes_sdk.errors.InvalidRequest`), and what a well-formed grant looks like.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hermes_sdk.errors import InvalidRequest, SchedulerUnavailable

DEFAULT_CONNECT_TIMEOUT_S = 0.05
DEFAULT_REQUEST_TIMEOUT_S = 5.0
DEFAULT_ACQUIRE_POLL_S = 25.0
"""Longest single acquire long-poll the client asks for; it re-polls on 429."""


@dataclass(frozen=True, slots=True)
class Grant:
    """A slot the scheduler granted; ``rank_s`` None when granted without queueing."""

    lease_id: str
    backend: str
    rank_s: float | None
    waited_s: float
    lease_s: float | None = None
    """Seconds the server keeps the slot without a renewal (the client renews at half)."""


def decode_answer(
    method: str, path: str, status: int, content_type: str, text: str
) -> tuple[int, Any]:
    """(status, parsed JSON or text); SchedulerUnavailable on 5xx, non-JSON 4xx or bad JSON."""
    if status >= 500:
        raise SchedulerUnavailable(f"{method} {path}: HTTP {status}")
    if content_type != "application/json":
        if status >= 400:
            raise SchedulerUnavailable(f"{method} {path}: HTTP {status} non-JSON answer")
        return status, text
    try:
        return status, json.loads(text)
    except ValueError:
        raise SchedulerUnavailable(f"{method} {path}: garbage JSON") from None


def raise_for_error(status: int, data: object) -> None:
    """Raise InvalidRequest with the server's error code and message for a 4xx answer."""
    if status < 400:
        return
    err = data.get("error", {}) if isinstance(data, dict) else {}
    code = err.get("code", "error") if isinstance(err, dict) else "error"
    message = err.get("message", "") if isinstance(err, dict) else str(data)
    raise InvalidRequest(f"HTTP {status} {code}: {message}")


def parse_grant(data: object) -> Grant | None:
    """The grant in an acquire answer, or None if it is malformed."""
    if not isinstance(data, dict):
        return None
    lease_id, backend = data.get("lease_id"), data.get("backend")
    rank, waited = data.get("rank_s"), data.get("waited_s", 0.0)
    lease_s = data.get("lease_s")
    if not isinstance(lease_id, str) or not isinstance(backend, str):
        return None
    if rank is not None and not isinstance(rank, (int, float)):
        return None
    if not isinstance(waited, (int, float)):
        return None
    if not isinstance(lease_s, (int, float)) or isinstance(lease_s, bool) or lease_s <= 0:
        lease_s = None
    return Grant(
        lease_id,
        backend,
        None if rank is None else float(rank),
        float(waited),
        None if lease_s is None else float(lease_s),
    )
