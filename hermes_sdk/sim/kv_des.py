"""A prefix KV cache on the simulator's LLM backends, with a retention policy deciding hints.

:class:`KVCacheHook` is a :class:`~hermes_sdk.sim.des.SimHook`: each LLM backend with a time
model gets a :class:`~hermes_sdk.sim.kv_cache.PrefixKVCache` of ``capacity_tokens``. When a
run's LLM stage ends its context (the longest call's input + output tokens) is stored, as an
engine's prefix cache keeps every finished request, with the retention hint the policy gives
for the run's state then. When the run calls the same LLM node again (the agent loop: thought
-> tool -> thought, code -> run -> code; the prompt is the previous context plus the tool's
result) each call reuses ``min(cached, its input)`` tokens when it is dispatched to a slot
(after its queue wait, as an engine prefills at admission) and its service shrinks by their
prefill time (``per_input_token_s``). Calls of other nodes share no prefix with it. A finished
run's prefixes stay cached until evicted (the engine is not told the run ended); the policy's
hint is what lets a cache drop the prefixes nobody will reuse first.

A policy that gives a reuse law (:meth:`~hermes_sdk.prewarm.retention.RetentionPolicy.
reuse_law`, the seconds of tools and other stages until the run calls the node again) has it
delayed by the queue waits this engine measured for that app's node (each stage's first call,
the last ``WAIT_SAMPLES``), since the prefix is looked up when the call is dispatched.
:class:`PathOracleRetention` gives the same kind of law from the run's own drawn future (the
simulator's clairvoyant bound on what a learned law can do).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Final, Protocol

import numpy as np

from hermes_sdk.graph.records import RunState
from hermes_sdk.prewarm.retention import RetentionPolicy
from hermes_sdk.prewarm.reuse_law import MIN_HOLD_S, NEVER, ReuseLaw, shifted
from hermes_sdk.sim.cache_bounds import AccessTrace
from hermes_sdk.sim.des import Simulation
from hermes_sdk.sim.kv_cache import KVCacheStats, PrefixKVCache
from hermes_sdk.sim.programs import RealStage
from hermes_sdk.sim.sim_types import SimApp
from hermes_sdk.sim.workload import BackendSpec

WAIT_SAMPLES: Final = 256
"""Recent queue waits kept per (app, LLM node) to delay a reuse law by."""


class QueuedCall(Protocol):
    """The part of the simulator's request record the cache reads and shortens."""

    app: SimApp
    index: int
    seq: int
    service_s: float
    remaining_s: float


class PathOracleRetention:
    """Clairvoyant reuse laws: :class:`KVCacheHook` reads the run's drawn stages and values a
    prefix by the true seconds of service until the run calls its node again (or never); the
    queue waits are delayed as for any law. A simulator bound, not a deployable policy."""

    name = "path_oracle"
    samples = 64
    """Copies of the true gap, each delayed by its own drawn queue wait."""

    def retain_s(
        self, app: str, tenant: str, state: RunState, backend: str | None, now_s: float
    ) -> float | None:
        """None: the hook asks :meth:`law_for` instead."""
        return None

    def reuse_law(
        self, app: str, tenant: str, state: RunState, backend: str | None, now_s: float
    ) -> ReuseLaw | None:
        """None: the hook asks :meth:`law_for` instead."""
        return None

    def law_for(self, app: SimApp, index: int) -> ReuseLaw:
        """The law of stage ``index``'s prefix: the service seconds (the longest call of each
        stage) between it and the run's next stage of the same node, read by its calls."""
        node = app.stages[index].node
        gap = 0.0
        for stage in app.stages[index + 1 :]:
            if stage.node == node:
                return ReuseLaw((gap,) * self.samples, self.samples, float(stage.width))
            gap += max(stage.services_s, default=0.0)
        return NEVER


class KVCacheHook:
    """Prefix KV caches of fixed capacity on the LLM backends, driven by ``policy``'s hints."""

    def __init__(
        self,
        backends: Mapping[str, BackendSpec],
        capacity_tokens: int,
        policy: RetentionPolicy,
    ) -> None:
        self.policy = policy
        self.prefill_s = {
            name: spec.time_model.per_input_token_s
            for name, spec in backends.items()
            if spec.time_model is not None
        }
        self.caches = {name: PrefixKVCache(capacity_tokens) for name in self.prefill_s}
        self.traces = {name: AccessTrace() for name in self.prefill_s}
        """Per backend, the stores and reads its cache saw (for the offline bounds of
        :mod:`hermes_sdk.sim.cache_bounds`)."""
        self._started: set[int] = set()
        """Sequence numbers of the calls dispatched at least once."""
        self._stored: dict[int, int] = {}
        """app idx -> index of its last LLM stage whose context was stored."""
        self.saved_s = 0.0
        """Prefill seconds (at speed 1) saved so far."""
        self.saved_tokens_by_app: dict[str, int] = {}
        """Prompt tokens reused from cache, per app name."""
        self._entered: dict[int, tuple[int, float]] = {}
        """app idx -> (stage index, seconds) of the last LLM stage it entered."""
        self._waits: dict[tuple[str, str], deque[float]] = {}
        """(app, node) -> recent queue waits (seconds) of a stage's first call."""
        self._rng = np.random.default_rng(0)
        self._dispatched: dict[int, tuple[int, int]] = {}
        """app idx -> (stage index, its calls dispatched so far)."""

    def stats(self) -> KVCacheStats:
        """Counters summed over the backends' caches."""
        parts = [c.stats() for c in self.caches.values()]
        return KVCacheStats(*(sum(getattr(p, f) for p in parts) for f in KVCacheStats.__slots__))

    # --- the SimHook interface ------------------------------------------------------------------

    def stage_entering(self, app: SimApp, t: float) -> tuple[float, ...]:
        """Store the context of the stage ``app`` just finished; services are unchanged here."""
        if app.stage_i > 0:
            self._store(app, app.stage_i - 1, t)
        if app.stages[app.stage_i].unit.backend in self.caches:
            self._entered[app.idx] = (app.stage_i, t)
        return app.stages[app.stage_i].services_s

    def request_starting(self, req: QueuedCall, t: float) -> None:
        """A call is dispatched: the prefill of the prefix found in the cache is not done."""
        if req.seq in self._started:  # resumed after preemption: looked up already
            return
        self._started.add(req.seq)
        app = req.app
        stage = app.stages[app.stage_i]
        backend = stage.unit.backend
        cache = self.caches.get(backend)
        entered = self._entered.get(app.idx)
        if cache is None or stage.input_tokens is None or entered is None:
            return
        at, done = self._dispatched.get(app.idx, (-1, 0))
        done = done + 1 if at == app.stage_i else 1
        self._dispatched[app.idx] = (app.stage_i, done)
        if done == 1 and entered[0] == app.stage_i:
            waits = self._waits.setdefault((app.name, stage.node), deque(maxlen=WAIT_SAMPLES))
            waits.append(t - entered[1])
        queued = len(stage.input_tokens) - done
        # the entry is read at the rate the stage's calls have been dispatched so far
        hold = done / max(t - entered[1], MIN_HOLD_S) if queued > 0 else 0.0
        key, prompt = f"{app.run_id}/{stage.node}", stage.input_tokens[req.index]
        self.traces[backend].read(t, key, prompt)
        reused = cache.lookup(key, prompt, hold_density=hold)
        if reused <= 0:
            return
        self.saved_tokens_by_app[app.name] = self.saved_tokens_by_app.get(app.name, 0) + reused
        saved = min(reused * self.prefill_s[backend], req.service_s * 0.999)
        self.saved_s += saved
        req.remaining_s -= saved

    def stage_started(self, app: SimApp, t: float) -> None:
        """Nothing to do (the lookup happened in :meth:`stage_entering`)."""

    def stage_done(self, app: SimApp, stage: RealStage, t: float) -> None:
        """Store the context of a run's final stage (earlier ones are stored on entering)."""
        if app.stage_i >= len(app.stages):
            self._store(app, len(app.stages) - 1, t)
            self._stored.pop(app.idx, None)
            self._dispatched.pop(app.idx, None)
            self._entered.pop(app.idx, None)

    def backend_starting(self, backend: str, t: float) -> None:
        """Not used."""

    def backend_ready(self, backend: str, t: float, startup_s: float) -> None:
        """Not used."""

    def tick(self, sim: Simulation, t: float) -> float:
        """No timed decisions."""
        return math.inf

    # --- internals ------------------------------------------------------------------------------

    def _store(self, app: SimApp, index: int, t: float) -> None:
        stage = app.stages[index]
        backend = stage.unit.backend
        cache = self.caches.get(backend)
        if cache is None or stage.input_tokens is None or self._stored.get(app.idx) == index:
            return
        self._stored[app.idx] = index
        outputs = stage.output_tokens or (0,) * len(stage.input_tokens)
        tokens = max(i + o for i, o in zip(stage.input_tokens, outputs, strict=True))
        state = RunState(stage.node, tuple(sorted(app.visits.items())))
        if isinstance(self.policy, PathOracleRetention):
            law: ReuseLaw | None = self.policy.law_for(app, index)
        else:
            law = self.policy.reuse_law(app.name, app.tenant, state, backend, t)
        retain = (
            None
            if law is not None
            else self.policy.retain_s(app.name, app.tenant, state, backend, t)
        )
        if law is not None:
            law = shifted(law, self._waits.get((app.name, stage.node), ()), self._rng)
        key = f"{app.run_id}/{stage.node}"
        self.traces[backend].store(t, key, int(tokens))
        cache.store(key, int(tokens), t, retain, law=law)
