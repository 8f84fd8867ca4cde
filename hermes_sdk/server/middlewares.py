"""Error mapping: every failure leaves the server as a JSON body ``{"error": {"code", "message"}}``.

Bad input never becomes a 500: :class:`~hermes_sdk.errors.HermesError` subclasses map to 4xx
with their stable ``code``; aiohttp's HTTP exceptions (404, 405, 413 body too large, ...) keep
their status with a code derived from it. Only genuine bugs answer 500 ``internal_error``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from aiohttp import web

from hermes_sdk.errors import (
    ConfigError,
    GraphError,
    HermesError,
    InvalidRequest,
    SchedulerUnavailable,
    StoreError,
)

log = logging.getLogger("hermes_sdk.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS_CODES: Final[Mapping[int, str]] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "queue_timeout",
    503: "unavailable",
}


class ApiError(Exception):
    """An HTTP error with a stable ``code`` and optional extra JSON fields (e.g. a retry hint)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        extra: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


def error_body(code: str, message: str, extra: Mapping[str, object] | None = None) -> str:
    """The JSON text of an error response."""
    err: dict[str, object] = {"code": code, "message": message}
    if extra:
        err.update(extra)
    return json.dumps({"error": err})


def json_error(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> web.Response:
    """A JSON error response."""
    return web.Response(
        status=status,
        text=error_body(code, message, extra),
        content_type="application/json",
        headers=headers,
    )


def status_of(exc: HermesError) -> int:
    """HTTP status for an SDK error: bad input is 400, an unreachable dependency 503."""
    if isinstance(exc, (InvalidRequest, GraphError, ConfigError)):
        return 400
    if isinstance(exc, (StoreError, SchedulerUnavailable)):
        return 503
    return 400


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every exception into a JSON error body with a stable code."""
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.code, exc.message, exc.headers, exc.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = STATUS_CODES.get(exc.status, "http_error")
        message = exc.reason
        if exc.status == 413:
            message = f"request body exceeds the limit of {request.app._client_max_size} bytes"
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return json_error(exc.status, code, message, headers)
    except HermesError as exc:
        return json_error(status_of(exc), exc.code, str(exc))
    except json.JSONDecodeError as exc:
        return json_error(400, "invalid_json", f"body is not valid JSON: {exc}")
    except UnicodeDecodeError:
        return json_error(400, "invalid_json", "body is not valid UTF-8")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_error(500, "internal_error", "internal server error")


def loads_json(raw: bytes | str) -> object:
    """``json.loads``, with nesting too deep for the decoder (a ``RecursionError``, e.g.
    ``{"a":`` then 5000 ``[``) raised as a ``json.JSONDecodeError`` like any malformed body, so
    every endpoint answers it 400 ``invalid_json``, never 500."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise json.JSONDecodeError("nesting too deep", "", 0) from None
