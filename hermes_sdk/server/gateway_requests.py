"""Read an OpenAI request for the gateway: the run it belongs to, and OpenAI-shaped errors.

A request names its run with ``X-Hermes-App/Run/Unit/Deadline`` headers, or with the ``metadata``
keys ``hermes_app``, ``hermes_run``, ``hermes_unit`` and ``hermes_deadline`` (headers win); the
metadata keys are removed from the body before it is forwarded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web

_METADATA_KEYS: Final = ("hermes_app", "hermes_run", "hermes_unit", "hermes_deadline")


@dataclass(frozen=True, slots=True)
class RunRef:
    """Who a request belongs to: from headers, else from ``metadata``."""

    app: str | None
    run_id: str | None
    unit: str | None
    deadline_s: float | None


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
    return RunRef(
        app=pick("X-Hermes-App", "hermes_app"),
        run_id=pick("X-Hermes-Run", "hermes_run"),
        unit=pick("X-Hermes-Unit", "hermes_unit"),
        deadline_s=_float(deadline) if deadline else None,
    )
