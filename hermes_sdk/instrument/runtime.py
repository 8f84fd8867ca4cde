"""Process-wide instrumentation settings: on/off, where completed runs and events go.

Embedded mode (no ``scheduler_url``): completed paths are folded into a process-wide
``GraphRegistry`` backed by the store (``store=`` / ``HERMES_STORE`` / the default
``sqlite:///~/.hermes/hermes.db``), created lazily at the first completed run so importing and
decorating never touches the disk. Remote mode: events go through a :class:`Recorder` to the
scheduler (``hermes_sdk.client.events.HttpEventSink``); completed paths are also folded into an
in-memory registry so :func:`current_hints` can rank locally.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hermes_sdk.errors import ConfigError
from hermes_sdk.graph import GraphRegistry, PDGraph
from hermes_sdk.graph.records import RunPath
from hermes_sdk.instrument.recorder import (
    DEFAULT_EXIT_TIMEOUT_S,
    DEFAULT_FLUSH_INTERVAL_S,
    DEFAULT_QUEUE_SIZE,
    EventSink,
    Recorder,
)
from hermes_sdk.store import MemoryStore, Store, open_store

log = logging.getLogger("hermes_sdk.instrument")

DEFAULT_STORE_URL: Final = "sqlite:///~/.hermes/hermes.db"
LEARN_QUEUE_SIZE: Final = 100_000
"""Completed runs waiting to be learned; more are dropped and counted as failed to record."""
LEARN_EXIT_TIMEOUT_S: Final = 5.0
"""How long process exit waits for queued runs to reach the store."""
FORK_QUIESCE_S: Final = 1.0
"""Longest ``os.fork`` waits for queued runs/events to be handled before it proceeds."""
SYNC_TIMEOUT_S: Final = 30.0
"""How long ``graph()``/``stats()`` wait for queued runs to be learned."""
MEMORY_STORE_URL: Final = "memory://"


def env_disabled() -> bool:
    """True when ``HERMES_DISABLED`` asks for pass-through decorators (1/true/yes/on)."""
    return os.environ.get("HERMES_DISABLED", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class InstrumentStats:
    """Counters of the instrumentation since :func:`configure` (events and runs)."""

    runs_completed: int
    runs_failed_to_record: int
    events_queued: int
    events_sent: int
    events_dropped: int
    events_lost: int
    send_errors: int


class Runtime:
    """The one mutable owner of instrumentation settings (replaced wholesale by configure)."""

    def __init__(
        self,
        *,
        enabled: bool,
        recorder: Recorder | None = None,
        store: str | Store | None = None,
        remote: bool = False,
        sink_factory: Callable[[], EventSink] | None = None,
    ) -> None:
        self.enabled = enabled
        self.sink_factory = sink_factory
        self.recorder = recorder
        self.store = store
        self.remote = remote
        self.runs_completed = 0
        self.runs_failed_to_record = 0
        self._registry: GraphRegistry | None = None
        self._lock = threading.Lock()
        # Learning (and the durable store append) happens on a daemon thread, off the app's
        # path: ending a run costs the app a queue append, not a disk write.
        self.learner = Recorder(
            _LearnSink(self),
            max_queue=LEARN_QUEUE_SIZE,
            flush_interval_s=0.0,
            exit_timeout_s=LEARN_EXIT_TIMEOUT_S,
            label="completed runs",
        )

    def registry(self) -> GraphRegistry:
        """The registry runs are folded into, opened on first use (may raise StoreError)."""
        reg = self._registry
        if reg is not None:
            return reg
        with self._lock:
            if self._registry is None:
                self._registry = _open_registry(self.store, remote=self.remote)
            return self._registry

    def has_registry(self) -> bool:
        """Whether a registry was opened already (hints never open one on the hot path)."""
        return self._registry is not None

    def deliver(self, path: RunPath) -> None:
        """Queue a completed path for learning on the background thread. Never blocks or raises."""
        if not path.stages:
            warn_no_units(path.app)
        self.learner.emit({"path": path})

    def learn(self, path: RunPath) -> None:
        """Fold a completed path into the registry now (learner thread); logs, never raises."""
        try:
            self.registry().observe(path)
        except Exception as exc:
            self.runs_failed_to_record += 1
            log.warning("hermes: could not record run %s of %s: %r", path.run_id, path.app, exc)
            return
        self.runs_completed += 1

    def sync(self, timeout_s: float | None = SYNC_TIMEOUT_S) -> bool:
        """Wait until every completed run so far is learned; ``False`` on timeout."""
        return self.learner.flush(timeout_s)

    def close(self) -> None:
        """Flush the recorder and the learner, then close the registry (reconfiguring)."""
        if self.recorder is not None:
            self.recorder.close()
        self.learner.close()
        with self._lock:
            if self._registry is not None:
                try:
                    self._registry.close()
                except Exception as exc:
                    log.warning("hermes: closing the registry failed: %r", exc)
                self._registry = None

    def stats(self) -> InstrumentStats:
        """Current counters (after waiting briefly for queued runs to be learned)."""
        self.sync()
        rec = self.recorder.stats() if self.recorder is not None else None
        return InstrumentStats(
            runs_completed=self.runs_completed,
            runs_failed_to_record=self.runs_failed_to_record + self.learner.dropped,
            events_queued=rec.queued if rec else 0,
            events_sent=rec.sent if rec else 0,
            events_dropped=rec.dropped if rec else 0,
            events_lost=rec.lost if rec else 0,
            send_errors=rec.send_errors if rec else 0,
        )


_APPS_WARNED_NO_UNITS: set[str] = set()


def warn_no_units(app: str) -> None:
    """Log once per app (per process) that its runs end with no unit, so nothing is learned."""
    if app in _APPS_WARNED_NO_UNITS:
        return
    _APPS_WARNED_NO_UNITS.add(app)
    log.warning(
        "hermes: a run of app %r ended without any unit, so Hermes learns nothing about its"
        " demand and cannot rank it. Wrap the model client (client = hermes.wrap(OpenAI()))"
        " or decorate the calls (@hermes.llm, @hermes.tool, @hermes.retriever).",
        app,
    )


class _LearnSink:
    """The learner's sink: each queued item carries one completed path."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def send(self, events: list[dict[str, object]]) -> None:
        for item in events:
            path = item.get("path")
            if isinstance(path, RunPath):
                self._runtime.learn(path)


def _open_registry(store: str | Store | None, *, remote: bool) -> GraphRegistry:
    if store is None:
        env = os.environ.get("HERMES_STORE")  # set but empty means the default, as open_store
        store = MEMORY_STORE_URL if remote else (env or DEFAULT_STORE_URL)
    return GraphRegistry(open_store(store) if isinstance(store, str) else store)


RUNTIME: Runtime = Runtime(enabled=not env_disabled())
"""The active settings; module attribute read on every instrumented call."""


def current_runtime() -> Runtime:
    """The active runtime (after the latest :func:`configure`)."""
    return RUNTIME


def configure(
    scheduler_url: str | None = None,
    api_key: str | None = None,
    store: str | Store | None = None,
    enabled: bool | None = None,
    *,
    sink: EventSink | None = None,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
    exit_timeout_s: float = DEFAULT_EXIT_TIMEOUT_S,
) -> None:
    """Set where runs go; each call replaces the previous configuration (flushing it first).

    ``scheduler_url`` selects remote mode (events to the scheduler, ``api_key`` as Bearer
    token); ``store`` is a store URL (``sqlite:///path.db``, ``memory://``, ``redis://...``) or
    a ``Store`` for embedded mode; ``enabled=False`` turns runs off (decorators then cost one
    context-variable read); ``None`` keeps ``HERMES_DISABLED`` in charge. ``sink`` sends events
    to any :class:`EventSink` (tests, custom transports) in addition to embedded learning.
    Events wait at most ``flush_interval_s`` (default 5 ms) to be batched, so the scheduler
    sees state changes promptly; at most ``queue_size`` wait (more are dropped and counted);
    at exit, queued events get ``exit_timeout_s`` to leave.
    Raises :class:`ConfigError` for an unusable scheduler URL.
    """
    global RUNTIME
    if enabled is None:
        enabled = not env_disabled()
    if scheduler_url is not None and sink is not None:
        raise ConfigError("pass either scheduler_url or sink, not both")
    sink_factory: Callable[[], EventSink] | None = None
    if scheduler_url is not None:
        if not scheduler_url.startswith(("http://", "https://")):
            raise ConfigError(f"scheduler_url must be an http(s) URL, got {scheduler_url!r}")
        try:
            from hermes_sdk.client.events import (  # type: ignore[import-not-found,unused-ignore]
                HttpEventSink,
            )
        except ImportError as exc:
            raise ConfigError("remote mode needs hermes_sdk.client.events") from exc
        url = scheduler_url

        def http_sink() -> EventSink:
            made: EventSink = HttpEventSink(url, api_key=api_key)
            return made

        sink_factory = http_sink
        sink = http_sink()
    recorder = None
    if sink is not None:
        recorder = Recorder(
            sink,
            max_queue=queue_size,
            flush_interval_s=flush_interval_s,
            exit_timeout_s=exit_timeout_s,
        )
    old = RUNTIME
    RUNTIME = Runtime(
        enabled=enabled,
        recorder=recorder,
        store=store,
        remote=scheduler_url is not None,
        sink_factory=sink_factory,
    )
    old.close()
    # Units decorated with admit=True hold a backend slot of this scheduler (none: admit at once).
    from hermes_sdk.client.admission import configure_admission

    configure_admission(scheduler_url, api_key)


def _before_fork() -> None:
    """Let the background threads finish what they hold (briefly), so no lock they own is
    copied into the child in a taken state."""
    runtime = RUNTIME
    try:
        runtime.learner.flush(FORK_QUIESCE_S)
        if runtime.recorder is not None:
            runtime.recorder.flush(FORK_QUIESCE_S)
    except Exception as exc:
        log.debug("hermes: could not quiesce before fork: %r", exc)


def _after_fork_in_child() -> None:
    """A forked child must not share the parent's store connection or HTTP connection.

    A durable store is reopened lazily (it replays every path the parent stored, so nothing
    learned is lost); an in-memory registry is kept as it is. The scheduler sink is rebuilt.
    """
    runtime = RUNTIME
    runtime._lock = threading.Lock()
    reg = runtime._registry
    if reg is not None and reg.store is not None and not isinstance(reg.store, MemoryStore):
        runtime._registry = None
    if runtime.recorder is not None and runtime.sink_factory is not None:
        try:
            runtime.recorder.sink = runtime.sink_factory()
        except Exception as exc:
            log.warning("hermes: could not rebuild the event sink after fork: %r", exc)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def stats() -> InstrumentStats:
    """Counters of the active configuration: runs recorded, events sent/dropped/lost."""
    return RUNTIME.stats()


def flush(timeout_s: float | None = None) -> bool:
    """Block until queued events reached the sink and completed runs were learned (stored).

    Returns ``False`` if that did not happen within ``timeout_s`` seconds (``None``: no limit).
    """
    runtime = RUNTIME
    learned = runtime.sync(timeout_s)
    rec = runtime.recorder
    return learned and (True if rec is None else rec.flush(timeout_s))


class GraphAccessor:
    """``hermes.graph``: call it for an app's learned PDGraph.

    ``hermes_sdk.graph`` is also the name of the graph package, and re-exporting a plain
    function under that name would hide the package from ``import hermes_sdk.graph as g``.
    This accessor is callable *and* forwards attribute access to the package, so both
    ``hermes.graph("doc-qa")`` and ``import hermes_sdk.graph.pdgraph`` keep working.
    """

    __slots__ = ()

    def __call__(self, app: str, *, tenant: str = "default") -> PDGraph:
        """The PDGraph learned for ``app`` in this process (created empty if it has no runs).

        Opens the configured store on first use (replaying its stored paths); raises
        :class:`~hermes_sdk.errors.StoreError` / :class:`ConfigError` if it is unusable.
        """
        RUNTIME.sync()
        return RUNTIME.registry().graph(app, tenant)

    def __getattr__(self, name: str) -> object:
        return getattr(importlib.import_module("hermes_sdk.graph"), name)

    def __repr__(self) -> str:
        return "<hermes graph accessor: graph(app) -> PDGraph>"


graph = GraphAccessor()
"""``graph(app, *, tenant="default") -> PDGraph``: the graph learned for ``app`` so far."""


def registry() -> GraphRegistry:
    """The process-wide registry completed runs are folded into (synced, opened on first use)."""
    RUNTIME.sync()
    return RUNTIME.registry()
