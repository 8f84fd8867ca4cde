"""Run the prewarm planner in real time: an asyncio task that decides and delivers signals.

:class:`PrewarmRuntime` owns a :class:`PrewarmPlanner`, a list of adapters and a monotonic clock.
Callers report what happens (a run's state changed, a backend got a request, finished one, became
ready); each report wakes the task, which asks the planner for signals, hands them to every
adapter (adapters return at once, see :mod:`hermes_sdk.prewarm.adapters`), and sleeps until the
planner's next wake-up time or the next report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence

from hermes_sdk.graph.records import RunState
from hermes_sdk.prewarm.adapters import PrewarmAdapter, deliver
from hermes_sdk.prewarm.ledger import PrewarmMetrics, Status
from hermes_sdk.prewarm.planner import PrewarmPlanner, PrewarmSignal

log = logging.getLogger("hermes_sdk.prewarm")


class PrewarmRuntime:
    """The planner's real-time driver (start with :meth:`start`, stop with :meth:`aclose`)."""

    def __init__(
        self,
        planner: PrewarmPlanner,
        adapters: Sequence[PrewarmAdapter] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        max_sleep_s: float = 5.0,
        history: int = 1000,
    ) -> None:
        self.planner = planner
        self.adapters = list(adapters)
        self.clock = clock
        self.max_sleep_s = max_sleep_s
        self.signals: list[PrewarmSignal] = []
        """The most recent signals sent (up to ``history``), oldest first."""
        self._history = history
        self.sent = 0
        """Signals sent so far; signal number ``i`` (1-based) is ``signals[i - sent - 1]``."""
        self._new_signals = asyncio.Condition()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- reports (cheap, synchronous: safe to call from request handlers) -----------------------

    def run_state(self, run_id: str, app: str, state: RunState, *, tenant: str = "default") -> None:
        """A run entered ``state`` (a stage started: ``running=True``; or ended)."""
        self.planner.update_run(run_id, app, state, self.clock(), tenant=tenant)
        self._wake.set()

    def run_end(self, run_id: str) -> None:
        """A run finished."""
        self.planner.end_run(run_id, self.clock())
        self._wake.set()

    def request(self, backend: str) -> Status:
        """A request for ``backend`` arrived; returns the state it found."""
        found = self.planner.ledger.request(backend, self.clock())
        if found == "cold":
            self.planner.ledger.starting(backend, self.clock(), prewarm=False)
        self._wake.set()
        return found

    def waited(self, backend: str, wait_s: float) -> None:
        """A request waited ``wait_s`` seconds for the backend's start-up."""
        self.planner.ledger.waited(backend, wait_s)

    def done(self, backend: str) -> None:
        """A request for ``backend`` finished."""
        self.planner.ledger.done(backend, self.clock())
        self._wake.set()

    def ready(self, backend: str, startup_s: float | None = None) -> None:
        """``backend`` became ready after ``startup_s`` seconds (learned as its cold start)."""
        self.planner.ledger.ready(backend, self.clock(), startup_s)
        self._wake.set()

    def metrics(self) -> dict[str, PrewarmMetrics]:
        """Per-backend prewarm metrics now."""
        return self.planner.metrics(self.clock())

    # --- the task ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the decision task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="prewarm")

    async def step(self) -> tuple[PrewarmSignal, ...]:
        """Decide once now and deliver; returns the signals sent (also used by tests)."""
        decision = self.planner.decide(self.clock())
        if decision.signals:
            self.signals.extend(decision.signals)
            self.sent += len(decision.signals)
            del self.signals[: max(0, len(self.signals) - self._history)]
            async with self._new_signals:
                self._new_signals.notify_all()
            await deliver(decision.signals, self.adapters)
        self._next_wake_s = decision.wake_at_s
        return decision.signals

    async def signals_after(self, seq: int, wait_s: float = 0.0) -> tuple[int, list[PrewarmSignal]]:
        """Signals numbered after ``seq`` (waiting up to ``wait_s`` for one) and the last number.

        A subscriber passes back the returned number; signals that fell out of the history are
        skipped, never repeated.
        """
        if self.sent <= seq and wait_s > 0.0:
            async with self._new_signals:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._new_signals.wait_for(lambda: self.sent > seq), wait_s
                    )
        first = self.sent - len(self.signals)  # number of the oldest kept signal, minus one
        return self.sent, self.signals[max(0, seq - first) :]

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.step()
            except Exception:  # keep deciding; one bad forecast must not stop prewarm
                log.exception("prewarm decision failed")
                self._next_wake_s = math.inf
            sleep_s = min(self.max_sleep_s, max(0.0, self._next_wake_s - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep_s)

    async def aclose(self) -> None:
        """Stop the task and close every adapter."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for adapter in self.adapters:
            await adapter.aclose()

    _next_wake_s: float = math.inf
