"""Live load test: ``hermes serve`` ranking 10,000 concurrent runs at fixed offered event rates.

Run: ``.venv/bin/python benchmarks/bench_server_live.py [--quick] [--runs N] [--rates R,R,..]
[--secs S] [--plot-only]``. Writes ``benchmarks/results/server_live.json`` and ``.png``.

Starts ``hermes serve`` (one backend ``gpu`` with 32 slots, gittins, SQLite in a temp dir) in its
own process pinned to CPU 0 (``taskset``: the server gets one core); this process, the load
generator, pins itself to CPU 1. It teaches the server 20 apps (50 runs each), then starts
``--runs`` runs (each in a running unit) that all hold an ``acquire`` on ``gpu`` (25 s long-polls
re-posted on a 429, as the SDK does): 32 hold a slot for ``HOLD_S`` and release it (then acquire
again), the others wait in the queue.

For each offered rate the generator is *open loop*: batches of ``BATCH`` rank-bearing events
(a unit of a random run ends, its next unit starts; each re-ranks that run in the queue) plus
one completed run (a path the graphs learn) are sent at random arrival times (``arrival_offsets``:
Poisson bursts, exactly the offered count per window), each batch on
its own request whether or not earlier ones were answered, so the server's delays cannot slow
the offered load (a closed loop measures queueing at saturation instead). Per rate: achieved
rank-bearing events/s, grants/s, the events batch latency, the *decision latency* measured
end to end by the client (a release sent -> the grant it made reaching its waiter; releases and
grants paired in order) and by the server (``hermes_grant_answer_seconds``: the grant -> the
granted waiter answered; ``hermes_rank_latency_seconds``: one rank), the server's CPU seconds,
and the generator's own event-loop lag (how late a 1 ms timer fires: the client's share of the
measured latency), the server's own loop lag (``hermes_event_loop_lag_seconds``) and garbage
collections per generation (``hermes_gc_pause_seconds``), and the kernel's listen-queue
overflows in the window (a dropped SYN costs a 1 s retransmission, measured as latency).
Reports the highest offered rate whose client p99 decision is <= 5 ms.
Targets: >= 5,000 rank-bearing events/s on one core with p99 decision <= 5 ms.

The whole run is made once per mode, in one invocation (``--modes``, default: the baseline
``hermes serve --gc-full-every 0 --no-gc-freeze``, CPython's automatic collections, then
``hermes serve`` as shipped; other modes in ``SERVER_ARGS`` are A/B variants), ``--repeat N``
times with the modes interleaved; ``rates`` holds the last mode's last run, ``baseline`` the
first mode's, ``repeated.medians`` each mode's medians over the repetitions. Per window it also
reports the server's run-queue wait (its threads runnable but not running: the one core is
shared with its own writer thread and anything else the machine runs there), and per thread
group (``server_threads``: the event loop's thread, the others) CPU and run-queue wait. The
generator runs its own young collections every 10 ms, as ``hermes serve`` does: its 10,000
waiters made its automatic ones 10-25 ms each, measured as decision latency.
``HERMES_LIVE_TURNS=PATH`` runs the server under ``live_turns.py`` (loop turns per callback,
young-collection sizes; asyncio's loop, whose callbacks it can time).

Placement: a mode named ``MODE@rt`` runs ``MODE`` *isolated*: the server (``chrt -f``) and the
generator under SCHED_FIFO ``RT_PRIORITY``, so on their cores they preempt every ordinary
process (other sessions' work, the machine's daemons): an emulation of a dedicated core, which
``isolcpus`` would give a production scheduler. Plain modes share the cores as they are. ``rates``
holds the last plain mode's last run, ``baseline`` the first plain mode's, ``isolated`` the last
``@rt`` mode's. ``--gen-loop`` picks the generator's event loop (default: uvloop when installed,
as ``hermes serve --loop auto``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import numpy as np

from hermes_sdk.server.event_loop import LOOP_NAMES, resolve_loop, run_on
from hermes_sdk.server.gc_setup import NEVER, collect_young_every
from hermes_sdk.server.loop_health import GcPauses

RESULTS = Path(__file__).parent / "results" / "server_live.json"
PNG = RESULTS.with_suffix(".png")
EVENTS_TARGET = 5_000.0
DECISION_P99_TARGET_MS = 5.0
SLOTS = 32
APPS = 20
BATCH = 50
"""Rank-bearing events per request (plus one run_end carrying a path to learn)."""
HOLD_S = 0.05
"""How long a granted run holds its slot before releasing it (seconds)."""
RAMP_STEP = 250
POLL_S = 25.0
"""Long-poll of one acquire (the SDK's DEFAULT_ACQUIRE_POLL_S): 10,000 runs re-poll 400/s."""
SETTLE_S = 1.0
"""Seconds each rate runs before its measurement window opens."""
SERVER_CPU, LOADGEN_CPU = 0, 1
RT_PRIORITY = 50
"""SCHED_FIFO priority of the server and the generator in an isolated mode (``MODE@rt``):
runnable, they preempt every ordinary process on their core (an emulation of a dedicated,
isolated core: ``isolcpus`` is not available here). The kernel still keeps 5% of each second
for the others (``sched_rt_runtime_us``)."""
RT_SUFFIX = "@rt"
SERVER_ARGS: dict[str, list[str]] = {
    "baseline": ["--gc-full-every", "0", "--no-gc-freeze"],
    "shipped": [],
    "asyncio_loop": ["--loop", "asyncio"],
    "uvloop": ["--loop", "uvloop"],
    "young_off": ["--gc-young-every", "0"],
    "young_5ms": ["--gc-young-every", "0.005"],
    "young_20ms": ["--gc-young-every", "0.02"],
    "full_5s": ["--gc-full-every", "5"],
    "full_5s_refreeze": ["--gc-full-every", "5", "--gc-refreeze"],
    "one_turn_batches": ["=hermes_sdk.server.run_events:APPLY_CHUNK=1000000"],
    "switch_0.5ms": ["=sys:switchinterval=0.0005"],
    "sweep_1s": ["=hermes_sdk.server.leases:DISCONNECT_POLL_S=1.0"],
    "writer_cpu1": [f"+HERMES_WRITER_CPUS={LOADGEN_CPU}"],
    "young_no_backoff": ["=hermes_sdk.server.gc_setup:IDLE_YOUNG_EVERY_S=0.01"],
    "whole_table_turns": ["=hermes_sdk.server.table_refresh:REFRESH_STEP_S=1000000.0"],
    "sweep_anyway": ["=hermes_sdk.server.leases:SWEEP_ANYWAY=1"],
    "writer_nice19": ["=hermes_sdk.server.graph_sync:WRITER_NICE=19"],
}
"""``hermes serve`` flags of each mode (``--modes``): ``young_off`` is the shipped settings
before timed young collections; ``full_5s*`` make the timed full collection happen inside the
windows (every 5 s) to measure it with and without freezing its survivors. An argument
``=MODULE:NAME=VALUE`` runs the server through ``live_variant.py`` with that constant changed
(``one_turn_batches``: each events batch applied in one loop turn, as before the chunks)."""
LOADGEN_YOUNG_EVERY_S = 0.01
"""The generator's own timed young collections (as ``hermes serve``): its 10,000 waiters made
its automatic ones 10-25 ms each, measured as decision latency."""
NODES = ("plan", "search", "refine")
CYCLE = ("plan", "search", "refine")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _path(app: str, rng: random.Random) -> dict[str, Any]:
    stages = [{"node": "plan", "kind": "llm", "calls": [{"service_s": rng.expovariate(1.0)}]}]
    for _ in range(rng.randint(0, 4)):
        node = rng.choice(NODES[1:])
        stages.append({"node": node, "kind": "tool", "calls": [{"service_s": rng.random()}]})
    return {"app": app, "stages": stages}


JSON_HEADERS = {"Content-Type": "application/json"}
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
"""The generator's JSON (msgspec: a tenth of ``json``'s cost, which its loop pays for every
request beside timing the decisions)."""


async def _post(http: aiohttp.ClientSession, url: str, body: object) -> Any:
    async with http.post(url, data=_encode(body), headers=JSON_HEADERS) as resp:
        data = _decode(await resp.read())
        if resp.status >= 400:
            raise RuntimeError(f"{url}: {resp.status} {data}")
        return data


async def _wait_up(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(600):
        try:
            async with http.get(url + "/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


# --- Prometheus text --------------------------------------------------------------------------


def _sample(metrics: str, name: str) -> float:
    """The value of one sample line ``name value`` of the Prometheus text (0 if absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def _buckets(metrics: str, name: str, labels: str = "") -> dict[float, float]:
    """Cumulative bucket counts ``{le: count}`` of histogram ``name`` (the label sets whose text
    starts with ``labels``, e.g. ``generation="2"``, summed)."""
    out: dict[float, float] = {}
    for line in metrics.splitlines():
        if line.startswith(name + "_bucket{" + labels):
            le = line.split('le="')[1].split('"')[0]
            bound = float("inf") if le == "+Inf" else float(le)
            out[bound] = out.get(bound, 0.0) + float(line.split()[-1])
    return out


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> Any:
    """``q``-quantile (ms) of the observations between two scrapes, linear inside a bucket as
    Prometheus' ``histogram_quantile``; None without observations."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower * 1e3
            frac = (rank - below) / (count - below) if count > below else 1.0
            return (lower + frac * (bound - lower)) * 1e3
        lower, below = bound, count
    return None


# --- the load ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Window:
    """What one rate's measurement window collected."""

    grants: list[float] = field(default_factory=list)
    releases: list[float] = field(default_factory=list)
    batch_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    accepted: int = 0
    sent: int = 0
    open: bool = False


def _rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` (MB, Linux /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def _listen_overflows() -> float | None:
    """The kernel's ``TcpExtListenOverflows`` (SYNs dropped on a full accept queue; every
    process on the machine counts)."""
    try:
        lines = [ln.split() for ln in Path("/proc/net/netstat").read_text().splitlines()]
        names, values = (ln for ln in lines if ln and ln[0] == "TcpExt:")
        return float(values[names.index("ListenOverflows")])
    except (OSError, ValueError):
        return None


def _gc_window(before: str, after: str) -> dict[str, Any]:
    """Garbage collections per generation in the window: count, p50/p99 (ms, from buckets),
    total ms."""
    out: dict[str, Any] = {}
    name = "hermes_gc_pause_seconds"
    for gen in ("0", "1", "2"):
        label = f'generation="{gen}"'
        b, a = _buckets(before, name, label), _buckets(after, name, label)
        total = _sample(after, f"{name}_sum{{{label}}}") - _sample(before, f"{name}_sum{{{label}}}")
        out[gen] = {
            "count": a.get(float("inf"), 0.0) - b.get(float("inf"), 0.0),
            "p50_ms": histogram_quantile(b, a, 0.5),
            "p99_ms": histogram_quantile(b, a, 0.99),
            "total_ms": total * 1e3,
        }
    return out


def _schedstat(pid: int) -> dict[str, tuple[float, float]] | None:
    """Per thread group of process ``pid`` (``main``: the event loop's thread; ``others``: the
    SQLite writer and executor threads), seconds on a CPU and seconds runnable but waiting for
    one so far (Linux ``/proc/PID/task/*/schedstat``): the one core the server is pinned to is
    shared by its own threads and anything else the machine runs there."""
    out = {"main": [0, 0], "others": [0, 0]}
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                fields = (task / "schedstat").read_text().split()
                row = out["main" if task.name == str(pid) else "others"]
                row[0] += int(fields[0])
                row[1] += int(fields[1])
    except (OSError, IndexError, ValueError):
        return None
    return {k: (v[0] / 1e9, v[1] / 1e9) for k, v in out.items()}


def _thread_rates(
    before: dict[str, tuple[float, float]] | None,
    after: dict[str, tuple[float, float]] | None,
    elapsed: float,
) -> dict[str, Any]:
    """CPU seconds per second and run-queue wait ms per second of each thread group."""
    if before is None or after is None:
        return {}
    return {
        group: {
            "cpu_s_per_s": (after[group][0] - before[group][0]) / elapsed,
            "runqueue_wait_ms_per_s": (after[group][1] - before[group][1]) * 1e3 / elapsed,
        }
        for group in after
    }


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _pair_fifo(releases: list[float], grants: list[float]) -> list[float]:
    """Seconds from each release to the grant it made: every slot released while runs wait is
    granted to one of them, so grants are matched to the earliest unmatched earlier release."""
    out: list[float] = []
    i = 0
    for g in grants:
        if i < len(releases) and releases[i] <= g:
            out.append(g - releases[i])
            i += 1
    return out


def _q(values: list[float] | np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def arrival_offsets(batch_rate: float, secs: float, rng: random.Random) -> list[float]:
    """Send times of the batches (seconds from the start, sorted): ``round(batch_rate * S)`` of
    them at uniform random times in the settling period (``SETTLE_S``), then as many per second
    of the ``secs`` window. A Poisson process conditioned on its count: its bursts, but exactly
    the offered rate in the window (a free-running Poisson stream offered 5,000 events/s sent
    4,737/s in the window with its seed)."""
    out: list[float] = []
    for start, length in ((0.0, SETTLE_S), (SETTLE_S, secs)):
        n = round(batch_rate * length)
        out += sorted(start + rng.random() * length for _ in range(n))
    return out


class Load:
    """The runs, their waiters and the open-loop event generator against one server."""

    def __init__(self, url: str, pid: int, n_runs: int, batch: int, rng: random.Random) -> None:
        self.url, self.pid, self.batch, self.rng = url, pid, batch, rng
        self.apps = [f"app{i}" for i in range(APPS)]
        self.runs = [f"live-{i}" for i in range(n_runs)]
        self.unit = dict.fromkeys(self.runs, 0)
        self.window = Window()
        self.stop = asyncio.Event()
        self.seq = 0
        self.seq_reset = False

    async def setup(self, http: aiohttp.ClientSession) -> dict[str, float]:
        """Teach the apps, start the runs and queue every run's acquire."""
        learned = 0
        for app in self.apps:
            events = [
                {"type": "run_end", "run_id": f"train-{app}-{k}", "path": _path(app, self.rng)}
                for k in range(50)
            ]
            learned += (await _post(http, self.url + "/v1/events", {"events": events}))["accepted"]
        for start in range(0, len(self.runs), 500):
            events: list[dict[str, Any]] = []
            for rid in self.runs[start : start + 500]:
                events.append(
                    {"type": "run_start", "run_id": rid, "app": self.rng.choice(self.apps)}
                )
                events.append({"type": "unit_start", "run_id": rid, "unit_id": "0", "node": "plan"})
            await _post(http, self.url + "/v1/events", {"events": events})
        # waiters connect in steps so the accept backlog never overflows (a dropped SYN costs a
        # 1-3 s retransmission, which would be measured as latency)
        self.tasks = []
        for start in range(0, len(self.runs), RAMP_STEP):
            self.tasks += [
                asyncio.ensure_future(self.waiter(http, rid))
                for rid in self.runs[start : start + RAMP_STEP]
            ]
            await asyncio.sleep(0.1)
        depth = 0.0
        for _ in range(100):  # until every acquire is queued
            await asyncio.sleep(0.2)
            async with http.get(self.url + "/metrics") as resp:
                depth = _sample(await resp.text(), 'hermes_queue_depth{backend="gpu"}')
            if depth >= len(self.runs) - SLOTS:
                break
        return {"paths_learned_before": float(learned), "queued_at_start": depth}

    async def waiter(self, http: aiohttp.ClientSession, rid: str) -> None:
        """One run's acquires, long-polling as the SDK does (``POLL_S``, again on a 429); the
        first poll is shorter at random so the 10,000 runs' polls do not end together."""
        url = self.url
        poll_s = self.rng.uniform(1.0, POLL_S)
        while not self.stop.is_set():
            body = {"run_id": rid, "timeout_s": poll_s}
            poll_s = POLL_S
            data = _encode(body)
            async with http.post(
                url + "/v1/backends/gpu/acquire", data=data, headers=JSON_HEADERS
            ) as resp:
                if resp.status != 200:
                    await resp.read()
                    continue
                granted = time.perf_counter()
                lease = _decode(await resp.read())
            if self.window.open:
                self.window.grants.append(granted)
            await asyncio.sleep(HOLD_S)
            if self.window.open:
                self.window.releases.append(time.perf_counter())
            async with http.post(url + f"/v1/leases/{lease['lease_id']}/release") as resp:
                await resp.read()

    def _events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        rng = self.rng
        for rid in rng.sample(self.runs, self.batch // 2):
            k = self.unit[rid]
            self.unit[rid] = k + 1
            node = CYCLE[min(k + 1, len(CYCLE) - 1)]  # plan, search, then refine on
            events.append({"type": "unit_end", "run_id": rid, "unit_id": str(k), "service_s": 0.01})
            events.append(
                {"type": "unit_start", "run_id": rid, "unit_id": str(k + 1), "node": node}
            )
        self.seq += 1
        app = rng.choice(self.apps)
        events.append({"type": "run_end", "run_id": f"done-{self.seq}", "path": _path(app, rng)})
        return events

    async def _send(self, http: aiohttp.ClientSession, events: list[dict[str, Any]]) -> None:
        window = self.window
        t0 = time.perf_counter()
        data = await _post(http, self.url + "/v1/events", {"events": events})
        if window.open:
            window.batch_ms.append((time.perf_counter() - t0) * 1e3)
            window.accepted += data["accepted"] - 1  # the run_end is not rank-bearing

    async def _lag_probe(self) -> None:
        """How late a 1 ms timer fires in this process (the generator's own delay)."""
        while not self.stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            if self.window.open:
                self.window.lag_ms.append((time.perf_counter() - t0) * 1e3 - 1.0)

    async def rate(
        self,
        http: aiohttp.ClientSession,
        events_http: aiohttp.ClientSession,
        rate: float,
        secs: float,
    ) -> dict[str, Any]:
        """Offer ``rate`` rank-bearing events/s for SETTLE_S + ``secs``; measure the window."""
        batch_rate = rate / self.batch
        arrivals = iter(arrival_offsets(batch_rate, secs, random.Random(int(rate))))
        inflight: set[asyncio.Task[None]] = set()
        gc.collect()  # the generator's own full collections happen here, between windows
        own_gc = GcPauses()
        own_gc.install()
        probe = asyncio.ensure_future(self._lag_probe())
        t_start = time.perf_counter()
        t_open, t_close = t_start + SETTLE_S, t_start + SETTLE_S + secs
        next_t = t_start + next(arrivals)
        before = ""
        cpu0 = own0 = 0.0
        drops0: float | None = None
        wait0: dict[str, tuple[float, float]] | None = None
        while True:
            now = time.perf_counter()
            if not self.window.open and now >= t_open:
                async with http.get(self.url + "/metrics") as resp:
                    before = await resp.text()
                self.window = Window(open=True)
                cpu0, own0, t_open = _process_cpu_s(self.pid) or 0.0, time.process_time(), now
                wait0 = _schedstat(self.pid)
                if os.environ.get("HERMES_LIVE_TURNS") and not self.seq_reset:
                    os.kill(self.pid, signal.SIGUSR1)  # live_turns.py: the windows only
                    self.seq_reset = True
                drops0 = _listen_overflows()
            if now >= t_close:
                break
            while next_t <= now:  # open loop: every due batch goes out, answered or not
                task = asyncio.ensure_future(self._send(events_http, self._events()))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                self.window.sent += self.batch if self.window.open else 0
                next_t = t_start + next(arrivals, math.inf)
            await asyncio.sleep(max(0.0, min(next_t, t_close) - time.perf_counter()))
        window, elapsed = self.window, time.perf_counter() - t_open
        window.open = False
        cpu1, own1 = _process_cpu_s(self.pid) or 0.0, time.process_time()
        wait1 = _schedstat(self.pid)
        drops1 = _listen_overflows()
        backlog = len(inflight)
        async with http.get(self.url + "/metrics") as resp:
            after = await resp.text()
        await asyncio.gather(*inflight, return_exceptions=True)
        probe.cancel()
        own_gc.uninstall()
        decision = np.array(_pair_fifo(sorted(window.releases), sorted(window.grants))) * 1e3
        grant_b, grant_a = (_buckets(t, "hermes_grant_answer_seconds") for t in (before, after))
        rank_b, rank_a = (_buckets(t, "hermes_rank_latency_seconds") for t in (before, after))
        lag_b, lag_a = (_buckets(t, "hermes_event_loop_lag_seconds") for t in (before, after))
        applied = _sample(after, "hermes_events_accepted_total") - _sample(
            before, "hermes_events_accepted_total"
        )  # by the server within the window; one event in BATCH + 1 is a run_end
        achieved = applied * self.batch / (self.batch + 1) / elapsed
        rebuilds = _sample(after, "hermes_rank_table_rebuilds_total") - _sample(
            before, "hermes_rank_table_rebuilds_total"
        )
        ranks = _sample(after, "hermes_ranks_computed_total") - _sample(
            before, "hermes_ranks_computed_total"
        )
        timeouts = 'hermes_acquire_timeouts_total{backend="gpu"}'
        repolls = _sample(after, timeouts) - _sample(before, timeouts)
        return {
            "offered_events_per_s": rate,
            "seconds": elapsed,
            "achieved_events_per_s": achieved,
            "answered_events_per_s": window.accepted / elapsed,
            "sent_events_per_s": window.sent / elapsed,
            "batches_unanswered_at_close": backlog,
            "grants_per_s": len(window.grants) / elapsed,
            "acquire_repolls_per_s": repolls / elapsed,
            "ranks_per_s": ranks / elapsed,
            "decisions_per_s": ranks / elapsed + len(window.grants) / elapsed,
            "rank_table_rebuilds_per_s": rebuilds / elapsed,
            "server_cpu_s_per_s": (cpu1 - cpu0) / elapsed,
            "server_rss_mb_at_close": _rss_mb(self.pid),
            "server_runqueue_wait_ms_per_s": (
                None
                if wait0 is None or wait1 is None
                else sum(wait1[g][1] - wait0[g][1] for g in wait1) * 1e3 / elapsed
            ),
            "server_threads": _thread_rates(wait0, wait1, elapsed),
            "load_generator_cpu_s_per_s": (own1 - own0) / elapsed,
            "events_batch_ms": {"p50": _q(window.batch_ms, 50), "p99": _q(window.batch_ms, 99)},
            "decision_ms_client": {
                "p50": _q(decision, 50),
                "p99": _q(decision, 99),
                "max": float(decision.max()) if decision.size else None,
                "pairs": int(decision.size),
            },
            "decision_ms_server_grant_to_answer": {
                "p50": histogram_quantile(grant_b, grant_a, 0.5),
                "p99": histogram_quantile(grant_b, grant_a, 0.99),
            },
            "rank_ms_server": {
                "p50": histogram_quantile(rank_b, rank_a, 0.5),
                "p99": histogram_quantile(rank_b, rank_a, 0.99),
            },
            "load_generator_timer_lag_ms": {
                "p50": _q(window.lag_ms, 50),
                "p99": _q(window.lag_ms, 99),
            },
            "load_generator_gc": {
                str(gen): {"count": sum(b.counts), "total_ms": b.total_s * 1e3}
                for gen, b in enumerate(own_gc.by_generation)
            },
            "server_loop_lag_ms": {
                "p50": histogram_quantile(lag_b, lag_a, 0.5),
                "p99": histogram_quantile(lag_b, lag_a, 0.99),
                "p999": histogram_quantile(lag_b, lag_a, 0.999),
            },
            "server_gc_by_generation": _gc_window(before, after),
            "listen_overflows_machine": (
                None if drops0 is None or drops1 is None else drops1 - drops0
            ),
        }

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _mode_args(mode: str) -> tuple[list[str], bool]:
    """The server arguments of ``mode`` and whether it runs isolated (``MODE@rt``)."""
    name, rt = (mode[: -len(RT_SUFFIX)], True) if mode.endswith(RT_SUFFIX) else (mode, False)
    return SERVER_ARGS[name], rt


@contextlib.contextmanager
def _realtime(on: bool) -> Any:
    """This process (the generator: its thread and the ones it starts meanwhile) under
    SCHED_FIFO ``RT_PRIORITY`` while the block runs, if ``on``."""
    if not on:
        yield
        return
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    try:
        yield
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


async def _run(
    n_runs: int,
    rates: list[float],
    secs: float,
    batch: int,
    server_args: list[str],
    realtime: bool = False,
) -> dict[str, Any]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    pinned = (os.cpu_count() or 1) >= 2
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            str(Path(sys.executable).with_name("hermes")),
            "serve",
            "--port",
            str(port),
            "--store",
            f"sqlite:///{tmp}/live.db",
            "--backend",
            f"gpu={SLOTS}:600",
            *(a for a in server_args if not a.startswith("+")),
        ]
        profile = os.environ.get("HERMES_LIVE_PROFILE")  # cProfile output path for the server
        if profile:
            cmd = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "hermes_sdk", *cmd[1:]]
        variant = [a for a in server_args if a.startswith("=")]
        for setting in variant:
            cmd.remove(setting)
        turns = os.environ.get("HERMES_LIVE_TURNS")  # loop turns per callback (live_turns.py)
        if turns:  # it applies the variant's setting itself
            wrapper = str(Path(__file__).with_name("live_turns.py"))
            cmd = [sys.executable, wrapper, turns, *variant[:1], *cmd[1:]]
        elif variant:
            wrapper = str(Path(__file__).with_name("live_variant.py"))
            cmd = [sys.executable, wrapper, variant[0][1:], *cmd[1:]]
        if realtime:  # every thread of the server preempts the core's ordinary processes
            cmd = ["chrt", "-f", str(RT_PRIORITY), *cmd]
        if pinned:
            cmd = ["taskset", "-c", str(SERVER_CPU), *cmd]  # the server and all its threads
            os.sched_setaffinity(0, {LOADGEN_CPU})
        env = dict(os.environ)
        for name, _, value in (a[1:].partition("=") for a in server_args if a.startswith("+")):
            env[name] = value
        proc = subprocess.Popen(cmd, env=env)
        try:
            connector = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=None)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
                await _wait_up(http, url)
                load = Load(url, proc.pid, n_runs, batch, random.Random(1))
                # the events connections are opened (and kept alive) before 10,000 others queue
                events_http = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0), timeout=timeout
                )
                await asyncio.gather(
                    *(_post(events_http, url + "/v1/events", {"events": []}) for _ in range(16))
                )
                setup = await load.setup(http)
                # the generator's 10,000 waiters would trigger its own ~0.5 s full collections
                # every few seconds, measured as decision latency: none inside a window
                gc.set_threshold(gc.get_threshold()[0], gc.get_threshold()[1], NEVER)
                young = asyncio.ensure_future(  # busy or not: no back-off
                    collect_young_every(LOADGEN_YOUNG_EVERY_S, idle_every_s=LOADGEN_YOUNG_EVERY_S)
                )
                rows = []
                for rate in rates:
                    row = await load.rate(http, events_http, rate, secs)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                young.cancel()
                await load.close()
                await events_http.close()
        finally:
            if profile or turns:
                proc.send_signal(signal.SIGINT)  # lets cProfile write its output
            else:
                proc.terminate()
            proc.wait(20)
    return {
        "runs": n_runs,
        "server_args": server_args,
        "slots": SLOTS,
        "hold_s": HOLD_S,
        "load_generator_young_gc_every_s": LOADGEN_YOUNG_EVERY_S,
        "apps": APPS,
        "events_per_batch": batch,
        "seconds_per_rate": secs,
        "server_cpu": SERVER_CPU if pinned else None,
        "placement": (
            f"isolated: server and generator SCHED_FIFO {RT_PRIORITY} (chrt -f)"
            if realtime
            else "plain: ordinary priority, cores shared with whatever else runs"
        ),
        "load_generator_cpu": LOADGEN_CPU if pinned else None,
        **setup,
        "rates": rows,
    }


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The highest offered rate meeting the decision target, and whether a rate that achieved
    >= 5,000 events/s met it."""
    ok = [
        r
        for r in result["rates"]
        if r["decision_ms_client"]["p99"] is not None
        and r["decision_ms_client"]["p99"] <= DECISION_P99_TARGET_MS
        # kept up with what was sent (a Poisson window sends a little more or less than the rate)
        and r["achieved_events_per_s"] >= 0.97 * r["sent_events_per_s"]
    ]
    best = max(ok, key=lambda r: r["offered_events_per_s"], default=None)
    at_target = [r for r in ok if r["achieved_events_per_s"] >= EVENTS_TARGET]
    return {
        "rank_bearing_events_per_s": EVENTS_TARGET,
        "decision_p99_ms": DECISION_P99_TARGET_MS,
        "max_offered_rate_with_p99_decision_within_target": (
            None if best is None else best["offered_events_per_s"]
        ),
        "achieved_at_that_rate": None if best is None else best["achieved_events_per_s"],
        "met": bool(at_target),
    }


MEDIAN_KEYS = (
    ("decision_ms_client", "p99"),
    ("decision_ms_client", "p50"),
    ("decision_ms_server_grant_to_answer", "p99"),
    ("events_batch_ms", "p99"),
    ("server_loop_lag_ms", "p99"),
    ("server_loop_lag_ms", "p999"),
    ("load_generator_timer_lag_ms", "p99"),
)
"""The (row key, quantile) pairs whose medians over repetitions ``--repeat`` reports."""


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per offered rate, the median over ``runs`` (repetitions of one mode) of each
    :data:`MEDIAN_KEYS` value (ms), of the server's young-collection pauses (generation-1 p99,
    generation 0+1 ms per s) and of the achieved rate, with every repetition's client p99."""
    out: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(runs[0]["rates"]):
        rows = [r["rates"][i] for r in runs]

        def med(values: list[Any]) -> float | None:
            kept = [v for v in values if v is not None]
            return float(np.median(kept)) if kept else None

        cell: dict[str, Any] = {
            f"{key}.{q}": med([r[key][q] for r in rows]) for key, q in MEDIAN_KEYS
        }
        gcs = [r["server_gc_by_generation"] for r in rows]
        cell["server_gc_1.p99_ms"] = med([g["1"]["p99_ms"] for g in gcs])
        cell["server_gc_young_ms_per_s"] = med(
            [
                (g["0"]["total_ms"] + g["1"]["total_ms"]) / r["seconds"]
                for g, r in zip(gcs, rows, strict=True)
            ]
        )
        cell["server_gc_2.total_ms"] = med([g["2"]["total_ms"] for g in gcs])
        cell["achieved_events_per_s"] = med([r["achieved_events_per_s"] for r in rows])
        cell["server_runqueue_wait_ms_per_s"] = med(
            [r.get("server_runqueue_wait_ms_per_s") for r in rows]
        )
        for group in ("main", "others"):
            threads = [r.get("server_threads", {}).get(group, {}) for r in rows]
            cell[f"server_{group}_thread_cpu_s_per_s"] = med(
                [t.get("cpu_s_per_s") for t in threads]
            )
            cell[f"server_{group}_thread_runqueue_wait_ms_per_s"] = med(
                [t.get("runqueue_wait_ms_per_s") for t in threads]
            )
        cell["rank_table_rebuilds_per_s"] = med([r["rank_table_rebuilds_per_s"] for r in rows])
        cell["client_p99_each"] = [r["decision_ms_client"]["p99"] for r in rows]
        out[str(int(row["offered_events_per_s"]))] = cell
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    """Client and server p50/p99 decision latency, and achieved rate, per offered rate."""
    sys.path.insert(0, str(Path(__file__).parent))
    from plotting import pyplot, save

    plt = pyplot()
    rows = result["rates"]
    x = [r["offered_events_per_s"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, label, style in (
        ("decision_ms_client", "client end to end", "-o"),
        ("decision_ms_server_grant_to_answer", "server grant -> answer", "--s"),
    ):
        for q in ("p50", "p99"):
            ax1.plot(x, [r[key][q] for r in rows], style, label=f"{label} {q}")
    base = result.get("baseline")
    if base is not None:
        ax1.plot(
            [r["offered_events_per_s"] for r in base["rates"]],
            [r["decision_ms_client"]["p99"] for r in base["rates"]],
            ":^",
            color="grey",
            label=f"client p99, {base.get('mode', 'baseline')}",
        )
    iso = result.get("isolated")
    if iso is not None:
        ax1.plot(
            [r["offered_events_per_s"] for r in iso["rates"]],
            [r["decision_ms_client"]["p99"] for r in iso["rates"]],
            "-D",
            color="black",
            label=f"client p99, {iso.get('mode', 'isolated')} (SCHED_FIFO)",
        )
    ax1.axhline(DECISION_P99_TARGET_MS, color="red", ls=":", label="p99 target")
    ax1.set_yscale("log")
    ax1.set_xlabel("offered rank-bearing events/s")
    ax1.set_ylabel("decision latency (ms, log)")
    ax1.legend(fontsize=7)
    ax2.plot(x, [r["achieved_events_per_s"] for r in rows], "-o", label="achieved")
    ax2.plot(x, x, ":", color="grey", label="offered")
    ax2.axvline(EVENTS_TARGET, color="red", ls=":", label="target rate")
    ax2.set_xlabel("offered rank-bearing events/s")
    ax2.set_ylabel("events/s")
    ax2.legend(fontsize=7)
    fig.suptitle(f"hermes serve, {result['runs']:,} runs waiting, server on one core")
    save(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 runs, 2 rates, 3 s each")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rates", default="2000,4000,5000,6000,8000")
    parser.add_argument("--secs", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON (PNG beside it)")
    parser.add_argument("--plot-only", action="store_true", help="redraw from the saved JSON")
    parser.add_argument(
        "--modes",
        default="baseline,shipped",
        help="baseline (CPython's automatic full collections), shipped (hermes serve's defaults)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the modes this many times (A/B medians)"
    )
    parser.add_argument(
        "--gen-loop",
        choices=LOOP_NAMES,
        default="auto",
        help="the generator's event loop (auto: uvloop when installed)",
    )
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(RESULTS.read_text()), PNG)
        return
    rates = [float(r) for r in args.rates.split(",")]
    runs, secs = (1000, 3.0) if args.quick else (args.runs, args.secs)
    if args.quick:
        rates = rates[:2]
    modes = [m.strip() for m in args.modes.split(",")]
    runs_by_mode: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for _ in range(args.repeat):  # modes interleaved: A, B, A, B, ... (drift hits both)
        for mode in modes:
            load0 = os.getloadavg()[0]
            server_args, rt = _mode_args(mode)
            with _realtime(rt):
                run = run_on(args.gen_loop, _run(runs, rates, secs, args.batch, server_args, rt))
            run["load_generator_loop"] = resolve_loop(args.gen_loop)
            load1 = round(os.getloadavg()[0], 2)
            run["load_average_1m"] = {"before": round(load0, 2), "after": load1}
            run["targets"] = summarize(run)
            run["mode"] = mode
            runs_by_mode[mode].append(run)
    plain = [m for m in modes if not m.endswith(RT_SUFFIX)] or modes
    isolated = [m for m in modes if m.endswith(RT_SUFFIX)]
    result = runs_by_mode[plain[-1]][-1]  # the plain placement's last mode: the headline
    if len(plain) > 1:
        result["baseline"] = runs_by_mode[plain[0]][-1]
    if isolated and isolated[-1] != plain[-1]:
        result["isolated"] = runs_by_mode[isolated[-1]][-1]
    if args.repeat > 1:
        result["repeated"] = {
            "repetitions": args.repeat,
            "medians": {mode: medians(rs) for mode, rs in runs_by_mode.items()},
        }
        result["repeated"]["met_on_medians"] = {  # median p99 <= 5 ms at >= 5,000 achieved
            mode: any(
                (c["decision_ms_client.p99"] or math.inf) <= DECISION_P99_TARGET_MS
                and (c["achieved_events_per_s"] or 0.0) >= EVENTS_TARGET
                for c in cells.values()
            )
            for mode, cells in result["repeated"]["medians"].items()
        }
        print(json.dumps(result["repeated"], indent=1))
    result["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }
    result["command"] = "benchmarks/bench_server_live.py " + " ".join(sys.argv[1:])
    print(json.dumps(result["targets"], indent=1))
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        plot(result, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
