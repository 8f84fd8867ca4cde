"""Process-wide instrumentation settings: on/off, where completed runs and events go.

Embedded mode (no ``scheduler_url``): completed paths are folded into a process-wide
``GraphRegistry`` backed by the store (``store=`` / ``HERMES_STORE`` / the default
``sqlite:///~/.hermes/hermes.db``), created lazily at the first completed run so importing and
decorating never touches the disk. Remote mode: events go through a :class:`Recorder` to the
scheduler (``hermes_sdk.client.events.HttpEventSink``); completed paths are also folded into an
in-memory registry so :func:`current_hints` can rank locally.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Final

from hermes_sdk.errors import ConfigError
from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import RunPath
from hermes_sdk.instrument.env_settings import (
    SCHEDULER_URL_ENV,
    check_mode,
    env_disabled,
    env_learn_backpressure,
    env_learn_queue_bytes,
    env_learner_mode,
    env_scheduler,
    import_time_learner,
    import_time_queue_bytes,
)
from hermes_sdk.instrument.instrument_stats import InstrumentStats
from hermes_sdk.instrument.learn_batch import LearnTally, learn_batch
from hermes_sdk.instrument.learner import DEFAULT_MAX_BYTES, LearnerStats, RunLearner
from hermes_sdk.instrument.learner_process import ProcessLearner, ProcessLearnerStats
from hermes_sdk.instrument.learner_wire import encode_run
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
RANK_REFRESH_BUDGET: Final = 2
"""Rank tables rebuilt per learned batch (a few ms each; as the scheduler does)."""
FORK_QUIESCE_S: Final = 1.0
"""Longest ``os.fork`` waits for queued runs/events to be handled before it proceeds."""
SYNC_TIMEOUT_S: Final = 30.0
"""How long ``graph()``/``stats()`` wait for queued runs to be learned."""
MEMORY_STORE_URL: Final = "memory://"


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
        learn_queue_bytes: int = DEFAULT_MAX_BYTES,
        learn_backpressure: bool = False,
        learner: str = "thread",
    ) -> None:
        self.enabled = enabled
        self.sink_factory = sink_factory
        self.recorder = recorder
        self.store = store
        self.remote = remote
        self.tally = LearnTally()
        self._registry: GraphRegistry | None = None
        self._lock = threading.Lock()
        # Learning (and the durable store append) happens on a daemon thread, off the app's
        # path: ending a run costs the app a queue append, not a disk write; the thread stores
        # and learns whatever queued meanwhile as one batch (one transaction).
        self.learner = RunLearner(
            self.learn_many, max_bytes=learn_queue_bytes, backpressure=learn_backpressure
        )
        # learner="process": the same queue hands its batches to a child process instead, which
        # stores and learns them and sends its graphs back (hermes_sdk.instrument.learner_process)
        self.process: ProcessLearner | None = None
        if learner == "process":
            url = None if remote else _store_url(store)
            if url is None:
                log.warning(
                    "hermes: learner='process' needs embedded mode with a store URL; runs are "
                    "learned in this process"
                )
            else:
                self.process = ProcessLearner(
                    url,
                    fallback=self.learn_many,
                    on_fallback=self._process_gone,
                    after_install=refresh_rank_tables,
                    drain=self.learner.close,
                    exit_timeout_s=self.learner.exit_timeout_s,
                )
                self.learner.handle = self.process.handle
                # queued runs wait encoded (~630 bytes each against ~5,000 as objects): the
                # same bound absorbs ~8x longer stalls of the feeder thread
                self.learner.encode = encode_run

    def registry(self) -> GraphRegistry:
        """The registry runs are folded into, opened on first use (may raise StoreError)."""
        process = self.process
        if process is not None and process.active:
            return process.registry_for_hints()
        reg = self._registry
        if reg is not None:
            return reg
        with self._lock:
            if self._registry is None:
                self._registry = _open_registry(self.store, remote=self.remote)
            return self._registry

    def send_events_to(self, sink_factory: Callable[[], EventSink]) -> bool:
        """Also stream this runtime's run events to ``sink_factory()`` from now on (gateway
        discovery), keeping its own learning and store; ``False`` if it sends events already."""
        with self._lock:
            if self.recorder is not None:
                return False
            self.recorder = Recorder(
                sink_factory(),
                max_queue=DEFAULT_QUEUE_SIZE,
                flush_interval_s=DEFAULT_FLUSH_INTERVAL_S,
                exit_timeout_s=DEFAULT_EXIT_TIMEOUT_S,
            )
            self.sink_factory = sink_factory
        return True

    def has_registry(self) -> bool:
        """Whether a registry was opened already (hints never open one on the hot path)."""
        return self._registry is not None

    def deliver(self, path: RunPath) -> None:
        """Queue a completed path for learning on the background thread. Never blocks or raises."""
        if not path.stages:
            warn_no_units(path.app)
        self.learner.submit(path)

    def learn(self, path: RunPath) -> None:
        """Store and learn one completed path now; logs, never raises."""
        self.learn_many([path])

    def learn_many(self, paths: list[RunPath]) -> None:
        """Store ``paths`` in one batch write, then learn them (learner thread); never raises.
        See :func:`~hermes_sdk.instrument.learn_batch.learn_batch`; then up to
        ``RANK_REFRESH_BUDGET`` rank tables the batch made due are rebuilt here, off the app's
        path, so hints keep answering from fresh tables."""
        learn_batch(self.registry, paths, self.tally, refresh_rank_tables)

    @property
    def runs_completed(self) -> int:
        """Runs stored and learned in this process."""
        return self.tally.completed

    @property
    def runs_failed_to_record(self) -> int:
        """Runs refused by their graph or not stored, in this process (drops not included)."""
        return self.tally.failed

    def _process_gone(self) -> None:
        """The learner process was given up: this process opens the store and learns."""
        with self._lock:
            self._registry = None  # reopened (replaying what the child stored) at first use

    def sync(self, timeout_s: float | None = SYNC_TIMEOUT_S) -> bool:
        """Wait until every completed run so far is learned; ``False`` on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        learned = self.learner.flush(timeout_s)
        process = self.process
        if process is not None:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            learned = process.sync(left) and learned
        return learned

    def close(self) -> None:
        """Flush the recorder and the learner, then close the registry (reconfiguring)."""
        if self.recorder is not None:
            self.recorder.close()
        if self.process is not None:
            self.process.close()  # drains the queue into the child, waits for its answer
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
        return self.counters()

    def counters(self) -> InstrumentStats:
        """Current counters without waiting (what ``/metrics`` reads)."""
        rec = self.recorder.stats() if self.recorder is not None else None
        learner: LearnerStats = self.learner.stats()
        p: ProcessLearnerStats | None = None if self.process is None else self.process.stats()
        child_pending = 0 if p is None else max(p.sent - p.handled - p.lost, 0)
        return InstrumentStats(
            runs_completed=self.runs_completed + (0 if p is None else p.completed),
            runs_failed_to_record=self.runs_failed_to_record
            + learner.dropped
            + (0 if p is None else p.failed + p.lost),
            events_queued=rec.queued if rec else 0,
            events_sent=rec.sent if rec else 0,
            events_dropped=rec.dropped if rec else 0,
            events_lost=rec.lost if rec else 0,
            send_errors=rec.send_errors if rec else 0,
            runs_dropped=learner.dropped,
            runs_unencodable=learner.unencodable,
            runs_pending=learner.pending + child_pending,
            pending_bytes=learner.pending_bytes,
            peak_pending_bytes=learner.peak_bytes,
            max_pending_bytes=learner.max_bytes,
            learn_backpressure_sleeps=learner.backpressure_sleeps,
            learner_process_failures=0 if p is None else p.failures,
            runs_lost_in_learner_process=0 if p is None else p.lost,
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


def refresh_rank_tables(registry: GraphRegistry) -> None:
    """Rebuild up to ``RANK_REFRESH_BUDGET`` rank tables that learning made due, off the app's
    path (after a learned batch, or graphs installed from the learner process); never raises."""
    tables = registry.rank_tables
    if tables is not None:
        try:
            tables.refresh(RANK_REFRESH_BUDGET)  # (finds the due ones itself)
        except Exception as exc:  # a table is rebuilt at lookup instead; never fail here
            log.debug("hermes: rank table refresh failed: %r", exc)


def _store_url(store: str | Store | None) -> str | None:
    """The store URL a learner process opens (None for a ``Store`` object: it cannot cross)."""
    if isinstance(store, str):
        return store
    if store is None:
        return os.environ.get("HERMES_STORE") or DEFAULT_STORE_URL
    return None


def _open_registry(store: str | Store | None, *, remote: bool) -> GraphRegistry:
    if store is None:
        env = os.environ.get("HERMES_STORE")  # set but empty means the default, as open_store
        store = MEMORY_STORE_URL if remote else (env or DEFAULT_STORE_URL)
    return GraphRegistry(open_store(store) if isinstance(store, str) else store)


RUNTIME: Runtime = Runtime(
    enabled=not env_disabled(),
    learn_queue_bytes=import_time_queue_bytes(),
    learn_backpressure=env_learn_backpressure(),
    learner=import_time_learner(),
)
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
    learn_queue_bytes: int | None = None,
    learn_backpressure: bool | None = None,
    learner: str | None = None,
) -> None:
    """Set where runs go; each call replaces the previous configuration (flushing it first).

    ``scheduler_url`` selects remote mode (events to the scheduler, ``api_key`` as Bearer
    token); left ``None`` they come from ``HERMES_SCHEDULER_URL`` / ``HERMES_API_KEY`` (unset:
    embedded mode). ``store`` is a store URL (``sqlite:///path.db``, ``memory://``,
    ``redis://...``) or a ``Store`` for embedded mode; ``enabled=False`` turns runs off
    (decorators then cost one context-variable read); ``None`` keeps ``HERMES_DISABLED`` in
    charge. ``sink`` sends events to any :class:`EventSink` (tests, custom transports) in
    addition to embedded learning.
    Events wait at most ``flush_interval_s`` (default 5 ms) to be batched, so the scheduler
    sees state changes promptly; at most ``queue_size`` wait (more are dropped and counted);
    at exit, queued events get ``exit_timeout_s`` to leave. Completed runs wait for the store
    in a queue of at most ``learn_queue_bytes`` (default ``HERMES_LEARN_QUEUE_MIB`` or 4 MiB,
    about 800 13-stage runs); runs beyond it are dropped, counted in :func:`stats`
    (``runs_dropped``) and warned about at most once a minute. ``learn_backpressure=True``
    (default ``HERMES_LEARN_BACKPRESSURE``, off) makes ending a run wait instead, briefly (at
    most ~5 ms a run), while that queue is over 1/8 full, so a CPU-bound app that would starve
    the learner is slowed to its pace rather than losing runs. ``learner="process"`` (default
    ``HERMES_LEARNER``, else ``"thread"``) stores and learns completed runs in a child Python
    process started at the first completed run, which sends its graphs back (hints lag it by at
    most ~0.5 s plus the rank tables' staleness; exact after :func:`flush`); if it cannot start
    or dies, the thread learner takes over (logged once, counted in :func:`stats`).
    Raises :class:`ConfigError` for an unusable scheduler URL or learner.
    """
    global RUNTIME
    if learn_queue_bytes is None:
        learn_queue_bytes = env_learn_queue_bytes()
    elif isinstance(learn_queue_bytes, bool) or not isinstance(learn_queue_bytes, int):
        raise ConfigError(f"learn_queue_bytes must be an int, got {learn_queue_bytes!r}")
    elif learn_queue_bytes < 1:
        raise ConfigError(f"learn_queue_bytes must be >= 1, got {learn_queue_bytes}")
    try:
        learner = check_mode(env_learner_mode() if learner is None else learner)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if learn_backpressure is None:
        learn_backpressure = env_learn_backpressure()
    elif not isinstance(learn_backpressure, bool):
        raise ConfigError(f"learn_backpressure must be a bool, got {learn_backpressure!r}")
    if enabled is None:
        enabled = not env_disabled()
    if scheduler_url is not None and sink is not None:
        raise ConfigError("pass either scheduler_url or sink, not both")
    env_url, env_key = env_scheduler()
    if scheduler_url is None and sink is None:
        scheduler_url = env_url
    if api_key is None:
        api_key = env_key
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
        learn_queue_bytes=learn_queue_bytes,
        learn_backpressure=learn_backpressure,
        learner=learner,
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


def _configure_from_env() -> None:
    """At import: ``HERMES_SCHEDULER_URL`` set means remote mode without calling ``configure``."""
    if env_scheduler()[0] is None:
        return
    try:
        configure()
    except ConfigError as exc:  # importing must never fail the app
        log.warning("hermes: ignoring %s: %s", SCHEDULER_URL_ENV, exc)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


_configure_from_env()
