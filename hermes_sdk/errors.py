"""One exception tree for the SDK; servers map each class to a 4xx JSON body with a stable code."""

from __future__ import annotations


class HermesError(Exception):
    """Base class of every error the SDK raises on purpose."""

    code: str = "hermes_error"


class ConfigError(HermesError, ValueError):
    """Raised when configuration (URLs, files, options) is missing or malformed."""

    code = "config_error"


class GraphError(HermesError, ValueError):
    """Raised when a path, run record or graph document is invalid (bad name, NaN, negative)."""

    code = "graph_error"


class InvalidRequest(HermesError, ValueError):
    """Raised when a request to the scheduler or gateway is malformed."""

    code = "invalid_request"


class StoreError(HermesError):
    """Raised when the persistent store cannot be opened or written."""

    code = "store_error"


class SchedulerUnavailable(HermesError):
    """Raised by the scheduler client when the service cannot be reached (callers fail open)."""

    code = "scheduler_unavailable"


__all__ = [
    "ConfigError",
    "GraphError",
    "HermesError",
    "InvalidRequest",
    "SchedulerUnavailable",
    "StoreError",
]
