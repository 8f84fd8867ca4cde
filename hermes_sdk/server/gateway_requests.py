"""Read an OpenAI request for the gateway: the run it belongs to, and OpenAI-shaped errors.

A request names its run with ``X-Hermes-App/Run/Unit/Deadline`` headers, or with the ``metadata``
keys ``hermes_app``, ``hermes_run``, ``hermes_unit`` and ``hermes_deadline`` (headers win); the
metadata keys are removed from the body before it is forwarded. Without a run id, a W3C
``traceparent`` header names the run by its trace id (the run id ``POST /v1/traces`` gives a
trace), so a traced app without Hermes code is ranked as the run its spans describe.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web

_METADATA_KEYS: Final = ("hermes_app", "hermes_run", "hermes_unit", "hermes_deadline")
_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
"""W3C Trace Context ``traceparent``: version-trace_id-parent_id-flags, lowercase hex."""


@dataclass(frozen=True, slots=True)
class RunRef:
    """Who a request belongs to: from headers, else from ``metadata``."""

    app: str | None
    run_id: str | None
    unit: str | None
    deadline_s: float | None
    from_trace: bool = False
    """The run id is a ``traceparent``'s trace id: its units come from its spans."""


def trace_run_id(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a valid W3C ``traceparent`` header, else None."""
    if not traceparent:
        return None
    found = _TRACEPARENT.fullmatch(traceparent.strip())
    if found is None or found.group(1) == "ff":
        return None
    trace_id, parent_id = found.group(2), found.group(3)
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id


def openai_error(status: int, code: str, message: str) -> web.Response:
    """OpenAI-shaped error that also carries the server's stable ``code``."""
    body = {"error": {"code": code, "message": message, "type": "invalid_request_error"}}
    return web.json_response(body, status=status)


def _float(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) and out > 0 else None


def read_run_ref(headers: Mapping[str, str], body: dict[str, object]) -> RunRef:
    """Read the run reference; strips the hermes keys from ``body["metadata"]``."""
    meta = body.get("metadata")
    found: dict[str, str] = {}
    if isinstance(meta, dict):
        for key in _METADATA_KEYS:
            if key in meta:
                found[key] = str(meta.pop(key))
        if not meta:
            del body["metadata"]

    def pick(header: str, key: str) -> str | None:
        value = headers.get(header) or found.get(key)
        return value or None

    deadline = pick("X-Hermes-Deadline", "hermes_deadline")
    run_id = pick("X-Hermes-Run", "hermes_run")
    traced = run_id is None and (run_id := trace_run_id(headers.get("traceparent"))) is not None
    return RunRef(
        app=pick("X-Hermes-App", "hermes_app"),
        run_id=run_id,
        unit=pick("X-Hermes-Unit", "hermes_unit"),
        deadline_s=_float(deadline) if deadline else None,
        from_trace=traced,
    )
