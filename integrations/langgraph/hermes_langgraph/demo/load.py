"""How loaded each engine was during one policy's pass of `hermes demo`.

Read from what a deployment exposes: each simulated engine's request records (``GET
/debug/requests`` of ``hermes sim-engine``: arrival, start and finish on the machine's monotonic
clock, the ``priority`` it received, tokens, preemptions) and the gateway's queue-wait histogram
(``hermes_queue_wait_seconds{backend}`` on ``/metrics``). Batch occupancy is averaged over the
arrival span (first app start to last), the steady part of the pass; the gateway's queue length
over the whole pass by Little's law (requests waiting = total seconds waited / pass seconds).
A record only has its first start and its finish, so a request preempted by a better one counts
as decoding while it waits to resume: with preemptions (an engine admitted more than a batch)
occupancy is an upper bound and may exceed the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """One engine over one pass (counts, fractions, seconds)."""

    engine: str
    """The gateway's upstream name (``fast``, ``slow``)."""
    requests: int
    max_batch: int
    offered_load: float
    """Tokens the apps asked of this engine per second of the arrival span, over what a full
    batch decodes per second (> 1: more work arrives than the engine can do; a queue builds)."""
    mean_batch: float
    """Time-average requests decoding at once over the arrival span."""
    full_share: float
    """Fraction of the arrival span during which the batch was full (only then can the order in
    which waiting requests are admitted matter)."""
    gateway_queue: float
    """Time-average requests waiting in the gateway's admission queue over the pass."""
    gateway_wait_s: float
    """Mean seconds a request waited at the gateway for a batch slot."""
    engine_queue: float
    """Time-average requests waiting inside the engine (0 when the gateway admits at most a
    batch: the engine's own priority order then has nothing to reorder)."""
    priorities: int
    """Distinct engine-native ``priority`` values the engine received (1: no ranking reached it)."""
    preemptions: int

    @property
    def utilisation(self) -> float:
        """Mean batch occupancy as a fraction of the batch size."""
        return self.mean_batch / self.max_batch


def _busy_time(
    intervals: Iterable[tuple[float, float]], at_least: int, t0: float, t1: float
) -> float:
    """Over [t0, t1] (s): with ``at_least`` 0, the integral of the number of open intervals
    (request-seconds); else the seconds during which at least ``at_least`` were open."""
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        start, end = max(start, t0), min(end, t1)
        if end > start:
            events += [(start, 1), (end, -1)]
    events.sort()
    total, running, last = 0.0, 0, t0
    for t, delta in events:
        if at_least == 0:
            total += running * (t - last)
        elif running >= at_least:
            total += t - last
        running += delta
        last = t
    return total


def engine_load(
    name: str,
    records: Iterable[Mapping[str, object]],
    batch: tuple[int, float],
    window: tuple[float, float, float],
    gateway_waits: tuple[float, int],
) -> EngineLoad:
    """Summarise one engine's ``records``. ``batch``: (batch size, seconds of a full batch's
    step); ``window``: (pass start, last app start, pass end) in monotonic seconds;
    ``gateway_waits``: (total seconds waited, requests) of the gateway's histogram."""
    max_batch, full_step_s = batch
    t0, t_arrivals, t1 = window
    span = max(t_arrivals - t0, 1e-9)
    ran: list[tuple[float, float]] = []
    tokens = 0
    engine_wait = 0.0
    priorities: set[object] = set()
    preemptions = 0
    count = 0
    for r in records:
        count += 1
        priorities.add(r.get("priority"))
        preemptions += int(r.get("preemptions") or 0)  # type: ignore[call-overload]
        tokens += int(r.get("completion_tokens") or 0)  # type: ignore[call-overload]
        start, finish, arrival = r.get("start_s"), r.get("finish_s"), r.get("arrival_s")
        if isinstance(start, float) and isinstance(arrival, float):
            engine_wait += start - arrival
            if isinstance(finish, float):
                ran.append((start, finish))
    waited_s, waited_n = gateway_waits
    return EngineLoad(
        engine=name,
        requests=count,
        max_batch=max_batch,
        offered_load=tokens * full_step_s / (max_batch * span),
        mean_batch=_busy_time(ran, 0, t0, t_arrivals) / span,
        full_share=_busy_time(ran, max_batch, t0, t_arrivals) / span,
        gateway_queue=waited_s / max(t1 - t0, 1e-9),
        gateway_wait_s=waited_s / waited_n if waited_n else 0.0,
        engine_queue=engine_wait / max(t1 - t0, 1e-9),
        priorities=len(priorities),
        preemptions=preemptions,
    )


def gateway_waits(metrics_text: str) -> dict[str, tuple[float, int]]:
    """upstream -> (seconds waited in total, requests granted) from ``/metrics`` text."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "hermes_queue_wait_seconds":
            continue
        for sample in family.samples:
            backend = sample.labels.get("backend", "")
            if sample.name.endswith("_sum"):
                sums[backend] = float(sample.value)
            elif sample.name.endswith("_count"):
                counts[backend] = int(sample.value)
    return {b: (sums.get(b, 0.0), counts.get(b, 0)) for b in set(sums) | set(counts)}


def clear_records(engine_url: str) -> None:
    """Forget an engine's request records (``DELETE /debug/requests``) before a pass."""
    httpx.delete(f"{engine_url}/debug/requests", timeout=10).raise_for_status()


def measure(
    engines: Mapping[str, tuple[str, float]],
    gateway: str,
    max_batch: int,
    window: tuple[float, float, float],
) -> list[EngineLoad]:
    """Each engine's load in one pass: ``engines`` maps upstream name -> (engine base URL,
    seconds of its full batch's step); ``window`` as in :func:`engine_load`."""
    waits = gateway_waits(httpx.get(f"{gateway}/metrics", timeout=10).raise_for_status().text)
    out = []
    for name, (url, full_step_s) in engines.items():
        doc = httpx.get(f"{url}/debug/requests", timeout=30).raise_for_status().json()
        batch = (max_batch, full_step_s)
        out.append(engine_load(name, doc["requests"], batch, window, waits.get(name, (0.0, 0))))
    return out
