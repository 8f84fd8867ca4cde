"""Keeps a replica's graphs in step with paths other replicas append to a shared store.

The registry persists through a :class:`RecordingStore` that remembers the paths this replica
appended; :meth:`GraphSync.pull` reads the store from a cursor and folds in only the paths
someone else wrote, so every stored path is learned exactly once per replica. On a store only
this process writes (sqlite, memory) pulling is a no-op.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

from hermes_sdk.errors import GraphError
from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import RunPath
from hermes_sdk.store import Store

log = logging.getLogger("hermes_sdk.server")


class RecordingStore:
    """A Store that delegates to ``inner`` and remembers what this process appended."""

    def __init__(self, inner: Store, *, record: bool) -> None:
        self.inner = inner
        self.corrupt_rows = 0
        self._record = record
        self.own: Counter[RunPath] = Counter()
        self.loaded = 0
        """Paths yielded by load_paths() so far (the registry's replay sets the cursor)."""

    def append_path(self, path: RunPath) -> None:
        """Persist durably through the inner store and remember it as ours."""
        self.inner.append_path(path)
        if self._record:
            self.own[path] += 1

    def load_paths(self) -> Iterator[RunPath]:
        """Every stored path (counted, so a later pull starts after them)."""
        for path in self.inner.load_paths():
            self.loaded += 1
            yield path
        self.corrupt_rows = self.inner.corrupt_rows

    def put_json(self, namespace: str, key: str, value: dict[str, Any]) -> None:
        """Delegate."""
        self.inner.put_json(namespace, key, value)

    def get_json(self, namespace: str, key: str) -> dict[str, Any] | None:
        """Delegate."""
        return self.inner.get_json(namespace, key)

    def list_keys(self, namespace: str) -> list[str]:
        """Delegate."""
        return self.inner.list_keys(namespace)

    def close(self) -> None:
        """Delegate."""
        self.inner.close()


class GraphSync:
    """The registry of one replica plus the cursor into the shared path log."""

    def __init__(self, store: Store, *, shared: bool = False) -> None:
        self.store = RecordingStore(store, record=shared)
        self.shared = shared
        self.registry = GraphRegistry(store=self.store)
        self.cursor = self.store.loaded
        self.pulled = 0

    def pull(self) -> int:
        """Fold in paths other replicas appended since the last pull; returns how many."""
        if not self.shared:
            return 0
        folded = 0
        for path in itertools.islice(self.store.inner.load_paths(), self.cursor, None):
            self.cursor += 1
            if self.store.own[path] > 0:
                self.store.own[path] -= 1
                if not self.store.own[path]:
                    del self.store.own[path]
                continue
            try:
                self.registry.graph(path.app, path.tenant).observe(path)
            except GraphError as exc:
                log.warning("skipping stored path of app %r: %s", path.app, exc)
                continue
            folded += 1
        self.pulled += folded
        return folded
