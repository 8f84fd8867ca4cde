"""How well a PDGraph learns a suite's apps: transition error and P95 calibration vs runs seen.

For each app, standalone runs are sampled from the workload (the truth) and fed to a fresh
:class:`~hermes_sdk.graph.PDGraph` in order; at checkpoints the graph is scored on held-out runs:

* **transition error**: mean total-variation distance between the learned ``next_stage_probs``
  and the true next-node law, over the between-stage states the held-out runs pass through;
* **P95 coverage**: the share of stage entries (a stage just started, its width and prompt size
  known, as a scheduler sees it) plus run starts whose true remaining service is at or below the
  graph's predicted 95th percentile (well calibrated = 0.95);
* **mean error**: |predicted mean - true mean| / true mean of the total demand at run start.

The drift scenario changes one app's loop law half-way and shows the same scores against the
*current* truth, so re-learning is visible.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import cast

import numpy as np

from hermes_sdk.graph.pdgraph import PDGraph
from hermes_sdk.graph.records import END, START, RunPath, RunState
from hermes_sdk.sim.workloads.paths import sample_path
from hermes_sdk.sim.workloads.spec import JsonObject, JsonValue, Workload, loop_law

CHECKPOINTS: tuple[int, ...] = (5, 20, 50, 100, 300, 1000)
"""Runs seen at which the graph is scored."""
TRUTH_RUNS = 400
"""Runs sampled to estimate an app's true mean demand."""


@dataclass(frozen=True, slots=True)
class LearningPoint:
    """Scores of a graph after ``runs`` observed runs (see the module docstring)."""

    runs: int
    transition_error: float
    p95_coverage: float
    mean_error: float


def true_next_probs(app: JsonObject, state: RunState) -> dict[str, float]:
    """The true law of the next node of a run of ``app`` that is between stages in ``state``."""
    if state.node == START:
        return {str(app["start"]): 1.0}
    unit = cast(dict[str, JsonObject], app["units"])[state.node]
    if "next" in unit:
        edges = cast(list[JsonObject], unit["next"])
    else:
        table = cast(list[list[JsonObject]], unit["by_visit"])
        edges = table[min(state.visit_count(state.node), len(table)) - 1]
    out: dict[str, float] = {}
    for e in edges:
        p = e["p"]
        assert isinstance(p, (int, float))
        out[str(e["to"])] = out.get(str(e["to"]), 0.0) + float(p)
    return out


def _app(workload: Workload, name: str) -> JsonObject:
    for a in cast(list[JsonObject], workload["apps"]):
        if a["name"] == name:
            return a
    raise KeyError(name)


def score_graph(
    graph: PDGraph,
    app: JsonObject,
    held_out: Sequence[RunPath],
    true_mean_s: float,
    *,
    n: int = 400,
) -> LearningPoint:
    """Score ``graph`` on ``held_out`` runs of ``app`` whose mean total service is
    ``true_mean_s`` seconds (module docstring)."""
    tv: list[float] = []
    covered: list[bool] = []
    for path in held_out:
        stages = path.stages
        for k in range(len(stages) + 1):
            between = RunState.after(stages[:k])
            if k < len(stages) or between.node != START:
                learned = graph.next_stage_probs(between)
                truth = true_next_probs(app, between)
                keys = set(learned) | set(truth)
                tv.append(0.5 * sum(abs(learned.get(x, 0.0) - truth.get(x, 0.0)) for x in keys))
            if k == len(stages):
                break
            stage = stages[k]
            entered = RunState(
                node=stage.node,
                visits=RunState.after(stages[: k + 1]).visits,
                running=True,
                elapsed_s=0.0,
                input_tokens=stage.calls[0].input_tokens,
                width=stage.width,
            )
            remaining = sum(s.service_s for s in stages[k:])
            for state in (entered, between) if k == 0 else (entered,):
                q95 = float(np.quantile(graph.remaining_demand(state, n=n), 0.95))
                covered.append(remaining <= q95 * (1.0 + 1e-9))
    predicted = float(np.mean(graph.remaining_demand(RunState(), n=n)))
    return LearningPoint(
        runs=graph.runs,
        transition_error=float(np.mean(tv)) if tv else 0.0,
        p95_coverage=float(np.mean(covered)) if covered else 0.0,
        mean_error=abs(predicted - true_mean_s) / true_mean_s,
    )


def _truth(
    workload: Workload, app_name: str, n_held_out: int, rng: np.random.Generator
) -> tuple[list[RunPath], float]:
    """Held-out runs and the app's true mean service (from at least TRUTH_RUNS runs)."""
    paths = [sample_path(workload, app_name, rng) for _ in range(max(n_held_out, TRUTH_RUNS))]
    return paths[:n_held_out], float(np.mean([p.service_s for p in paths]))


def learning_curve(
    workload: Workload,
    app_name: str,
    *,
    checkpoints: Sequence[int] = CHECKPOINTS,
    n_held_out: int = 100,
    seed: int = 0,
) -> list[LearningPoint]:
    """Scores of one app's PDGraph after each checkpoint's number of observed runs."""
    rng = np.random.default_rng(seed)
    app = _app(workload, app_name)
    held_out, true_mean_s = _truth(workload, app_name, n_held_out, rng)
    graph = PDGraph(app_name)
    points: list[LearningPoint] = []
    for target in sorted(checkpoints):
        while graph.runs < target:
            graph.observe(_stamped(sample_path(workload, app_name, rng), graph.runs))
        points.append(score_graph(graph, app, held_out, true_mean_s))
    return points


def _stamped(path: RunPath, i: int, interarrival_s: float = 10.0) -> RunPath:
    return RunPath(app=path.app, stages=path.stages, run_id=f"r{i}", started_at=i * interarrival_s)


def with_loop_law(
    workload: Workload, app_name: str, unit: str, exit_to: str, stop_p: float, max_visits: int
) -> Workload:
    """A copy of ``workload`` whose ``app_name.unit`` loop stops with ``stop_p`` per visit."""
    changed = copy.deepcopy(workload)
    units = cast(dict[str, JsonObject], _app(changed, app_name)["units"])
    target = units[unit]
    loop_to = next(
        str(e["to"])
        for e in cast(list[list[JsonObject]], target["by_visit"])[0]
        if e["to"] != exit_to
    )
    target["by_visit"] = loop_law(loop_to, exit_to, stop_p, max_visits)
    return changed


def drift_curve(
    before: Workload,
    after: Workload,
    app_name: str,
    *,
    runs: int = 2000,
    every: int = 200,
    half_life_s: float | None = None,
    n_held_out: int = 100,
    seed: int = 0,
) -> list[dict[str, JsonValue]]:
    """Feed ``runs`` runs (the first half from ``before``, the rest from ``after``) and score
    against the truth of the moment every ``every`` runs. Runs start 10 s apart."""
    rng = np.random.default_rng(seed)
    held = {id(w): _truth(w, app_name, n_held_out, rng) for w in (before, after)}
    graph = PDGraph(app_name, half_life_s=half_life_s)
    out: list[dict[str, JsonValue]] = []
    while graph.runs < runs:
        truth = before if graph.runs < runs // 2 else after
        graph.observe(_stamped(sample_path(truth, app_name, rng), graph.runs))
        if graph.runs % every == 0:
            truth = before if graph.runs <= runs // 2 else after
            held_out, true_mean_s = held[id(truth)]
            point = score_graph(graph, _app(truth, app_name), held_out, true_mean_s)
            out.append({**asdict(point), "phase": "before" if truth is before else "after"})
    return out


def learning_report(
    workload: Workload,
    *,
    checkpoints: Sequence[int] = CHECKPOINTS,
    drift_runs: int = 2000,
    n_held_out: int = 100,
    seed: int = 0,
) -> dict[str, JsonValue]:
    """JSON-able report: per-app learning curves plus the drift scenario on ``code_feedback``
    (stop probability per turn 0.4 -> 0.15 half-way), with and without a 1-hour half-life."""
    apps: dict[str, JsonValue] = {}
    for a in cast(list[JsonObject], workload["apps"]):
        name = str(a["name"])
        curve = learning_curve(
            workload, name, checkpoints=checkpoints, n_held_out=n_held_out, seed=seed
        )
        apps[name] = [cast(JsonValue, asdict(p)) for p in curve]
    before = workload
    after = with_loop_law(workload, "code_feedback", "code_generation", END, 0.15, 6)
    drift: dict[str, JsonValue] = {
        "app": "code_feedback",
        "change": "stop probability per turn 0.4 -> 0.15 after half the runs",
        "runs": drift_runs,
        "interarrival_s": 10.0,
    }
    for label, half_life in (("window", None), ("half_life_3600s", 3600.0)):
        drift[label] = list[JsonValue](
            drift_curve(
                before,
                after,
                "code_feedback",
                runs=drift_runs,
                every=max(1, drift_runs // 10),
                half_life_s=half_life,
                n_held_out=n_held_out,
                seed=seed,
            )
        )
    return {"checkpoints": list[JsonValue](checkpoints), "apps": apps, "drift": drift}
