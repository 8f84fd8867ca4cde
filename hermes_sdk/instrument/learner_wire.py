"""What crosses the pipe between the app and its learner process: framed batches and snapshots.

A frame (:mod:`~hermes_sdk.instrument.learner_frames`: an 8-byte big-endian length and that many
bytes) from the app says by its first byte what it holds (:data:`RUNS`: completed runs;
:data:`SYNC`: a request for the child's counters and graphs). Each run is flattened to one list
of plain values and marshalled in one call when it ends (:func:`encode_run`: ~5 us per 13-stage
run on CPython 3.11 on the shared test machine; pickling the dataclasses themselves costs ~70
us, one Python ``__getstate__`` per object). The child rebuilds them without re-running the
records' checks (:func:`decode_runs`): they were checked when the app built them.

Graph snapshots go the other way: :func:`dump_message` pickles the child's changed
:class:`PDGraph` objects and their tenants' :class:`PooledPrior` exactly (every learned field,
the change detectors included) but without their locks and their caches (their own
``__getstate__``; the compiled tables and the Monte Carlo cache are rebuilt on first use);
:func:`install_graphs` copies them into the app's registry in place, under each graph's lock,
so a graph object the app holds keeps answering with what the child learned.
"""

from __future__ import annotations

import marshal
import pickle
import struct
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from itertools import accumulate, islice, repeat
from operator import itemgetter
from typing import Any, Final

from hermes_sdk.graph import GraphRegistry, PDGraph
from hermes_sdk.graph.prior import PooledPrior
from hermes_sdk.graph.records import Call, RunPath, Stage

RUNS: Final = b"R"
"""First byte of a frame of runs each encoded on its own (:func:`encode_run`, at ``submit()``),
as one ``marshal`` of their list (:func:`runs_frame`; app to child)."""
SYNC: Final = b"S"
"""First byte of a sync request (app to child): an 8-byte sequence number follows."""
_SEQ: Final = struct.Struct(">Q")
FRAME_MAX_RUNS: Final = 500
"""Most runs per frame to the child, and per batch it learns (merging frames that wait): the
child starts on a large backlog while the rest is encoded and sent, and its peak memory (~5 KB
per decoded run plus the batch's JSON and temporaries) stays bounded. 40,000-run soaks, child
peak RSS / app peak growth (MiB), an earlier and slower child: 4,000 runs per batch 101 / +39,
2,000: 81 / +22, 1,000: 75-79 / +21, 500: 83 / +36 (the app's queue filled). The child fed
80,000 runs faster than it learns (docs/decisions.md, 2026-12-04, issue 29 part B): 1,000-run
batches grew it 30.1-30.3 MiB, 500-run ones 23.1-23.9, at 112-114 against 106-109 us of CPU
per run, the same throughput (8.4-9.0k runs/s)."""
STATUS_INTERVAL_S: Final = 0.5
"""Least seconds between two unrequested status messages (graphs) of a learning child."""


def encode_run(path: RunPath) -> bytes:
    """``path`` as one ``marshal`` of a flat list of plain values: its 8 fields and its stage
    count, per stage node, kind, backend, latency_s and its call count, per call its 5 fields.
    One growing list and short-lived tuples: no tracked object survives to add work to the
    app's garbage collector (a tuple per stage kept in a list made this ~3x slower on a loaded
    heap). The queue of a process learner holds these (an untracked ``bytes``, ~630 bytes for a
    13-stage run against ~5,000 for the objects), so its bound holds ~8x the runs."""
    out: list[Any] = []
    _flatten((path,), out)
    return marshal.dumps(out)


def runs_frame(runs: Sequence[bytes]) -> bytes:
    """The payload of a frame of :func:`encode_run` runs (one ``marshal`` of their list)."""
    return RUNS + runs_body(runs)


def runs_body(runs: Sequence[bytes]) -> bytes:
    """A :func:`runs_frame` payload after its first byte: what the feeder writes behind
    ``prefix=RUNS`` (:func:`write_frame`), with no copy of the whole frame to join them."""
    return marshal.dumps(runs if isinstance(runs, list) else list(runs))


def decode_runs(blob: bytes | memoryview) -> list[RunPath]:
    """The runs of a :func:`runs_frame` payload (after its first byte), in order."""
    return decode_run_list(marshal.loads(blob))


def decode_run_list(runs: Sequence[bytes]) -> list[RunPath]:
    """The runs of a list of :func:`encode_run` blobs, in order, equal field by field. Their
    slots are set directly: a frozen dataclass's ``__init__`` and checks cost 4x as much, and
    the values were checked when the app built the records. Runs whose every stage has one call
    (the usual shape) are built a field at a time over the whole list (:func:`_one_call_runs`:
    C-level loops, ~2x cheaper), the others one by one (:func:`_unflatten`)."""
    flats: list[list[Any]] = list(map(marshal.loads, runs))
    simple: list[list[Any]] = []
    others: list[tuple[int, list[Any]]] = []
    for i, flat in enumerate(flats):
        # flat[13 + 10 j] is stage j's call count when every stage before it has one call:
        # all of them 1 and the length right means every stage has exactly one call
        n = flat[8]
        if len(flat) == 9 + 10 * n and flat[13::10].count(1) == n:
            simple.append(flat)
        else:
            others.append((i, flat))
    paths = _one_call_runs(simple)
    if not others:
        return paths
    out: list[RunPath] = []
    built, before = iter(paths), 0
    for i, flat in others:  # each in its place among the simple ones
        out += islice(built, i - before)
        out += _unflatten([1, *flat])
        before = i + 1
    out += built
    return out


_sink: Final[deque[object]] = deque(maxlen=0)
_consume: Final[Callable[[Iterable[object]], None]] = _sink.extend
"""Runs an iterator to its end, keeping nothing (the setters' ``map``)."""


def _one_call_runs(flats: list[list[Any]]) -> list[RunPath]:
    """The runs of flat lists whose every stage has one call: the stages' blocks of 10 values
    (node, kind, backend, latency_s, 1, and the call's 5 fields) joined, each field set over
    all the stages and calls at once by slicing every 10th value."""
    new = object.__new__
    body: list[Any] = []
    grow = body.extend
    for flat in flats:
        grow(islice(flat, 9, None))
    count = len(body) // 10
    stages: list[Stage] = list(map(new, repeat(Stage, count)))
    calls: list[Call] = list(map(new, repeat(Call, count)))
    for j, setter in enumerate(_S[:4]):
        _consume(map(setter, stages, body[j::10]))
    for j, setter in enumerate(_C):
        _consume(map(setter, calls, body[5 + j :: 10]))
    _consume(map(_S[4], stages, zip(calls)))
    paths: list[RunPath] = list(map(new, repeat(RunPath, len(flats))))
    for j, setter in enumerate(_P[:8]):
        _consume(map(setter, paths, map(itemgetter(j), flats)))
    ends = list(accumulate(map(itemgetter(8), flats), initial=0))
    _consume(map(_P[8], paths, map(tuple, map(stages.__getitem__, map(slice, ends, ends[1:])))))
    return paths


def _flatten(paths: Sequence[RunPath], out: list[Any]) -> None:
    add = out.extend
    for p in paths:
        stages = p.stages
        add(
            (
                p.app,
                p.run_id,
                p.tenant,
                p.started_at,
                p.deadline_s,
                p.failed,
                p.paused_s,
                p.abandoned,
                len(stages),
            )
        )
        for s in stages:
            calls = s.calls
            add((s.node, s.kind, s.backend, s.latency_s, len(calls)))
            for c in calls:
                add((c.service_s, c.input_tokens, c.output_tokens, c.cold_start_s, c.failed))


_CALL_FIELDS: Final = ("service_s", "input_tokens", "output_tokens", "cold_start_s", "failed")
_STAGE_FIELDS: Final = ("node", "kind", "backend", "latency_s", "calls")
_PATH_FIELDS: Final = (
    "app",
    "run_id",
    "tenant",
    "started_at",
    "deadline_s",
    "failed",
    "paused_s",
    "abandoned",
    "stages",
)
for _cls, _names in ((Call, _CALL_FIELDS), (Stage, _STAGE_FIELDS), (RunPath, _PATH_FIELDS)):
    # a record that grows a field must be shipped with it: fail at import, not silently
    assert {f.name for f in fields(_cls)} == set(_names), (_cls, _names)
_C = tuple(getattr(Call, f).__set__ for f in _CALL_FIELDS)
_S = tuple(getattr(Stage, f).__set__ for f in _STAGE_FIELDS)
_P = tuple(getattr(RunPath, f).__set__ for f in _PATH_FIELDS)


def _unflatten(flat: list[Any]) -> list[RunPath]:
    """The runs of a flat list (the count first), as :func:`decode_run_list` builds them."""
    nxt = iter(flat).__next__
    new = object.__new__
    c0, c1, c2, c3, c4 = _C
    s0, s1, s2, s3, s4 = _S
    paths: list[RunPath] = []
    for _ in range(nxt()):
        path = new(RunPath)
        for setter in _P[:8]:
            setter(path, nxt())
        stages = []
        for _ in range(nxt()):
            stage = new(Stage)
            s0(stage, nxt())
            s1(stage, nxt())
            s2(stage, nxt())
            s3(stage, nxt())
            calls = []
            for _ in range(nxt()):
                call = new(Call)
                c0(call, nxt())
                c1(call, nxt())
                c2(call, nxt())
                c3(call, nxt())
                c4(call, nxt())
                calls.append(call)
            s4(stage, tuple(calls))
            stages.append(stage)
        _P[8](path, tuple(stages))
        paths.append(path)
    return paths


def sync_request(seq: int) -> bytes:
    """The payload of a sync request numbered ``seq``."""
    return SYNC + _SEQ.pack(seq)


def sync_seq(payload: bytes) -> int:
    """The sequence number of a sync request's payload."""
    (seq,) = _SEQ.unpack_from(payload, 1)
    return int(seq)


# -- graph snapshots --------------------------------------------------------------------------


def dump_message(message: dict[str, Any]) -> bytes:
    """Pickle a message of the child (counters, and graphs under ``"graphs"``: a graph and a
    pooled prior pickle without their locks and caches, and priors shared stay shared)."""
    return pickle.dumps(message, protocol=5)


def load_message(payload: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The message :func:`dump_message` wrote."""
    message: dict[str, Any] = pickle.loads(payload)
    return message


def changed_graphs(
    registry: GraphRegistry, sent: dict[tuple[str, str], int]
) -> list[tuple[str, str, PDGraph]]:
    """``(tenant, app, graph)`` of every graph whose version differs from ``sent`` (updated)."""
    out = []
    for tenant in registry.tenants():
        for app in registry.apps(tenant):
            graph = registry.get(app, tenant)
            if graph is not None and sent.get((tenant, app)) != graph.version:
                sent[(tenant, app)] = graph.version
                out.append((tenant, app, graph))
    return out


def install_graphs(registry: GraphRegistry, graphs: list[tuple[str, str, PDGraph]]) -> int:
    """Copy snapshot ``graphs`` into ``registry``'s graphs of the same (tenant, app), in place,
    and their tenants' pooled priors; returns how many graphs were installed."""
    priors: dict[str, PooledPrior] = {}
    for tenant, _, graph in graphs:
        priors.setdefault(tenant, graph.prior)
    for tenant, shipped in priors.items():
        mine = registry.prior(tenant)
        with mine._lock:
            mine.sketch = shipped.sketch
    for tenant, app, graph in graphs:
        target = registry.graph(app, tenant)
        state = {k: v for k, v in vars(graph).items() if k != "_lock"}
        state["prior"] = registry.prior(tenant)
        with target._lock:
            target.__dict__.update(state)
    return len(graphs)
