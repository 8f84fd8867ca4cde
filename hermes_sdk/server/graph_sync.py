"""Keeps a replica's graphs in step with paths other replicas append to a shared store.

The registry persists through a :class:`RecordingStore` that remembers the paths this replica
appended; :meth:`GraphSync.pull` reads the store from a cursor and folds in only the paths
someone else wrote, so every stored path is learned exactly once per replica. On a store only
this process writes (sqlite, memory) pulling is a no-op.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol, runtime_checkable

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import RunPath
from hermes_sdk.store import Store
from hermes_sdk.store.base import BatchStore

log = logging.getLogger("hermes_sdk.server")

WRITER_CPUS_ENV: Final = "HERMES_WRITER_CPUS"
"""Environment variable: CPUs (``"1"``, ``"2,3"``) the store writer thread runs on (Linux). Unset:
wherever the process may run. ``bench_server_live`` pins ``hermes serve`` to one core; with it
the writer's fsyncs stop preempting the event loop there (see docs/decisions.md)."""


WRITER_NICE = 0
"""Niceness of the writer thread alone (0: the process's; Linux). Above 0 the event loop's thread
wins the core against it; in a SCHED_FIFO process the writer also drops to SCHED_OTHER. Not the
default: a ``bench_server_live`` A/B mode (``writer_nice19``)."""


def _lower_writer() -> None:
    """Give this (the writer) thread :data:`WRITER_NICE`, if set."""
    if not WRITER_NICE or not hasattr(os, "setpriority"):
        return
    try:
        if hasattr(os, "sched_setscheduler") and os.sched_getscheduler(0) != os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))  # 0: this thread
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)
    except OSError as exc:
        log.warning("writer niceness %d not applied: %s", WRITER_NICE, exc)


def _place_writer() -> None:
    """Initializer of the writer thread: pin it to :data:`WRITER_CPUS_ENV`'s CPUs, if set, and
    lower its priority (:data:`WRITER_NICE`), if set."""
    _lower_writer()
    spec = os.environ.get(WRITER_CPUS_ENV, "").strip()
    if not spec or not hasattr(os, "sched_setaffinity"):
        return
    try:
        os.sched_setaffinity(0, {int(cpu) for cpu in spec.split(",")})  # 0: this thread
    except (OSError, ValueError) as exc:
        log.warning("%s=%r not applied: %s", WRITER_CPUS_ENV, spec, exc)


@runtime_checkable
class CursorStore(Protocol):
    """Optional store capability: read only the paths appended after a cursor."""

    def paths_since(self, cursor: int) -> tuple[int, list[RunPath]]: ...


class RecordingStore:
    """A Store that delegates to ``inner`` and remembers what this process appended."""

    def __init__(self, inner: Store, *, record: bool) -> None:
        self.inner = inner
        self.corrupt_rows = 0
        self._record = record
        self.own: Counter[RunPath] = Counter()
        self.lock = threading.Lock()
        self.loaded = 0
        """Paths yielded by load_paths() so far (the registry's replay sets the cursor)."""
        self.cursor: int | None = None
        """Position after the replay in the store's own cursor space (CursorStore only)."""

    def append_path(self, path: RunPath) -> None:
        """Persist durably through the inner store and remember it as ours."""
        self.append_paths([path])

    def append_paths(self, paths: Sequence[RunPath]) -> None:
        """Persist several paths with one durable write when the store can, else one by one.

        They are marked as ours *before* the write (and unmarked if it fails), so a concurrent
        pull never mistakes them for another replica's.
        """
        if self._record:
            with self.lock:
                self.own.update(paths)
        try:
            if isinstance(self.inner, BatchStore):
                self.inner.append_paths(paths)
            else:
                for path in paths:
                    self.inner.append_path(path)
        except BaseException:
            if self._record:
                with self.lock:
                    self.own.subtract(paths)
                    self.own += Counter()  # drop zero counts
            raise

    def claim(self, path: RunPath) -> bool:
        """True (and forget it) if ``path`` is one this process appended."""
        with self.lock:
            if self.own[path] > 0:
                self.own[path] -= 1
                if not self.own[path]:
                    del self.own[path]
                return True
            self.own.pop(path, None)
            return False

    def load_paths(self) -> Iterator[RunPath]:
        """Every stored path (counted, so a later pull starts after them)."""
        if isinstance(self.inner, CursorStore):
            self.cursor, paths = self.inner.paths_since(0)
            self.loaded += len(paths)
            yield from paths
        else:
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
        self.cursor = self.store.loaded if self.store.cursor is None else self.store.cursor
        self.pulled = 0
        self._pending: list[tuple[Sequence[RunPath], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._writer: ThreadPoolExecutor | None = None
        """The one thread :meth:`write` persists on (created on first use)."""

    def validate(self, paths: Sequence[RunPath]) -> None:
        """Raise GraphError if any path cannot be learned by its app's graph; changes nothing."""
        for path in paths:
            graph = self.registry.get(path.app, path.tenant)
            if graph is not None:
                graph.validate(path)

    def store_and_fold(self, paths: Sequence[RunPath]) -> None:
        """Persist ``paths`` durably (one write), then learn them (blocking)."""
        self.store.append_paths(paths)
        self._fold(paths)

    def _fold(self, paths: Sequence[RunPath]) -> None:
        for path, exc in self.registry.fold(paths):  # validated before storing: only a race
            log.warning("stored path of app %r not learned: %s", path.app, exc)

    async def write(self, paths: Sequence[RunPath]) -> None:
        """Persist then learn ``paths``; concurrent callers share one durable write.

        The write runs in the writer thread (the event loop keeps admitting; placed by
        :data:`WRITER_CPUS_ENV`); whoever arrives while a write is in flight joins the next one
        (group commit).
        """
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((paths, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        await asyncio.shield(fut)  # a caller going away does not abort the shared write

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            paths = [p for group, _ in batch for p in group]
            if self._writer is None:
                self._writer = ThreadPoolExecutor(
                    1, thread_name_prefix="hermes-store-writer", initializer=_place_writer
                )
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._writer, self.store.append_paths, paths)
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self._fold(paths)
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    def close(self) -> None:
        """Let the writer thread exit once its write (if any) is done."""
        if self._writer is not None:
            self._writer.shutdown(wait=False)
            self._writer = None

    def pull(self) -> int:
        """Fold in paths other replicas appended since the last pull; returns how many."""
        if not self.shared:
            return 0
        inner = self.store.inner
        if isinstance(inner, CursorStore):
            self.cursor, new_paths = inner.paths_since(self.cursor)
            fresh: Iterator[RunPath] = iter(new_paths)
        else:
            fresh = itertools.islice(inner.load_paths(), self.cursor, None)
        theirs: list[RunPath] = []
        for path in fresh:
            if not isinstance(inner, CursorStore):
                self.cursor += 1
            if not self.store.claim(path):
                theirs.append(path)
        refused = self.registry.fold(theirs)
        for path, exc in refused:
            log.warning("skipping stored path of app %r: %s", path.app, exc)
        folded = len(theirs) - len(refused)
        self.pulled += folded
        return folded
