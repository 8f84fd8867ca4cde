"""The drift suite: the light mix where one app changes behaviour half-way through the arrivals.

Four changes of one app (weight raised so it is ~20% of the runs): ``branch`` (map-reduce's
collapse branch p 0.5 -> 0.8), ``fanout`` (its map width 3-8 -> 9-16), ``service`` (its output
tokens, hence LLM service, x2) and ``loop`` (code feedback's stop probability 0.5 -> 0.2, up to
8 turns instead of 4). The runs before ``change_at`` are drawn from the old behaviour, those from
it on from the new one, with the same arrival times (drawn for the old mix at ``load``; the
default 0.5 keeps the engine below saturation after the heavier changes, at 0.7 the fan-out and
service changes overload it and completion times grow without bound).

Two Gittins simulations of the same runs are compared: *online* (ranks from a
:class:`~hermes_sdk.graph.GraphRegistry` learning from completed runs, change detection on) and
*oracle-that-knows-the-change* (ranks from the true program of each run's behaviour). Reported:
the mean completion seconds of the runs arriving from the changed app's 100th new run on, the
ratio online / oracle, and the online graph's error |predicted - true| / true in the changed
app's mean demand at START after k of its new runs were learned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import RunPath, RunState
from hermes_sdk.policy import make_policy
from hermes_sdk.policy.base import DemandModel
from hermes_sdk.sim.des import Simulation
from hermes_sdk.sim.oracle import OracleModel
from hermes_sdk.sim.programs import Program
from hermes_sdk.sim.run import draw_runs
from hermes_sdk.sim.sim_types import SimApp
from hermes_sdk.sim.workload import Workload, parse_workload
from hermes_sdk.sim.workloads.light import light_apps
from hermes_sdk.sim.workloads.paper import END, code_feedback
from hermes_sdk.sim.workloads.spec import JsonObject, app, int_range, llm_unit, to, uniform
from hermes_sdk.sim.workloads.suites import light_suite

KINDS: Final = ("branch", "fanout", "service", "loop")
CHECKPOINTS: Final = (25, 50, 100, 200, 500)
"""New runs of the changed app learned at which the prediction error is reported."""
SETTLE_RUNS: Final = 100
"""Completion is compared from the changed app's this-many-th new run on."""
WEIGHT: Final = 25.0


def _mapreduce(collapse_p: float, width: tuple[int, int], tokens: float) -> JsonObject:
    """The light map-reduce app with its collapse branch, map width and output tokens set."""
    units = {
        "generate_summary": llm_unit(
            uniform(250, 580),
            uniform(57 * tokens, 150 * tokens),
            width=int_range(*width),
            next_=[
                to("collapse_summaries", collapse_p),
                to("generate_final_summary", 1.0 - collapse_p),
            ],
        ),
        "collapse_summaries": llm_unit(
            uniform(310, 1000),
            uniform(100 * tokens, 300 * tokens),
            width=int_range(2, 2),
            next_=[to("generate_final_summary")],
        ),
        "generate_final_summary": llm_unit(
            uniform(640, 1500), uniform(200 * tokens, 500 * tokens), next_=[to(END)]
        ),
    }
    return app("mapreduce_light", WEIGHT, "generate_summary", units, "map-reduce (drift suite)")


def changed_app(kind: str) -> tuple[JsonObject, JsonObject]:
    """(old, new) spec of the app that changes in scenario ``kind``."""
    base = _mapreduce(0.5, (3, 8), 1.0)
    if kind == "branch":
        return base, _mapreduce(0.8, (3, 8), 1.0)
    if kind == "fanout":
        return base, _mapreduce(0.5, (9, 16), 1.0)
    if kind == "service":
        return base, _mapreduce(0.5, (3, 8), 2.0)
    if kind == "loop":
        return (
            code_feedback(WEIGHT, stop_p=0.5, max_turns=4, exec_s=6.0),
            code_feedback(WEIGHT, stop_p=0.2, max_turns=8, exec_s=6.0),
        )
    raise ValueError(f"unknown drift kind {kind!r} (one of {', '.join(KINDS)})")


def drift_workloads(kind: str, load: float, seed: int, n_apps: int) -> tuple[Workload, Workload]:
    """The old and new mixes (online learning, no deadlines) of scenario ``kind``."""
    old_app, new_app = changed_app(kind)
    docs = []
    for spec in (old_app, new_app):
        doc: dict[str, Any] = dict(light_suite(load, seed, n_apps=n_apps, warmup_apps=0))
        others = [a for a in light_apps() if a["name"] != spec["name"]]
        doc["apps"] = [*others, spec]
        docs.append(doc)
    return parse_workload(docs[0]), parse_workload(docs[1])


def _runs(
    old: Workload, new: Workload, seed: int, change_at: int, renamed: str | None
) -> tuple[dict[str, Program], list[SimApp]]:
    """Spliced runs (old before ``change_at``, new from it on, old arrival times) and the
    programs; ``renamed`` gives the changed app's new runs another name (for the oracle)."""
    programs, before = draw_runs(old, seed)
    new_programs, after = draw_runs(new, seed)
    runs: list[SimApp] = []
    for i, (a, b) in enumerate(zip(before, after, strict=True)):
        run = a
        if i >= change_at:
            b.arrival_s = b.stage_start_s = a.arrival_s
            b.deadline_s = None
            if renamed is not None and b.name == renamed:
                b.name = renamed + "@new"
            run = b
        runs.append(run)
    if renamed is not None:
        programs = {**programs, renamed + "@new": new_programs[renamed]}
    return programs, runs


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One scenario (see module docstring); seconds."""

    kind: str
    seed: int
    load: float
    online_mean_s: float
    oracle_mean_s: float
    ratio: float
    mean_error: dict[int, float]
    """k new runs learned -> |predicted - true| / true mean demand of the changed app."""
    changes: dict[str, int]
    """Changes the online graph of the changed app detected, per node."""


def run_drift(
    kind: str, *, load: float = 0.5, seed: int = 1, n_apps: int = 3000, policy: str = "gittins"
) -> DriftResult:
    """Simulate scenario ``kind`` online and with the oracle-that-knows-the-change."""
    change_at = n_apps // 2
    old, new = drift_workloads(kind, load, seed, n_apps)
    name = changed_app(kind)[0]["name"]
    assert isinstance(name, str)
    _, truth_runs = draw_runs(new, seed + 1000)
    truth = float(np.mean([a.total_s for a in truth_runs if a.name == name]))

    registry = GraphRegistry()
    errors: dict[int, float] = {}
    seen = [0]

    def observe(path: RunPath) -> object:
        out = registry.observe(path)
        if path.app == name and int(str(path.run_id).rsplit("-", 1)[-1]) >= change_at:
            seen[0] += 1
            if seen[0] in CHECKPOINTS:
                graph = registry.get(name)
                assert graph is not None
                mean = float(graph.remaining_demand(RunState(), n=4000).mean())
                errors[seen[0]] = abs(mean - truth) / truth
        return out

    means = []
    for online in (True, False):
        programs, runs = _runs(old, new, seed, change_at, None if online else name)
        model: DemandModel = registry if online else OracleModel(programs, seed=seed)
        chosen = make_policy(policy, model, n=old.rank_samples)
        calls = [s for r in runs[:1000] for st in r.stages for s in st.services_s]
        sim = Simulation(
            runs,
            dict(old.backends),
            chosen,
            observe=observe if online else None,
            min_quantum_s=1e-2 * float(np.mean(calls)),
        )
        sim.run()
        new_runs = [i for i, r in enumerate(runs) if i >= change_at and r.name.startswith(name)]
        start = new_runs[min(SETTLE_RUNS, len(new_runs) - 1)]
        means.append(float(np.mean([r.finish_s - r.arrival_s for r in runs[start:]])))
    graph = registry.get(name)
    return DriftResult(
        kind,
        seed,
        load,
        means[0],
        means[1],
        means[0] / means[1],
        errors,
        dict(graph.changes) if graph is not None else {},
    )


def drift_report(
    *,
    loads: tuple[float, ...] = (0.5,),
    seeds: tuple[int, ...] = (1, 2),
    n_apps: int = 3000,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every scenario x load x seed: rows and, per kind, the mean online / oracle ratio."""
    rows = []
    for kind in KINDS:
        for load in loads:
            for seed in seeds:
                result = run_drift(kind, load=load, seed=seed, n_apps=n_apps)
                rows.append(asdict(result))
                if progress is not None:
                    progress(f"drift {kind} load={load} seed={seed}: ratio {result.ratio:.3f}")
    summary = {
        kind: float(np.mean([r["ratio"] for r in rows if r["kind"] == kind])) for kind in KINDS
    }
    return {"rows": rows, "ratio_by_kind": summary, "settle_runs": SETTLE_RUNS}
