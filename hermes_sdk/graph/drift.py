"""Change detection for a learned graph: two-sided CUSUMs on normal scores, per node and per row.

Every monitored stream (a node's per-call service seconds, output tokens, cold-start seconds and
per-stage fan-out width; every ``(node, visit)`` transition row) turns each new observation into
a normal score against a frozen *reference* (the stream's own samples since its last change):

* a value ``x`` gets the randomized probability integral transform
  ``u = (#{r < x} + v * #{r == x}) / n`` over the ``n`` reference samples ``r`` (``v`` in [0, 1)
  a deterministic Weyl sequence, so ties and constants are exactly uniform too), clipped to
  ``[1/(2n), 1 - 1/(2n)]``, and ``z = Phi^-1(u)``;
* a transition target gets the same over the row's reference targets ordered by name (a target
  the reference never saw scores at the top).

With no change ``z`` is standard normal whatever the law of the stream (up to the reference's
sampling error), so one threshold serves every stream: a two-sided CUSUM with reference value
``k = shift / 2`` alarms when ``S > h``, ``h`` chosen from Siegmund's approximation of the
in-control average run length so that a stream raises on average ``false_alarm_rate`` false
alarms per observation. The reference is frozen at ``min_reference`` samples and re-frozen each
time the samples since the last change double (up to the window), so it sharpens as data
comes in without chasing a change in progress.

An alarm also estimates *where* the change began: the observation at which the alarming side of
the CUSUM last left zero. The graph then drops the evidence before that point (sketch samples by
time, row departures by count), so the evidence learned after the change but before the alarm is
kept. On a stationary stream nothing is dropped: the window is the only forgetting.

A value stream's alarm is acted on only when the change is material: the mean since the
estimated change point must differ from the reference mean by ``min_change`` of it and, for
seconds, by ``min_change_s``. Rank scores detect *any* change of law, and measured wall-clock
times are not independent from call to call (load, frequency scaling, GC), so without the gate a
stream of 20 us calls "changes" every few hundred runs and each alarm throws away the node's
evidence; with it such a shift is absorbed (the reference re-frozen on the samples then held).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Mapping
from operator import attrgetter

from hermes_sdk.graph.cusum import CLIP, GOLDEN, PHI_INV, DriftSettings, change_offset
from hermes_sdk.graph.learned import NodeState
from hermes_sdk.graph.records import Stage
from hermes_sdk.graph.sketch import Sketch


class Stream:
    """One monitored stream: its frozen reference, its CUSUM and the times of its excursion.

    The per-observation path is plain float arithmetic on slots (the CUSUM of
    :class:`~hermes_sdk.graph.cusum.Cusum` inlined, the clip bounds of the reference precomputed
    at each freeze): it runs on every value of every stage a graph learns, so it avoids calls and
    lookups it does not need.
    """

    __slots__ = (
        "_down",
        "_down_len",
        "_floor",
        "_h",
        "_k",
        "_lo",
        "_min_reference",
        "_n",
        "_next_freeze",
        "_ref",
        "_ref_mean",
        "_rel",
        "_seen",
        "_times",
        "_top",
        "_up",
        "_up_len",
        "_weyl",
        "_xs",
        "_zs",
    )

    def __init__(self, settings: DriftSettings, h: float, floor: float | None = None) -> None:
        """``floor``: None for no effect gate (rows), else the value stream's smallest change of
        the mean acted on, in its own unit (besides ``settings.min_change`` of the mean)."""
        self._k, self._h = settings.k, h
        self._floor, self._rel = floor, settings.min_change
        self._ref_mean: float | None = 0.0  # None: fsum(reference) / n, computed when needed
        self._xs: list[float] = []  # a gated stream's excursion values
        self._min_reference = settings.min_reference
        self._ref: list[float] | None = None
        self._n = 0  # reference size, and its clip bounds [1/(2n), 1 - 1/(2n)]
        self._lo = self._top = 0.0
        self._seen = 0  # observations since the last change
        self._next_freeze = settings.min_reference
        self._up = self._down = 0.0  # the two CUSUM sides and their excursion lengths
        self._up_len = self._down_len = 0
        self._times: list[float] = []  # times of the current excursion's observations
        self._zs: list[float] = []  # and their scores
        self._weyl = 0.0

    def restart(self, kept: int) -> None:
        """Forget the reference after a change; ``kept`` observations since it are still held."""
        self._ref = None
        self._seen = kept
        self._next_freeze = self._min_reference
        self._up = self._down = 0.0
        self._up_len = self._down_len = 0
        self._times.clear()
        self._zs.clear()
        self._xs.clear()

    def _freeze(self, reference: Iterable[float], window: int) -> None:
        ref = self._ref = sorted(reference)
        n = self._n = len(ref)
        if n:  # (an empty reference fails at the first score, as it always did)
            self._lo, self._top = 0.5 / n, 1.0 - 0.5 / n
            self._ref_mean = None  # read only by _material (an alarm): summed then
        self._next_freeze = min(2 * self._seen, window) if self._seen < window else 1 << 62

    def _fold(self, z: float, time_s: float, refine: bool = True) -> tuple[int, float] | None:
        # Cusum.update, inlined: max(0, s) and the lengths as there, bit for bit
        k, h = self._k, self._h
        up = self._up + z - k
        if up > 0.0:
            self._up, self._up_len = up, self._up_len + 1
        else:
            up = self._up = 0.0
            self._up_len = 0
        down = self._down - z - k
        if down > 0.0:
            self._down, self._down_len = down, self._down_len + 1
        else:
            down = self._down = 0.0
            self._down_len = 0
        times, zs = self._times, self._zs
        times.append(time_s)
        zs.append(z)
        if up <= h and down <= h:
            up_len, down_len = self._up_len, self._down_len
            drop = len(times) - (up_len if up_len > down_len else down_len)
            if drop > 0:
                del times[:drop]
                del zs[:drop]
                if self._floor is not None:
                    del self._xs[:drop]
            return None
        length = self._up_len if up > h else self._down_len
        length = min(length, len(zs))
        if refine:  # a row's two-valued scores: the CUSUM's own start estimates better
            length -= change_offset(zs[-length:])
        if self._floor is not None and not self._material(length):
            return None
        since = times[-length]
        self.restart(length)
        return length, since

    def _material(self, length: int) -> bool:
        """Whether the last ``length`` values' mean moved from the reference mean by at least
        the floor and ``min_change`` of it. If not the alarm is absorbed: the CUSUM and its
        excursion restart and the reference is re-frozen at the next value on the samples then
        held, so a small persistent shift becomes the new normal instead of alarming again."""
        post = self._xs[-length:]
        mean = self._ref_mean
        if mean is None:
            assert self._ref is not None
            mean = self._ref_mean = math.fsum(self._ref) / self._n
        shift = abs(math.fsum(post) / len(post) - mean)
        assert self._floor is not None
        if shift >= self._floor and shift >= self._rel * abs(mean):
            return True
        self._up = self._down = 0.0
        self._up_len = self._down_len = 0
        self._times.clear()
        self._zs.clear()
        self._xs.clear()
        self._next_freeze = self._seen + 1
        return False

    def value(
        self, x: float, time_s: float, reference: Iterable[float], window: int
    ) -> tuple[int, float] | None:
        """Fold a value in (``reference``: the stream's current samples, read only when the
        reference is re-frozen). On an alarm return (observations since the estimated change,
        time of the first of them)."""
        seen = self._seen = self._seen + 1
        if seen >= self._next_freeze:
            self._freeze(reference, window)
        ref = self._ref
        if ref is None:  # still gathering the first reference: O(1)
            return None
        lo = bisect_left(ref, x)
        equal = bisect_right(ref, x, lo) - lo
        weyl = self._weyl = (self._weyl + GOLDEN) % 1.0
        u = (lo + weyl * equal) / self._n
        if u < self._lo:
            u = self._lo
        if u > self._top:
            u = self._top
        z = PHI_INV(u)
        if z < -CLIP:
            z = -CLIP
        if z > CLIP:
            z = CLIP
        if self._floor is not None:
            self._xs.append(x)
        return self._fold(z, time_s)

    def category(
        self, target: str, time_s: float, counts: Mapping[str, int]
    ) -> tuple[int, float] | None:
        """Fold a transition target in (``counts``: the row's window, ``target`` included); on
        an alarm return (departures since the estimated change, time of the first of them).

        Self-starting: the score is the standardized indicator of the window's most frequent
        target, ``(1[target == mode] - p0) / sqrt(p0 (1 - p0))``, with ``p0`` the mode's share
        of the departures before this one (the row's window since its last change); ties of
        the mode go to the smallest name."""
        seen = self._seen = self._seen + 1
        if seen <= self._min_reference:  # still gathering: O(1)
            return None
        n, top, mode = -1, 0, target
        for name, count in counts.items():  # departures before this one, and the mode
            n += count
            if count > top or (count == top and name < mode):
                top, mode = count, name
        hit = target == mode
        if hit:
            top -= 1
        p0 = top / n
        lo = 0.5 / n
        if p0 < lo:
            p0 = lo
        if p0 > 1.0 - lo:
            p0 = 1.0 - lo
        z = ((1.0 if hit else 0.0) - p0) / math.sqrt(p0 * (1.0 - p0))
        if z < -CLIP:
            z = -CLIP
        if z > CLIP:
            z = CLIP
        return self._fold(z, time_s, refine=False)


class DriftMonitor:
    """The streams of one graph, keyed by ``(node, sketch name)`` and ``(node, visit)``."""

    __slots__ = ("h", "marks", "node_values", "rows", "settings", "values")

    def __init__(self, settings: DriftSettings) -> None:
        self.settings = settings
        self.h = settings.threshold
        self.values: dict[tuple[str, str], Stream] = {}
        self.rows: dict[tuple[str, int], Stream] = {}
        self.node_values: dict[str, dict[str, Stream]] = {}
        """The same value streams as :attr:`values`, per node (one lookup per stage)."""
        self.marks: dict[str, deque[tuple[int, float, tuple[int, ...]]]] = {}
        """Per node: (run number, started_at, each sketch's total_added) after its last runs."""

    def value_stream(self, node: str, name: str) -> Stream:
        """The stream of sketch ``name`` of ``node`` (created on first use)."""
        key = (node, name)
        stream = self.values.get(key)
        if stream is None:
            floor = self.settings.min_change_s if name in SECONDS else 0.0
            stream = self.values[key] = Stream(self.settings, self.h, floor)
        return stream

    def row_stream(self, key: tuple[str, int]) -> Stream:
        """The stream of transition row ``key`` (created on first use)."""
        stream = self.rows.get(key)
        if stream is None:
            stream = self.rows[key] = Stream(self.settings, self.h)
        return stream


SECONDS = frozenset(("service_s", "cold_start_s"))
"""The monitored streams measured in seconds (their changes also need ``min_change_s``)."""
MONITORED = ("service_s", "output_tokens", "cold_start_s", "width")
"""The node sketches whose streams are monitored (the others are cut with them)."""


def stage_values(stage: Stage, failed_run: bool) -> list[tuple[str, float]]:
    """The monitored (sketch name, value) pairs one stage added to its node, in order."""
    out: list[tuple[str, float]] = []
    if not (failed_run and any(call.failed for call in stage.calls)):
        out.append(("width", float(stage.width)))
    for call in stage.calls:
        if failed_run and call.failed:
            continue
        out.append(("service_s", call.service_s))
        if call.output_tokens is not None:
            out.append(("output_tokens", float(call.output_tokens)))
        if call.cold_start_s is not None:
            out.append(("cold_start_s", call.cold_start_s))
    return out


def watch_stage(
    monitor: DriftMonitor,
    name: str,
    node: NodeState,
    values: list[tuple[str, float]],
    run: int,
    t_s: float,
) -> int | None:
    """Fold a stage's monitored values (already in ``node``'s sketches) of run number ``run``
    into ``name``'s streams; on an alarm return the run number where the change began."""
    marks = monitor.marks.get(name)
    if marks is None:
        marks = monitor.marks[name] = deque(maxlen=MARKS)
    mark = (run, t_s, _totals(node))
    if marks and marks[-1][0] == run:  # a second stage of this node in the same run
        marks[-1] = mark
    else:
        marks.append(mark)
    streams = monitor.node_values.get(name)
    if streams is None:
        streams = monitor.node_values[name] = {}
    change: int | None = None
    for sketch_name, x in values:
        stream = streams.get(sketch_name)
        if stream is None:
            stream = streams[sketch_name] = monitor.value_stream(name, sketch_name)
        sk: Sketch = getattr(node, sketch_name)
        hit = stream.value(x, run, sk.values(), sk.window)
        if hit is not None:
            since = int(hit[1])
            change = since if change is None else min(change, since)
    return change


def cut_node(monitor: DriftMonitor, name: str, node: NodeState, since_run: int) -> float:
    """Drop ``node``'s samples learned before run ``since_run`` and restart its streams on what
    is left; returns the ``started_at`` of the first run kept (when the change began)."""
    marks = monitor.marks[name]
    before = [m for m in marks if m[0] < since_run]
    base = before[-1][2] if before else marks[0][2]  # the change may predate the marks
    first = next((m for m in marks if m[0] >= since_run), marks[-1])
    for sketch_name, at in zip(_ALL_SKETCHES, base, strict=True):
        sk = node.sketch(sketch_name)
        sk.keep_last(sk.total_added - at)
    for sketch_name in MONITORED:
        stream = monitor.values.get((name, sketch_name))
        if stream is not None:
            stream.restart(len(node.sketch(sketch_name)))
    marks.clear()
    return first[1]


_ALL_SKETCHES = (*NodeState.SKETCHES, "stage_latency_s")
_totals = attrgetter(*(f"{name}.total_added" for name in _ALL_SKETCHES))
"""A node's ``total_added`` of every sketch in :data:`_ALL_SKETCHES`, as a tuple."""
MARKS = 1024
"""Runs per node whose sketch positions are remembered (how far back a change can be cut)."""


DEFAULT = DriftSettings()
"""The settings a graph uses unless told otherwise."""
