"""The prewarm decision rule: warm a backend when P(need within its cold start) is high enough.

For backend ``b`` with learned cold start ``C`` (a high quantile of observed start-ups), every
running app contributes ``p_app = P(its next stage on b starts within C)`` from a Monte Carlo walk
over its PDGraph (:mod:`hermes_sdk.prewarm.forecast`); the backend is needed within ``C`` with
``P = 1 - prod(1 - p_app)``. A cold backend is prewarmed when ``P >= c_idle / (c_idle + c_delay)``
(the newsvendor critical ratio, derived in docs/theory.md "Prewarm rule"). An idle warm backend is
released after its learned keep-alive unless ``P`` is still above the threshold. The planner is
clock-agnostic: callers pass ``now_s`` (virtual time in the simulator, monotonic time in a server)
and act on the returned :class:`PrewarmSignal` values; :meth:`PrewarmPlanner.decide` also says when
to call it again if nothing else happens.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hermes_sdk.errors import ConfigError
from hermes_sdk.graph.records import RunState
from hermes_sdk.graph.sketch import Sketch
from hermes_sdk.prewarm.forecast import (
    FloatArray,
    LatencySampler,
    StageGraph,
    earliest_crossing_s,
    times_to_backends,
)
from hermes_sdk.prewarm.keepalive import KeepAliveConfig
from hermes_sdk.prewarm.ledger import BackendLedger, PrewarmMetrics

_EPS_S = 1e-6
"""Tolerance for re-deciding exactly at a predicted crossing time (float round-off)."""

_FORECAST_CACHE = 4096
"""Forecasts kept per (app, tenant, state); runs in one state share one walk until the graph
has learned ``refresh_share`` more runs."""

GraphLookup = Callable[[str, str], StageGraph | None]
"""``(app, tenant) -> graph or None``; ``GraphRegistry.get`` fits."""


@dataclass(frozen=True, slots=True)
class PrewarmConfig:
    """Costs and knobs of the planner (seconds; costs in any one currency).

    ``c_idle``: cost of one second of a warm, idle instance. ``c_delay``: cost of one second of
    app delay. ``predictive=False`` turns the planner into a plain keep-alive policy (no
    forecasts, no prewarm), the baseline it is measured against.
    """

    c_idle: float = 1.0
    c_delay: float = 10.0
    predictive: bool = True
    cold_start_quantile: float = 0.9
    default_cold_start_s: float = 10.0
    n_samples: int = 400
    latency_window: int = 200
    """Observed stage wall times kept per (app, node) for the forecast."""
    min_latency_samples: int = 5
    """Below this many observed wall times a stage's time comes from the graph's call times."""
    lookahead: float = 2.0
    """Forecast walks look this many times the largest cold start past the running stage."""
    max_stages: int = 64
    max_visit: int = 8
    recheck_s: float = 1.0
    assume_ready: bool = False
    """Treat a start nobody confirmed as ready after the cold start C (for fire-and-forget
    adapters such as a webhook whose receiver does not report readiness)."""
    start_timeout_s: float = 600.0
    """A start not confirmed ready within this many seconds failed: the backend is cold again."""
    refresh_share: float = 0.05
    """A run's forecast is redone when its graph learned more than this share of new runs."""
    keep_alive: KeepAliveConfig = field(default_factory=KeepAliveConfig)
    seed: int | None = 0

    def __post_init__(self) -> None:
        if not (self.c_idle > 0.0 and self.c_delay > 0.0):
            raise ConfigError("c_idle and c_delay must be > 0")
        if not 0.0 < self.cold_start_quantile <= 1.0 or self.n_samples < 1:
            raise ConfigError("cold_start_quantile must be in (0, 1] and n_samples >= 1")
        if not self.recheck_s > 0.0:
            raise ConfigError("recheck_s must be > 0")

    @property
    def threshold(self) -> float:
        """Critical ratio c_idle / (c_idle + c_delay): prewarm when P(need within C) reaches it."""
        return self.c_idle / (self.c_idle + self.c_delay)


@dataclass(frozen=True, slots=True)
class PrewarmSignal:
    """An instruction for a backend adapter.

    ``eta_s``: predicted seconds until the backend is needed (prewarm only). ``key``: idempotency
    key, unique per planner decision, so a retried delivery is recognisable.
    """

    action: Literal["prewarm", "release"]
    backend: str
    reason: str
    key: str
    eta_s: float | None = None
    probability: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    """What :meth:`PrewarmPlanner.decide` returns: signals now, and when to decide again."""

    signals: tuple[PrewarmSignal, ...]
    wake_at_s: float


@dataclass(slots=True)
class _Run:
    app: str
    tenant: str
    state: RunState
    since_s: float
    samples: dict[str, FloatArray] | None = None
    stage_end: FloatArray | None = None
    """Per sample, when the stage running at ``since_s`` ends (seconds after ``since_s``)."""
    version: int = -1


class PrewarmPlanner:
    """Decides prewarm/release per backend from running apps' states and the backend ledger."""

    def __init__(
        self,
        graph_of: GraphLookup,
        backends: list[str] | tuple[str, ...],
        config: PrewarmConfig | None = None,
    ) -> None:
        self.config = config or PrewarmConfig()
        self.graph_of = graph_of
        self.ledger = BackendLedger(self.config.keep_alive, self.config.default_cold_start_s)
        self.backends = tuple(dict.fromkeys(backends))
        for b in self.backends:
            self.ledger.get(b)
        self._runs: dict[str, _Run] = {}
        self._rng = np.random.default_rng(self.config.seed)
        self._keys = itertools.count(1)
        self._latencies: dict[tuple[str, str, str], Sketch] = {}
        self._forecasts: dict[
            tuple[str, str, RunState], tuple[int, dict[str, FloatArray], FloatArray]
        ] = {}

    # --- app events -------------------------------------------------------------------------

    def update_run(
        self, run_id: str, app: str, state: RunState, now_s: float, *, tenant: str = "default"
    ) -> None:
        """A run is in ``state`` (stage started or ended); may be repeated while it stays there.

        For a running stage, ``state.elapsed_s`` dates the stage start (``now_s - elapsed_s``).
        """
        key = RunState(node=state.node, visits=state.visits, running=state.running)
        run = self._runs.get(run_id)
        if run is not None and run.state != key and run.state.running:
            self._observe_latency(run, now_s - run.since_s)
        if run is None or run.state != key:
            since_s = now_s - (state.elapsed_s if state.running else 0.0)
            self._runs[run_id] = _Run(app, tenant, key, since_s)

    def end_run(self, run_id: str, now_s: float | None = None) -> None:
        """A run finished (or failed): it no longer contributes demand."""
        run = self._runs.pop(run_id, None)
        if run is not None and now_s is not None and run.state.running:
            self._observe_latency(run, now_s - run.since_s)

    def _observe_latency(self, run: _Run, latency_s: float) -> None:
        """Learn a stage's wall time as the apps saw it (queueing and start-up waits included)."""
        if latency_s >= 0.0 and math.isfinite(latency_s):
            key = (run.app, run.tenant, run.state.node)
            book = self._latencies.get(key)
            if book is None:
                book = self._latencies[key] = Sketch(self.config.latency_window)
            book.add(latency_s)

    def _latency_sampler(self, app: str, tenant: str) -> LatencySampler:
        def sample(node: str, rng: np.random.Generator, n: int) -> FloatArray | None:
            book = self._latencies.get((app, tenant, node))
            if book is None or len(book) < self.config.min_latency_samples:
                return None
            return book.sample(rng, n)

        return sample

    @property
    def running(self) -> int:
        """Number of runs the planner forecasts from."""
        return len(self._runs)

    # --- forecasts ---------------------------------------------------------------------------

    def cold_start_s(self, backend: str) -> float:
        """The cold start ``C`` the rule plans for: a high quantile of observed start-ups."""
        return self.ledger.get(backend).cold_start.quantile_s(self.config.cold_start_quantile)

    def _fresh(self, cached_version: int, version: int) -> bool:
        return version - cached_version <= max(1.0, self.config.refresh_share * cached_version)

    def _samples(self, run: _Run) -> dict[str, FloatArray] | None:
        graph = self.graph_of(run.app, run.tenant)
        if graph is None:
            return None
        version = graph.version
        if run.samples is not None and self._fresh(run.version, version):
            return run.samples
        key = (run.app, run.tenant, run.state)
        cached = self._forecasts.get(key)
        if cached is None or not self._fresh(cached[0], version):
            cfg = self.config
            stage_end = np.zeros(cfg.n_samples)
            walked = times_to_backends(
                graph,
                run.state,
                self.backends,
                n=cfg.n_samples,
                horizon_s=cfg.lookahead * max(map(self.cold_start_s, self.backends)),
                max_stages=cfg.max_stages,
                max_visit=cfg.max_visit,
                rng=self._rng,
                latency=self._latency_sampler(run.app, run.tenant),
                stage_end_out=stage_end,
            )
            samples = {b: t for b, t in walked.items() if np.isfinite(t).any()}
            self._forecasts.pop(key, None)
            if len(self._forecasts) >= _FORECAST_CACHE:
                del self._forecasts[next(iter(self._forecasts))]
            cached = self._forecasts[key] = (version, samples, stage_end)
        run.version, run.samples, run.stage_end = cached
        return run.samples

    def time_to_need(self, backend: str, now_s: float) -> dict[str, FloatArray]:
        """Per running run, sampled seconds from ``now_s`` until it next needs ``backend``.

        Samples are conditioned on what already happened: walks in which the running stage would
        have ended by ``now_s`` are dropped (it is known to be still running); if it overran every
        walk, it is taken to end now and the stages after it keep their sampled times.
        """
        out: dict[str, FloatArray] = {}
        for run_id, run in self._runs.items():
            samples = self._samples(run)
            if samples is None or backend not in samples:
                continue
            elapsed_s = now_s - run.since_s
            times = samples[backend]
            if run.state.running and run.stage_end is not None and not np.all(times == 0.0):
                going = run.stage_end > elapsed_s  # walks where this stage is still running
                if going.any():
                    out[run_id] = times[going] - elapsed_s
                else:  # the stage overran every walk: it ends now, the rest follows as sampled
                    out[run_id] = np.maximum(times - run.stage_end, 0.0)
                continue
            t = times - elapsed_s
            if run.state.running:  # a stage on this backend runs now: needed now
                t = np.where(times == 0.0, 0.0, t)
            alive = t[t >= 0.0]
            out[run_id] = alive if alive.size else np.full(1, math.inf)
        return out

    def need_probability(self, backend: str, now_s: float, window_s: float | None = None) -> float:
        """P(some running app needs ``backend`` within ``window_s``, default its cold start)."""
        window = self.cold_start_s(backend) if window_s is None else window_s
        miss = 1.0
        for t in self.time_to_need(backend, now_s).values():
            miss *= 1.0 - float(np.count_nonzero(t <= window)) / t.size
        return 1.0 - miss

    # --- decisions ---------------------------------------------------------------------------

    def _signal(
        self,
        action: Literal["prewarm", "release"],
        backend: str,
        reason: str,
        *,
        probability: float,
        eta_s: float | None = None,
    ) -> PrewarmSignal:
        key = f"{backend}:{action}:{next(self._keys)}"
        return PrewarmSignal(action, backend, reason, key, eta_s, probability)

    def decide(self, now_s: float) -> Decision:
        """Signals to send now (the ledger is updated as if they were acted on) and next wake."""
        cfg = self.config
        signals: list[PrewarmSignal] = []
        wake = math.inf
        for backend in self.backends:
            b = self.ledger.get(backend)
            c_s = self.cold_start_s(backend)
            per_run = self.time_to_need(backend, now_s) if cfg.predictive else {}
            p = 0.0
            if per_run:
                miss = 1.0
                for t in per_run.values():
                    miss *= 1.0 - float(np.count_nonzero(t <= c_s + _EPS_S)) / t.size
                p = 1.0 - miss
            b.wanted = p >= cfg.threshold
            if b.status == "starting" and b.started_at_s is not None:
                if cfg.assume_ready and now_s >= b.started_at_s + c_s:
                    self.ledger.ready(backend, now_s, startup_s=None, learn=False)
                elif now_s >= b.started_at_s + cfg.start_timeout_s:
                    self.ledger.released(backend, now_s)
                else:
                    due_s = b.started_at_s + (c_s if cfg.assume_ready else cfg.start_timeout_s)
                    wake = min(wake, due_s)
            if b.status == "cold":
                if b.wanted:
                    eta = earliest_crossing_s(per_run, 0.0, cfg.threshold)
                    reason = f"P(need within {c_s:.2f}s)={p:.3f} >= {cfg.threshold:.3f}"
                    signals.append(
                        self._signal("prewarm", backend, reason, eta_s=eta, probability=p)
                    )
                    self.ledger.starting(backend, now_s, prewarm=True)
                elif per_run:
                    delay_s = earliest_crossing_s(per_run, c_s, cfg.threshold)
                    wake = min(wake, now_s + max(delay_s, _EPS_S))
            elif b.status == "warm" and b.inflight == 0 and b.idle_since_s is not None:
                expire_s = b.idle_since_s + self.keep_alive_s(backend)
                if now_s < expire_s:
                    wake = min(wake, expire_s)
                elif b.wanted:
                    wake = min(wake, now_s + max(cfg.recheck_s, 0.1 * c_s))
                else:
                    idle_s = now_s - b.idle_since_s
                    reason = f"idle {idle_s:.2f}s >= keep-alive, P(need)={p:.3f}"
                    signals.append(self._signal("release", backend, reason, probability=p))
                    self.ledger.released(backend, now_s)
                    if per_run:  # cold now: wake when it must be warmed again
                        delay_s = earliest_crossing_s(per_run, c_s, cfg.threshold)
                        wake = min(wake, now_s + max(delay_s, _EPS_S))
        return Decision(tuple(signals), wake)

    def keep_alive_s(self, backend: str) -> float:
        """Learned keep-alive: cost-optimal over the idle histogram when predictive, else the
        histogram percentile (the forecast-free hybrid-histogram policy)."""
        idle = self.ledger.get(backend).idle
        if not self.config.predictive:
            return idle.keep_alive_s()
        cfg = self.config
        return idle.cost_keep_alive_s(cfg.c_idle, cfg.c_delay, self.cold_start_s(backend))

    def metrics(self, now_s: float | None = None) -> dict[str, PrewarmMetrics]:
        """Per-backend prewarm metrics."""
        return self.ledger.metrics(now_s)
