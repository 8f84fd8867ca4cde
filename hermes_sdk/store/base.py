"""The Store protocol: durable completed paths plus a small JSON key/value space.

Every backend (``sqlite``, ``memory``, ``redis``) implements it and passes the shared conformance
suite in ``tests/store/test_conformance.py``. Paths are stored as the JSON of
:func:`~hermes_sdk.graph.records.path_to_dict`; a row that no longer parses is skipped, logged and
counted in ``corrupt_rows`` instead of failing the load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from hermes_sdk.errors import GraphError, StoreError
from hermes_sdk.graph.records import RunPath, check_name, path_from_dict
from hermes_sdk.store.path_json import path_json

log = logging.getLogger("hermes_sdk.store")

MAX_VALUE_BYTES = 16 * 1024 * 1024
"""Largest JSON document accepted by put_json / append_path."""


@runtime_checkable
class Store(Protocol):
    """Persistence for completed paths and small JSON documents (API keys, settings)."""

    corrupt_rows: int
    """Rows skipped by load_paths() because they did not parse (since the store was opened)."""

    def append_path(self, path: RunPath) -> None:
        """Persist ``path``; it is durable when this returns. Raises StoreError on failure."""
        ...

    def load_paths(self) -> Iterator[RunPath]:
        """Every stored path in append order; corrupt rows are logged, counted and skipped."""
        ...

    def put_json(self, namespace: str, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under (namespace, key), replacing any previous value."""
        ...

    def get_json(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The value under (namespace, key), or None."""
        ...

    def list_keys(self, namespace: str) -> list[str]:
        """Sorted keys of ``namespace``."""
        ...

    def close(self) -> None:
        """Release resources; further calls raise StoreError."""
        ...


@runtime_checkable
class BatchStore(Protocol):
    """Optional store capability: append many paths with one durable write (all or none).

    Every built-in backend has it (SQLite: one transaction; Redis: one MULTI/EXEC pipeline;
    memory: one lock); :func:`append_all` falls back to ``append_path`` one by one without it.
    """

    def append_paths(self, paths: Sequence[RunPath]) -> None: ...


def append_all(store: Store, paths: Sequence[RunPath]) -> None:
    """Persist ``paths`` in order: one batch write when ``store`` can, else one at a time."""
    if isinstance(store, BatchStore):
        store.append_paths(paths)
    else:
        for path in paths:
            store.append_path(path)


def encode_path(path: RunPath) -> str:
    """JSON text of a path as stored."""
    if not isinstance(path, RunPath):
        raise StoreError(f"append_path() needs a RunPath, got {type(path).__name__}")
    try:
        text = path_json(path)  # the text of json.dumps(path_to_dict(path)), written faster
    except ValueError as exc:
        raise StoreError(f"path is not JSON-serialisable: {exc}") from exc
    if len(text) > MAX_VALUE_BYTES:
        raise StoreError(f"path JSON is {len(text)} bytes, more than {MAX_VALUE_BYTES}")
    return text


def decode_path(raw: object, where: str) -> RunPath | None:
    """Parse a stored row, or log why it is corrupt and return None."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not isinstance(text, str):
            raise TypeError(f"row is {type(raw).__name__}, not text")
        return path_from_dict(json.loads(text))
    except (ValueError, TypeError, GraphError, RecursionError) as exc:
        log.warning("skipping corrupt stored path %s: %s", where, exc)
        return None


def encode_value(namespace: str, key: str, value: dict[str, Any]) -> str:
    """Validate a key/value pair and return the value's JSON text."""
    try:
        check_name(namespace, "namespace")
        check_name(key, "key")
    except GraphError as exc:
        raise StoreError(str(exc)) from exc
    if not isinstance(value, dict):
        raise StoreError(f"value must be a dict, got {type(value).__name__}")
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"value is not JSON-serialisable: {exc}") from exc
    if len(text) > MAX_VALUE_BYTES:
        raise StoreError(f"value is {len(text)} bytes, more than {MAX_VALUE_BYTES}")
    return text


def decode_value(raw: object, where: str) -> dict[str, Any] | None:
    """Parse a stored value; a corrupt one is logged and read as missing."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not isinstance(text, str):
            raise TypeError(f"value is {type(raw).__name__}, not text")
        value = json.loads(text)
        if not isinstance(value, dict):
            raise TypeError("stored value is not an object")
        return value
    except (ValueError, TypeError) as exc:
        log.warning("ignoring corrupt stored value %s: %s", where, exc)
        return None
