"""In-process store (``memory://``): same semantics as the others, nothing survives the process.

Values are kept as JSON text, so what goes in is copied and validated exactly as a real backend
would, and tests of callers see the same behaviour.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from hermes_sdk.errors import StoreError
from hermes_sdk.graph.records import RunPath
from hermes_sdk.store.base import decode_path, decode_value, encode_path, encode_value


class MemoryStore:
    """Thread-safe in-memory Store."""

    def __init__(self) -> None:
        self.corrupt_rows = 0
        self._lock = threading.Lock()
        self._paths: list[str] = []
        self._kv: dict[tuple[str, str], str] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    def append_path(self, path: RunPath) -> None:
        """Append one path."""
        text = encode_path(path)
        with self._lock:
            self._check_open()
            self._paths.append(text)

    def append_paths(self, paths: Sequence[RunPath]) -> None:
        """Append several paths at once (all or none: every one is encoded first)."""
        texts = [encode_path(p) for p in paths]
        with self._lock:
            self._check_open()
            self._paths.extend(texts)

    def append_raw(self, text: str) -> None:
        """Append a raw row as-is (tests use it to simulate corruption)."""
        with self._lock:
            self._check_open()
            self._paths.append(text)

    def load_paths(self) -> Iterator[RunPath]:
        """Every stored path in append order; corrupt rows are skipped and counted."""
        with self._lock:
            self._check_open()
            rows = list(self._paths)
        for i, raw in enumerate(rows):
            path = decode_path(raw, f"memory row {i}")
            if path is None:
                self.corrupt_rows += 1
            else:
                yield path

    def put_json(self, namespace: str, key: str, value: dict[str, Any]) -> None:
        """Store a JSON document."""
        text = encode_value(namespace, key, value)
        with self._lock:
            self._check_open()
            self._kv[(namespace, key)] = text

    def get_json(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The document under (namespace, key), or None."""
        with self._lock:
            self._check_open()
            raw = self._kv.get((namespace, key))
        return None if raw is None else decode_value(raw, f"{namespace}/{key}")

    def list_keys(self, namespace: str) -> list[str]:
        """Sorted keys in ``namespace``."""
        with self._lock:
            self._check_open()
            return sorted(k for (ns, k) in self._kv if ns == namespace)

    def close(self) -> None:
        """Mark closed (idempotent)."""
        self._closed = True
