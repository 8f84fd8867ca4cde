"""What a batch of runs adds to one node of a graph, gathered before it is learned: the node's
stages with their run index, and each sketch's values with their run index, in the order
``PDGraph._fold_stage`` would add them one run at a time (:mod:`hermes_sdk.graph.batch_learn`
learns them)."""

from __future__ import annotations

from bisect import bisect_right
from itertools import repeat
from operator import add, attrgetter, itemgetter

from hermes_sdk.graph import drift
from hermes_sdk.graph.learned import NodeState
from hermes_sdk.graph.records import RunPath, Stage

SKETCHES = drift._ALL_SKETCHES  # the order of a mark's totals
_SERVICE, _INPUT, _OUTPUT, _WIDTH, _COLD, _STAGE, _LATENCY = (
    SKETCHES.index(name)
    for name in (
        "service_s",
        "input_tokens",
        "output_tokens",
        "width",
        "cold_start_s",
        "stage_service_s",
        "stage_latency_s",
    )
)
WATCHED = tuple((name, SKETCHES.index(name)) for name in drift.MONITORED)
_calls, _first = attrgetter("calls"), itemgetter(0)
_service_s, _latency_s = attrgetter("service_s"), attrgetter("latency_s")


class NodeRuns:
    """What the batch adds to one node: its stages (with their run index), then each sketch's
    values with their run index (:meth:`build`)."""

    __slots__ = ("ends", "node", "runs", "simple", "stage_runs", "stages", "vals")

    def __init__(self, node: NodeState) -> None:
        self.node = node
        self.stages: list[Stage] = []
        self.stage_runs: list[int] = []
        self.simple = True
        """Every stage has one call and no run of them failed (lists built in bulk)."""
        self.vals: list[list[float]] = [[] for _ in SKETCHES]
        self.runs: list[list[int]] = [[] for _ in SKETCHES]
        self.ends: list[dict[int, int]] = [{} for _ in SKETCHES]
        """Per sketch: a value's index -> how many values the sketch held once the rest of its
        stage was added, where that is not the next index (stages of several calls)."""

    def build(self, paths: list[RunPath]) -> None:
        """The samples ``PDGraph._fold_stage`` adds for each stage, per sketch, in order."""
        if not self.simple:
            for r, stage in zip(self.stage_runs, self.stages, strict=True):
                self.add_stage(r, stage, bool(paths[r].failed))
            return
        runs, vals, stages = self.stage_runs, self.vals, self.stages
        calls = list(map(_first, map(_calls, stages)))
        service = list(map(_service_s, calls))
        stage_s = list(map(add, service, repeat(0.0)))  # Stage.service_s of one call: x + 0.0
        vals[_SERVICE] = list(map(float, service))
        vals[_STAGE] = list(map(float, stage_s))
        vals[_WIDTH] = [1.0] * len(calls)
        latency = list(map(_latency_s, stages))
        if None not in latency:
            vals[_LATENCY] = list(map(float, latency))
        else:
            vals[_LATENCY] = [
                float(x if x is not None else y) for x, y in zip(latency, stage_s, strict=True)
            ]
        for k in (_SERVICE, _STAGE, _WIDTH, _LATENCY):
            self.runs[k] = runs
        for k, field in (
            (_INPUT, "input_tokens"),
            (_OUTPUT, "output_tokens"),
            (_COLD, "cold_start_s"),
        ):
            got = list(map(attrgetter(field), calls))
            if None not in got:
                vals[k] = list(map(float, got))
                self.runs[k] = runs
            else:
                vals[k] = [float(x) for x in got if x is not None]
                self.runs[k] = [r for r, x in zip(runs, got, strict=True) if x is not None]

    def marks(self, runs0: int, times: list[float]) -> list[tuple[int, float, tuple[int, ...]]]:
        """``drift.watch_stage``'s mark after this node's last stage of each of its runs."""
        last = list(dict.fromkeys(self.stage_runs))  # (appended in run order: sorted)
        base = drift._totals(self.node)
        # bisect, not np.searchsorted: that releases the GIL per call, and the learner then
        # waits up to the 5 ms switch interval to get it back from a CPU-bound app thread.
        # Sketches sharing one run list (a simple node: all of them) share its positions.
        found: dict[int, list[int]] = {}
        counts = []
        for run_of, b in zip(self.runs, base, strict=True):
            at = found.get(id(run_of))
            if at is None:
                at = found[id(run_of)] = list(map(bisect_right, repeat(run_of), last))
            counts.append(map(add, at, repeat(int(b))))
        return list(
            zip(
                map(add, last, repeat(runs0)),
                map(times.__getitem__, last),
                zip(*counts, strict=True),
                strict=True,
            )
        )

    def add_stage(self, r: int, stage: Stage, failed: bool) -> None:
        """``PDGraph._fold_stage``'s samples of ``stage`` (run index ``r``), recorded."""
        vals, runs = self.vals, self.runs
        calls = stage.calls
        if len(calls) == 1:  # the common case, without the loops
            call = calls[0]
            if failed and call.failed:
                return
            x = call.service_s
            stage_s = x + 0.0  # Stage.service_s of one call
            latency = stage.latency_s
            vals[_WIDTH].append(1.0)
            vals[_STAGE].append(float(stage_s))
            vals[_LATENCY].append(float(latency if latency is not None else stage_s))
            vals[_SERVICE].append(float(x))
            runs[_WIDTH].append(r)
            runs[_STAGE].append(r)
            runs[_LATENCY].append(r)
            runs[_SERVICE].append(r)
            if call.input_tokens is not None:
                vals[_INPUT].append(float(call.input_tokens))
                runs[_INPUT].append(r)
            if call.output_tokens is not None:
                vals[_OUTPUT].append(float(call.output_tokens))
                runs[_OUTPUT].append(r)
            if call.cold_start_s is not None:
                vals[_COLD].append(float(call.cold_start_s))
                runs[_COLD].append(r)
            return
        if not (failed and any(call.failed for call in calls)):
            stage_s = stage.service_s
            latency = stage.latency_s
            vals[_WIDTH].append(float(len(calls)))
            vals[_STAGE].append(float(stage_s))
            vals[_LATENCY].append(float(latency if latency is not None else stage_s))
            runs[_WIDTH].append(r)
            runs[_STAGE].append(r)
            runs[_LATENCY].append(r)
        starts = (len(vals[_SERVICE]), len(vals[_OUTPUT]), len(vals[_COLD]))
        for call in calls:
            if failed and call.failed:
                continue
            vals[_SERVICE].append(float(call.service_s))
            runs[_SERVICE].append(r)
            if call.input_tokens is not None:
                vals[_INPUT].append(float(call.input_tokens))
                runs[_INPUT].append(r)
            if call.output_tokens is not None:
                vals[_OUTPUT].append(float(call.output_tokens))
                runs[_OUTPUT].append(r)
            if call.cold_start_s is not None:
                vals[_COLD].append(float(call.cold_start_s))
                runs[_COLD].append(r)
        for k, start in zip((_SERVICE, _OUTPUT, _COLD), starts, strict=True):
            end = len(vals[k])
            for i in range(start, end - 1):  # values of one stage: seen by the detector at once
                self.ends[k][i] = end
