"""The garbage-collector settings ``hermes serve`` runs with (process-wide, so only the
command applies them; apps built by :func:`~hermes_sdk.server.create_app` leave ``gc`` alone).

Measured under ``benchmarks/bench_server_live.py`` (10,000 runs long-polling an acquire): the
loop's objects are mostly per-connection and per-request (aiohttp's protocol, parser, request,
the handler's task and coroutine chain: ~70 per waiting acquire, ~740,000 in all). Waiting
requests live up to the long-poll (25 s), so they outlive the young generations and are
promoted, and CPython 3.11 runs a full (generation-2) collection whenever a quarter of the old
generation is new: every ~5 s here, each holding the loop ~0.7-1 s. Settings:

- ``freeze``: :func:`gc.freeze` once the app is up: modules, classes and the loaded graphs
  never become garbage, so no collection scans them again.
- ``full_every_s``: automatic full collections off (the third threshold out of reach); the
  young generations are collected as before, and a full collection runs every
  ``full_every_s`` seconds from a task instead. Cycles that reach the old generation wait up
  to that long (the acquire-timeout path, which made ~20 cyclic objects per 429, no longer
  makes cycles: :mod:`hermes_sdk.server.leases`). ``None``: CPython's automatic rule.
- ``threshold1``: CPython's second threshold (default 10: a generation-1 collection after 11
  generation-0 ones). Every long-lived object is traversed once in each young generation
  whatever the threshold, so the total time is the same, but a generation-1 collection
  traverses what 11 generation-0 collections left: ~10-15k objects here, ~4-6 ms a pause. At
  2 it holds about a quarter of that (~0.5 ms a pause, ~4 times as often; both measured with
  the machine loaded). Since the gone-client sweep stopped allocating 50,000 tuples a second,
  young collections are ~6x rarer and each longer (generation-1 p50 ~8 ms, p99 ~24 ms at 5-8k
  events/s, 3-6% of wall time in all), which ``young_every_s`` now bounds.
- ``young_every_s``: a young (generation-1) collection every ``young_every_s`` seconds from a
  task, whatever CPython's counter says. That counter is allocations minus deallocations of
  tracked objects, old ones included: while 10,000 long-polls end and start again, the
  requests that end (old objects freed) offset the ones that start (new objects), the counter
  hovers under its threshold and the young generation grows to ~65,000 objects before a
  collection traverses them all at once (gen-1 pauses p99 ~24 ms, up to 40 ms). Collected
  every 10 ms it holds ~10 ms of allocations: the pause is bounded by time, not by a count
  that deaths cancel. Each object is traversed once before it is promoted (the automatic
  rule traverses a survivor in generation 0, then again in generation 1); the young
  collections found almost no garbage (145 objects in ~25 s under the benchmark), so
  promoting after ~10 ms leaves no garbage to wait for the full collection. While the process
  is idle (it used less than :data:`IDLE_CPU_FRACTION` of a core since the last tick) the wait
  doubles up to ``young_idle_every_s`` (default :data:`IDLE_YOUNG_EVERY_S`), so an idle server
  is not woken 100 times a second; the first tick that finds it busy again goes back to
  ``young_every_s``. Meanwhile CPython's own young collections run as usual.
- ``refreeze``: after each timed full collection, :func:`gc.freeze` the survivors (and
  :func:`gc.unfreeze` them just before the next one, so cycles among them are still freed
  there). Off: young collections never traverse the old generation, so it cannot shorten
  them, and the unfreeze hands the next full collection everything, the startup objects
  included: with a full collection every 5 s under the benchmark each took ~0.58-0.63 s with
  it against ~0.47-0.52 s without (medians of 3 runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

DEFAULT_FULL_EVERY_S: Final = 600.0
"""Seconds between two full collections under ``hermes serve`` (``--gc-full-every``)."""
DEFAULT_YOUNG_EVERY_S: Final = 0.01
"""Seconds between two timed young collections under ``hermes serve`` (``--gc-young-every``)."""
IDLE_YOUNG_EVERY_S: Final = 0.5
"""Longest wait (seconds) between two timed young collections while the process is idle."""
IDLE_CPU_FRACTION: Final = 0.02
"""A process that used less CPU than this fraction of the wall time since the last timed young
collection (the collection itself not counted) is idle: the next wait doubles."""
NEVER: Final = 2**31 - 1
"""A generation-2 threshold no count of generation-1 collections reaches."""


@dataclass(frozen=True, slots=True)
class GcSettings:
    """How ``hermes serve`` runs the collector."""

    freeze: bool = True
    full_every_s: float | None = DEFAULT_FULL_EVERY_S
    """Seconds between full collections; None (or <= 0): CPython's automatic full collections."""
    threshold1: int | None = 2
    """CPython's second threshold while serving (smaller generation-1 pauses); None: as is."""
    young_every_s: float | None = DEFAULT_YOUNG_EVERY_S
    """Seconds between timed young (generation 0 and 1) collections; None (or <= 0): only
    CPython's automatic ones."""
    young_idle_every_s: float | None = None
    """Longest wait between them while the process is idle (None: :data:`IDLE_YOUNG_EVERY_S`;
    ``young_every_s`` or less: never back off)."""
    refreeze: bool = False
    """Freeze the survivors of each timed full collection (unfrozen before the next one)."""


async def _collect_every(interval_s: float, *, refreeze: bool = False) -> None:
    while True:
        await asyncio.sleep(interval_s)
        if refreeze:
            gc.unfreeze()  # the previous survivors are collectable again
        gc.collect()
        if refreeze:
            gc.freeze()


async def collect_young_every(
    interval_s: float,
    *,
    idle_every_s: float | None = None,
    cpu_clock: Callable[[], float] = time.process_time,
) -> None:
    """Collect generations 0 and 1 every ``interval_s`` seconds, forever (cancel to stop); while
    the process is idle (``cpu_clock``, CPU seconds of every thread, advanced by less than
    :data:`IDLE_CPU_FRACTION` of the wall time since the last collection) the wait doubles up
    to ``idle_every_s`` (None: :data:`IDLE_YOUNG_EVERY_S`)."""
    longest = max(IDLE_YOUNG_EVERY_S if idle_every_s is None else idle_every_s, interval_s)
    clock = asyncio.get_running_loop().time
    wait = interval_s
    cpu0, t0 = cpu_clock(), clock()
    while True:
        await asyncio.sleep(wait)
        busy = cpu_clock() - cpu0 >= IDLE_CPU_FRACTION * (clock() - t0)
        gc.collect(1)
        cpu0, t0 = cpu_clock(), clock()  # the collection's own CPU is not activity
        wait = interval_s if busy else min(wait * 2.0, longest)


@contextlib.asynccontextmanager
async def gc_settings(settings: GcSettings) -> AsyncIterator[None]:
    """Apply ``settings`` while the body runs (call once the app is up); restore on exit."""
    thresholds = gc.get_threshold()
    tasks: list[asyncio.Task[None]] = []
    if settings.freeze:
        gc.collect()  # startup garbage is collected, not frozen
        gc.freeze()
    threshold1 = thresholds[1] if settings.threshold1 is None else settings.threshold1
    gc.set_threshold(thresholds[0], threshold1, thresholds[2])
    if settings.full_every_s is not None and settings.full_every_s > 0:
        gc.set_threshold(thresholds[0], threshold1, NEVER)
        full = _collect_every(settings.full_every_s, refreeze=settings.refreeze)
        tasks.append(asyncio.ensure_future(full))
    if settings.young_every_s is not None and settings.young_every_s > 0:
        young = collect_young_every(
            settings.young_every_s, idle_every_s=settings.young_idle_every_s
        )
        tasks.append(asyncio.ensure_future(young))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        gc.set_threshold(*thresholds)
        if settings.freeze or settings.refreeze:
            gc.unfreeze()
