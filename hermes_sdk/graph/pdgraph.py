"""The Probabilistic Demand Graph (PDGraph) of one app, learned online from completed runs.

Nodes are functional units (composite nodes ``"a|b"`` for overlapping different units are
ordinary nodes). Each node keeps bounded sketches of per-call service seconds, per-stage service
seconds (sum over the fan-out), input/output tokens, fan-out width and cold-start seconds.
Transitions are counted per ``(node, visit index capped at max_visit)`` so loops with
non-geometric lengths are learned exactly; like the sketches, each such row only remembers the
targets of its last ``window`` departures, so the learned law follows drift. A failed run teaches
only what it really did (the transitions it took and its completed calls, never an END).
See :mod:`hermes_sdk.graph.montecarlo` for how the remaining demand of a running app is sampled.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from hermes_sdk.errors import GraphError
from hermes_sdk.graph import drift
from hermes_sdk.graph.compiled_graph import CompiledGraph, GraphCompiler
from hermes_sdk.graph.cusum import DriftSettings
from hermes_sdk.graph.drift_batch import count_departures
from hermes_sdk.graph.learned import NodeState
from hermes_sdk.graph.montecarlo import MAX_STAGES, Demand, running_residual, simulate
from hermes_sdk.graph.prior import PooledPrior
from hermes_sdk.graph.records import END, START, RunPath, RunState, Stage, UnitKind
from hermes_sdk.graph.sketch import Sketch, SortedSamples
from hermes_sdk.graph.token_model import TokenModel
from hermes_sdk.graph.validation import check_path, check_state

MAX_SAMPLES = 1_000_000
"""Largest ``n`` accepted by :meth:`PDGraph.remaining_demand`."""
MAX_VISIT_LIMIT = 64
_Key = tuple[RunState, int, int, Demand]
_REBUILT = frozenset({"_lock", "_compiler", "_cache"})
"""Attributes a pickled graph leaves out: its lock and what it rebuilds by itself."""
_CACHE_SIZE = 512
_MAX_COUNTER_CELLS = 1 << 22  # paths x nodes visit counters per simulate() call (32 MiB)


@dataclass(frozen=True, slots=True)
class NodeStats:
    """Read-only snapshot of one node's learned demand (each field supports mean/quantile/sample).

    ``service_s`` is per call (seconds), ``stage_service_s`` per stage (sum over the fan-out),
    ``width`` the fan-out width, tokens per call.
    """

    node: str
    count: int
    calls: int
    kind: UnitKind
    backend: str | None
    service_s: SortedSamples
    stage_service_s: SortedSamples
    input_tokens: SortedSamples
    output_tokens: SortedSamples
    width: SortedSamples
    cold_start_s: SortedSamples


def check_query(state: RunState, n: int) -> None:
    """Raise :class:`GraphError` unless ``state`` and ``n`` make a valid remaining-demand query."""
    if not isinstance(state, RunState):
        raise GraphError(f"remaining_demand() needs a RunState, got {type(state).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise GraphError(f"n must be an int within 1..{MAX_SAMPLES}, got {n!r}")
    if not (math.isfinite(state.elapsed_s) and state.elapsed_s >= 0.0):
        raise GraphError(f"state.elapsed_s must be finite and >= 0, got {state.elapsed_s!r}")


class PDGraph:
    """Learned demand graph of one app; thread-safe. ``version`` grows by one per observe()."""

    def __init__(
        self,
        app: str,
        *,
        window: int = 1000,
        half_life_s: float | None = None,
        max_visit: int = 8,
        prior: PooledPrior | None = None,
        max_stale_fraction: float = 0.0,
        drift_settings: DriftSettings | None = drift.DEFAULT,
    ) -> None:
        if not isinstance(app, str) or not app:
            raise GraphError(f"app must be a non-empty string, got {app!r}")
        Sketch(window, half_life_s)  # validates both
        if isinstance(max_visit, bool) or not isinstance(max_visit, int):
            raise GraphError(f"max_visit must be an int, got {max_visit!r}")
        if not 1 <= max_visit <= MAX_VISIT_LIMIT:
            raise GraphError(f"max_visit must be within 1..{MAX_VISIT_LIMIT}, got {max_visit}")
        if not (isinstance(max_stale_fraction, (int, float)) and 0.0 <= max_stale_fraction < 1.0):
            raise GraphError(f"max_stale_fraction must be in [0, 1), got {max_stale_fraction!r}")
        self.app = app
        self.max_stale_fraction = float(max_stale_fraction)
        """A cached answer may be reused while at most this fraction of ``runs`` was learned
        since it was computed (0 = exact: every observe invalidates)."""
        self.window = window
        self.half_life_s = None if half_life_s is None else float(half_life_s)
        self.max_visit = max_visit
        self.prior = prior if prior is not None else PooledPrior()
        self.runs = 0
        """Runs observed, failed ones included."""
        self.failed_runs = 0
        """Of ``runs``, those observed with ``RunPath.failed`` (learned without their END)."""
        self.empty_runs = 0
        """Paths with no stage (runs that recorded no unit): not learned, not in ``runs``."""
        self.version = 0
        self.nodes: dict[str, NodeState] = {}
        self.transitions: dict[tuple[str, int], Counter[str]] = {}
        """Per (node, visit): counts of the targets of its last ``window`` departures."""
        self._recent: dict[tuple[str, int], deque[str]] = {}  # those targets, oldest first
        self._names: dict[str, str] = {END: END}  # one str object per name held in _recent
        self.token_models: dict[str, TokenModel] = {}
        self.run_service_s = Sketch(window, half_life_s)
        self._lock = threading.RLock()
        self._compiler = GraphCompiler()
        self._cache: OrderedDict[_Key, tuple[int, NDArray[np.float64]]] = OrderedDict()
        self._drift = None if drift_settings is None else drift.DriftMonitor(drift_settings)
        self.changes: Counter[str] = Counter()
        """Per node (or START): changes detected (its sketches or one of its rows)."""
        self.changed_at: dict[str, float] = {}
        """Per node: when its last detected change began (the runs' ``started_at`` clock)."""
        self.changed_version = 0
        """The ``version`` at which the last change was detected (0: none)."""

    def __repr__(self) -> str:
        return f"PDGraph(app={self.app!r}, runs={self.runs}, nodes={len(self.nodes)})"

    def __getstate__(self) -> dict[str, object]:
        """Everything learned (the change detectors included), without the lock and the
        caches: the compiled tables and the Monte Carlo answers are rebuilt on first use."""
        return {k: v for k, v in vars(self).items() if k not in _REBUILT}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._compiler = GraphCompiler()
        self._cache = OrderedDict()

    # --- learning -------------------------------------------------------------------------------

    def validate(self, path: RunPath) -> None:
        """Raise GraphError if ``path`` cannot be observed; changes nothing."""
        with self._lock:
            check_path(path, self.app, set(self.nodes))

    def validate_many(self, paths: Sequence[RunPath]) -> list[GraphError | None]:
        """:meth:`validate` of each path (against the nodes known now), under one lock."""
        out: list[GraphError | None] = []
        with self._lock:
            known = set(self.nodes)
            for path in paths:
                try:
                    check_path(path, self.app, known)
                    out.append(None)
                except GraphError as exc:
                    out.append(exc)
        return out

    def observe(self, path: RunPath) -> None:
        """Fold one finished run in. Raises GraphError (and learns nothing) on bad input.

        A ``failed`` path was cut short, so only what it really did is learned: the transitions
        between the stages it went through (not the last one to END), and the demand of its
        completed calls. Its failed calls (truncated) and the stage totals of stages holding one
        are skipped, as are its run total and the prior. It counts in ``runs`` and
        ``failed_runs``. A path with no stage (a run that recorded no unit) says nothing about
        demand: it only counts in ``empty_runs``.
        """
        with self._lock:
            check_path(path, self.app, set(self.nodes))
            if not path.stages:
                self.empty_runs += 1
                return
            t_s = float(path.started_at)
            failed = bool(path.failed)
            visits: Counter[str] = Counter()
            source, source_visit = START, 1
            for stage in path.stages:
                node = self.nodes.get(stage.node)
                if node is None:
                    node = NodeState(stage.kind, stage.backend, self.window, self.half_life_s)
                    self.nodes[stage.node] = node
                self._fold_stage(node, stage, t_s, failed)
                visits[stage.node] += 1
                self._count_transition(source, source_visit, stage.node)
                if self._drift is not None:
                    self._watch(stage, node, source, source_visit, t_s, failed)
                source, source_visit = stage.node, visits[stage.node]
            if failed:
                self.failed_runs += 1
            else:
                self._count_transition(source, source_visit, END)
                if self._drift is not None:
                    self._watch_row(source, source_visit, END, t_s)
                service_s = path.service_s  # a sum over every stage: computed once
                self.run_service_s.add(service_s, t_s)
                self.prior.add(service_s)
            self.runs += 1
            self.version += 1
            touched = set(visits)
            self._compiler.touch(touched | {START}, touched)
            if self.max_stale_fraction == 0.0:
                self._cache.clear()

    def observe_many(
        self,
        paths: Sequence[RunPath],
        *,
        checked: bool = False,
        prior: list[tuple[int, float]] | None = None,
    ) -> list[tuple[int, GraphError]]:
        """Fold ``paths`` in, in order: the same graph, bit for bit, as :meth:`observe` of each
        in turn (change detections and the points they cut at included), learned in bulk (see
        :mod:`hermes_sdk.graph.batch_learn`). A path ``observe`` would refuse is skipped and
        returned as (its index in ``paths``, the error); the others are learned.

        ``checked``: every path passed :meth:`validate` since the graph last changed (only the
        node limit is checked again, as the batch adds nodes). ``prior``: append each complete
        run's (index, total service seconds) to it instead of adding them to the prior (a
        caller learning several graphs' batches adds them in its own order).
        """
        from hermes_sdk.graph.batch_learn import observe_batch

        with self._lock:
            return observe_batch(self, paths, checked, prior)

    def _count_transition(self, source: str, visit: int, target: str) -> None:
        """Record one departure of ``(source, visit)``; O(1), forgets the oldest past window."""
        key = (source, min(visit, self.max_visit))
        counter = self.transitions.get(key)
        if counter is None:
            counter = self.transitions[key] = Counter()
            recent = self._recent[key] = deque()
        else:
            recent = self._recent[key]
        count_departures(counter, recent, (self._names.setdefault(target, target),), self.window)

    def _watch(
        self, stage: Stage, node: NodeState, source: str, visit: int, t_s: float, failed: bool
    ) -> None:
        """Feed one stage to the change detectors; on a change drop the evidence before it."""
        self._watch_values(stage, node, t_s, failed)
        self._watch_row(source, visit, stage.node, t_s)

    def _watch_values(self, stage: Stage, node: NodeState, t_s: float, failed: bool) -> None:
        """Feed one stage's values to its node's detectors; on a change cut the node."""
        assert self._drift is not None
        values = drift.stage_values(stage, failed)
        since = drift.watch_stage(self._drift, stage.node, node, values, self.runs, t_s)
        if since is not None:
            since_s = drift.cut_node(self._drift, stage.node, node, since)
            if node.backend is not None and node.backend in self.token_models:
                self.token_models[node.backend] = TokenModel()  # refit on post-change calls
            self._changed(stage.node, since_s)

    def _watch_row(self, source: str, visit: int, target: str, t_s: float) -> None:
        assert self._drift is not None
        key = (source, min(visit, self.max_visit))
        hit = self._drift.row_stream(key).category(target, t_s, self.transitions[key])
        if hit is None:
            return
        order = list(self._recent[key])[-hit[0] :]
        self.transitions[key] = Counter(order)
        self._recent[key] = deque(order)
        self._changed(source, hit[1])

    def _changed(self, node: str, since_s: float) -> None:
        """Record a detected change of ``node`` and make every compiled table / cache see it."""
        self.changes[node] += 1
        self.changed_at[node] = max(since_s, self.changed_at.get(node, since_s))
        self.changed_version = self.version + 1  # the version this observe() will publish
        self._compiler.touch(set(self.nodes) | {START}, set(self.nodes))
        self._cache.clear()

    def _load_transitions(
        self, source: str, visit: int, counts: Mapping[str, int], order: list[str] | None
    ) -> None:
        """Set a (source, visit) row from an export: its window ``order`` (oldest first) when
        the document carries it, else ``counts`` spread evenly (scaled down to the window if a
        document written before windows existed holds more departures than the window)."""
        counts = {t: c for t, c in counts.items() if c > 0}
        total = sum(counts.values())
        if order is None:
            if total > self.window:
                counts = _scaled(counts, self.window)
            order = _interleaved(counts)
        elif len(order) > self.window or Counter(order) != Counter(counts):
            raise GraphError(
                f"transition window of ({source!r}, {visit}) disagrees with its edge counts "
                f"or exceeds the window {self.window}"
            )
        key = (source, visit)
        self.transitions.pop(key, None)
        self._recent.pop(key, None)
        for target in order:
            self._count_transition(source, visit, target)

    def transition_windows(self) -> dict[tuple[str, int], list[str]]:
        """Per (node, visit): the targets of its last ``window`` departures, oldest first."""
        with self._lock:
            return {key: list(recent) for key, recent in self._recent.items()}

    def _fold_stage(self, node: NodeState, stage: Stage, t_s: float, failed_run: bool) -> None:
        node.kind = stage.kind
        if stage.backend is not None:
            node.backend = stage.backend
        node.count += 1
        node.calls += stage.width
        # in a failed run a stage holding a failed call was cut short: its totals are not real
        if not (failed_run and any(call.failed for call in stage.calls)):
            node.width.add(float(stage.width), t_s)
            node.stage_service_s.add(stage.service_s, t_s)
            latency_s = stage.latency_s if stage.latency_s is not None else stage.service_s
            node.stage_latency_s.add(latency_s, t_s)
        for call in stage.calls:
            if failed_run and call.failed:
                continue  # truncated by the crash: its service / tokens are not its demand
            node.service_s.add(call.service_s, t_s)
            if call.input_tokens is not None:
                node.input_tokens.add(float(call.input_tokens), t_s)
            if call.output_tokens is not None:
                node.output_tokens.add(float(call.output_tokens), t_s)
            if call.cold_start_s is not None:
                node.cold_start_s.add(call.cold_start_s, t_s)
            if (
                stage.backend is not None
                and call.input_tokens is not None
                and call.output_tokens is not None
                and not call.failed
            ):
                model = self.token_models.get(stage.backend)
                if model is None:
                    model = self.token_models[stage.backend] = TokenModel()
                model.add(call.input_tokens, call.output_tokens, call.service_s)

    # --- queries --------------------------------------------------------------------------------

    def node_stats(self, node: str) -> NodeStats:
        """Snapshot of a node's learned distributions; GraphError if the node is unknown."""
        with self._lock:
            st = self.nodes.get(node)
            if st is None:
                raise GraphError(f"app {self.app!r} has no node {node!r}")
            return NodeStats(
                node=node,
                count=st.count,
                calls=st.calls,
                kind=st.kind,
                backend=st.backend,
                service_s=st.service_s.sorted(),
                stage_service_s=st.stage_service_s.sorted(),
                input_tokens=st.input_tokens.sorted(),
                output_tokens=st.output_tokens.sorted(),
                width=st.width.sorted(),
                cold_start_s=st.cold_start_s.sorted(),
            )

    def transition_counts(self, node: str, visit: int) -> Counter[str]:
        """Counts of the next node after the ``visit``-th entry of ``node`` (with fallbacks).

        Visits beyond ``max_visit`` share the last row; a (node, visit) never observed falls
        back to the nearest lower observed visit, then to the node's counts over all visits.
        """
        with self._lock:
            v = max(1, min(visit, self.max_visit))
            for vv in range(v, 0, -1):
                counts = self.transitions.get((node, vv))
                if counts:
                    return Counter(counts)
            total: Counter[str] = Counter()
            for (src, _), counts in self.transitions.items():
                if src == node:
                    total.update(counts)
            return total

    def next_stage_probs(self, state: RunState) -> dict[str, float]:
        """P(next node | state) including ``"END"``; empty when the node was never seen."""
        if not isinstance(state, RunState):
            raise GraphError(f"next_stage_probs() needs a RunState, got {type(state).__name__}")
        visit = 1 if state.node == START else max(1, state.visit_count(state.node))
        counts = self.transition_counts(state.node, visit)
        total = sum(counts.values())
        if total == 0:
            return {}
        return {name: c / total for name, c in sorted(counts.items())}

    def remaining_demand(
        self, state: RunState, *, n: int = 1000, rng: np.random.Generator | None = None
    ) -> NDArray[np.float64]:
        """``n`` Monte Carlo samples of the remaining service seconds of a run in ``state``.

        Without ``rng`` the result is deterministic per (state, n, version) and cached (with
        ``max_stale_fraction`` > 0 a cached answer survives a few observes); the returned array
        is read-only. With ``rng`` fresh draws are made and not cached. A graph
        with no runs answers from its prior (pooled across the tenant's apps by the registry).
        """
        return self._remaining(state, n, rng, "service")

    def remaining_latency(
        self, state: RunState, *, n: int = 1000, rng: np.random.Generator | None = None
    ) -> NDArray[np.float64]:
        """``n`` Monte Carlo samples of the remaining wall-clock seconds of a run in ``state``.

        The same walk as :meth:`remaining_demand`, summing each stage's learned latency (start
        to last call's end, queueing included as observed) instead of its service, and for the
        running stage the max, not the sum, of its parallel calls' residual service. A graph
        with no runs answers from the prior of total service (an upper bound).
        """
        return self._remaining(state, n, rng, "latency")

    def _remaining(
        self, state: RunState, n: int, rng: np.random.Generator | None, kind: Demand
    ) -> NDArray[np.float64]:
        check_query(state, n)
        key: _Key = (state, n, MAX_STAGES, kind)
        with self._lock:
            if rng is None:
                hit = self._cached(key)
                if hit is not None:
                    return hit
            gen = rng if rng is not None else self._seeded(state)
            check_state(state)
            if self.runs == self.failed_runs:  # no complete run yet: nothing ends
                out = self.prior.remaining(state.elapsed_s, n, gen)
            else:
                compiled = self._compiler.get(self)
                if state.running and state.node in compiled.index:
                    # residual of the running unit + the walk after it: independent parts, and
                    # only the first depends on elapsed_s, so the walk is cached per position
                    between = RunState(state.node, state.visits)
                    future = self._future(compiled, between, n, rng, kind)
                    out = future + running_residual(compiled, state, n, gen, kind)
                else:
                    out = self._walk(compiled, state, n, gen, MAX_STAGES, kind)
            out.setflags(write=False)
            if rng is None:
                self._store(key, out)
            return out

    def _seeded(self, state: RunState) -> np.random.Generator:
        """Generator seeded by (state, version): answers are reproducible after a rebuild."""
        return np.random.default_rng(zlib.crc32(repr(state).encode()) ^ (self.version * 2654435761))

    def _cached(self, key: _Key) -> NDArray[np.float64] | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        if hit[0] != self.version and self.version - hit[0] > self.max_stale_fraction * self.runs:
            return None
        self._cache.move_to_end(key)
        return hit[1]

    def _store(self, key: _Key, out: NDArray[np.float64]) -> None:
        self._cache[key] = (self.version, out)
        self._cache.move_to_end(key)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def _future(
        self,
        compiled: CompiledGraph,
        between: RunState,
        n: int,
        rng: np.random.Generator | None,
        kind: Demand = "service",
    ) -> NDArray[np.float64]:
        """Demand after the running stage of ``between``'s node ends (cached without rng)."""
        if rng is not None:
            return self._walk(compiled, between, n, rng, MAX_STAGES - 1, kind)
        key: _Key = (between, n, MAX_STAGES - 1, kind)
        hit = self._cached(key)
        if hit is None:
            hit = self._walk(compiled, between, n, self._seeded(between), MAX_STAGES - 1, kind)
            hit.setflags(write=False)
            self._store(key, hit)
        return hit

    @staticmethod
    def _walk(
        compiled: CompiledGraph,
        state: RunState,
        n: int,
        gen: np.random.Generator,
        max_stages: int,
        kind: Demand = "service",
    ) -> NDArray[np.float64]:
        chunk = max(1, _MAX_COUNTER_CELLS // (len(compiled.names) + 2))
        if n <= chunk:
            return simulate(compiled, state, n, gen, max_stages=max_stages, kind=kind)
        # bound the per-path visit counters' memory on huge graphs / huge n
        sizes = [min(chunk, n - i) for i in range(0, n, chunk)]
        return np.concatenate(
            [simulate(compiled, state, m, gen, max_stages=max_stages, kind=kind) for m in sizes]
        )

    # --- export (implemented in hermes_sdk.graph.export) ----------------------------------------

    def to_dict(self, *, include_samples: bool = True) -> dict[str, object]:
        """JSON-able dict (schema_version 1); with samples it round-trips exactly."""
        from hermes_sdk.graph.export import graph_to_dict

        with self._lock:
            return graph_to_dict(self, include_samples=include_samples)

    def to_json(self, *, include_samples: bool = True, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string (keys in a stable order)."""
        import json

        return json.dumps(self.to_dict(include_samples=include_samples), indent=indent)

    @classmethod
    def from_dict(cls, data: object) -> PDGraph:
        """Rebuild a graph from :meth:`to_dict` output (needs ``include_samples=True``)."""
        from hermes_sdk.graph.export import graph_from_dict

        graph = graph_from_dict(data, cls)
        assert isinstance(graph, PDGraph)
        return graph

    @classmethod
    def from_json(cls, text: str | bytes) -> PDGraph:
        """Rebuild a graph from :meth:`to_json` output; GraphError on malformed input."""
        import json

        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise GraphError(f"graph JSON does not parse: {exc}") from exc
        return cls.from_dict(data)

    def to_dot(self) -> str:
        """Graphviz DOT text: one node per unit plus START/END, edges labelled with p."""
        from hermes_sdk.graph.render import graph_to_dot

        return graph_to_dot(self.to_dict(include_samples=False))

    def to_png(self, path: str | Path) -> Path:
        """Draw the graph to a PNG file (matplotlib Agg, see :mod:`hermes_sdk.graph.picture`)."""
        from hermes_sdk.graph.picture import graph_to_png

        return graph_to_png(self.to_dict(include_samples=False), path)

    def to_mermaid(self) -> str:
        """Mermaid ``flowchart`` text: one node per unit plus START/END, edges labelled with p."""
        from hermes_sdk.graph.render import graph_to_mermaid

        return graph_to_mermaid(self.to_dict(include_samples=False))


def _scaled(counts: Mapping[str, int], size: int) -> dict[str, int]:
    """``counts`` scaled to sum to ``size`` (largest remainders, ties by name)."""
    total = sum(counts.values())
    exact = {t: c * size / total for t, c in counts.items()}
    out = {t: int(x) for t, x in exact.items()}
    short = size - sum(out.values())
    for t in sorted(exact, key=lambda t: (out[t] - exact[t], t))[:short]:
        out[t] += 1
    return {t: c for t, c in out.items() if c > 0}


def _interleaved(counts: Mapping[str, int]) -> list[str]:
    """A sequence with ``counts`` of each target, each spread evenly (deterministic)."""
    slots = [((i + 0.5) / c, t) for t, c in counts.items() for i in range(c)]
    return [t for _, t in sorted(slots)]
