"""Sample completed runs (``RunPath``) straight from a workload's app programs.

The simulator interprets workloads with queueing; this module interprets the same app programs
without any queueing, which is what the suites need to calibrate arrival rates to a target load
(mean demand per backend), what tests need to check that every generator yields valid paths, and
what the learning-quality report feeds to a PDGraph. Semantics: a unit's call count is its
``fanout`` draw; an LLM call takes ``overhead_s + prefill_s_per_token * input + decode_s_per_token
* output`` seconds (its backend's ``time_model``), its input growing by ``prompt_growth_tokens``
per earlier visit; the next unit is drawn from ``next`` or ``by_visit[visit - 1]`` (last repeats).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from hermes_sdk.graph.records import END, Call, RunPath, Stage, UnitKind
from hermes_sdk.sim.workloads.spec import JsonObject, JsonValue, Workload

MAX_PATH_STAGES = 512
"""Safety bound on a sampled path's length (every suite's loops are bounded far below this)."""


def sample_value(dist: Mapping[str, JsonValue], rng: np.random.Generator) -> float:
    """One draw from a workload distribution object (``{"dist": name, ...}``)."""
    kind = dist["dist"]
    if kind == "deterministic":
        return _num(dist["value"])
    if kind == "exponential":
        return float(rng.exponential(_num(dist["mean"])))
    if kind == "uniform":
        return float(rng.uniform(_num(dist["low"]), _num(dist["high"])))
    if kind == "lognormal":
        mean, cv = _num(dist["mean"]), _num(dist["cv"])
        sigma2 = math.log1p(cv * cv)
        return float(rng.lognormal(math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)))
    if kind == "bounded_pareto":
        alpha, low, high = _num(dist["alpha"]), _num(dist["low"]), _num(dist["high"])
        u = float(rng.random())
        ratio = (low / high) ** alpha
        return float(low / (1.0 - u * (1.0 - ratio)) ** (1.0 / alpha))
    if kind == "two_point":
        values = [_num(v) for v in cast(list[JsonValue], dist["values"])]
        probs = [_num(p) for p in cast(list[JsonValue], dist["probs"])]
        return values[int(rng.choice(len(values), p=probs))]
    if kind == "empirical":
        samples = cast(list[JsonValue], dist["samples"])
        return _num(samples[int(rng.integers(len(samples)))])
    raise ValueError(f"unknown dist {kind!r}")


def _num(value: JsonValue) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _pick_next(unit: JsonObject, visit: int, rng: np.random.Generator) -> str:
    if "next" in unit:
        edges = cast(list[JsonObject], unit["next"])
    else:
        table = cast(list[list[JsonObject]], unit["by_visit"])
        edges = table[min(visit, len(table)) - 1]
    probs = np.array([_num(e["p"]) for e in edges])
    k = int(rng.choice(len(edges), p=probs / probs.sum()))
    return str(edges[k]["to"])


def sample_path(
    workload: Workload, app_name: str, rng: np.random.Generator, *, run_id: str = ""
) -> RunPath:
    """One run of ``app_name`` from START to END, with no queueing (standalone)."""
    apps = {str(a["name"]): a for a in cast(list[JsonObject], workload["apps"])}
    app = apps[app_name]
    units = cast(dict[str, JsonObject], app["units"])
    backends = cast(dict[str, JsonObject], workload["backends"])
    visits: dict[str, int] = {}
    stages: list[Stage] = []
    node = str(app["start"])
    while node != END:
        if len(stages) >= MAX_PATH_STAGES:
            raise ValueError(f"app {app_name!r} path exceeds {MAX_PATH_STAGES} stages")
        unit = units[node]
        visits[node] = visits.get(node, 0) + 1
        width = max(1, round(sample_value(cast(JsonObject, unit["fanout"]), rng)))
        backend = str(unit["backend"])
        calls = tuple(_call(unit, backends[backend], visits[node], rng) for _ in range(width))
        stages.append(Stage(node, calls, kind=cast(UnitKind, unit["kind"]), backend=backend))
        node = _pick_next(unit, visits[node], rng)
    return RunPath(app=app_name, stages=tuple(stages), run_id=run_id)


def _call(unit: JsonObject, backend: JsonObject, visit: int, rng: np.random.Generator) -> Call:
    if "service" in unit:
        return Call(service_s=sample_value(cast(JsonObject, unit["service"]), rng))
    growth = int(_num(unit.get("prompt_growth_tokens", 0)))
    input_tokens = round(sample_value(cast(JsonObject, unit["input_tokens"]), rng))
    input_tokens += growth * (visit - 1)
    output_tokens = max(1, round(sample_value(cast(JsonObject, unit["output_tokens"]), rng)))
    model = cast(JsonObject, backend["time_model"])
    service_s = (
        _num(model.get("overhead_s", 0.0))
        + _num(model["prefill_s_per_token"]) * input_tokens
        + _num(model["decode_s_per_token"]) * output_tokens
    )
    return Call(service_s=service_s, input_tokens=input_tokens, output_tokens=output_tokens)


@dataclass(frozen=True, slots=True)
class DemandSummary:
    """Per-app-arrival demand of a mix, estimated by sampling standalone runs."""

    service_s: Mapping[str, float]
    """Mean service seconds one app arrival puts on each backend."""
    per_app_service_s: Mapping[str, float]
    """Mean total service seconds of one run of each app."""
    per_app_standalone_s: Mapping[str, float]
    """Mean standalone time (sum of stage latencies) of one run of each app, seconds."""


def demand_summary(workload: Workload, *, n_per_app: int = 2000, seed: int = 0) -> DemandSummary:
    """Mean demand per backend per arrival (weighted by the mix), and per-app means."""
    rng = np.random.default_rng(seed)
    apps = cast(list[JsonObject], workload["apps"])
    total_weight = math.fsum(_num(a["weight"]) for a in apps)
    per_backend: dict[str, float] = {b: 0.0 for b in cast(JsonObject, workload["backends"])}
    per_app_service: dict[str, float] = {}
    per_app_standalone: dict[str, float] = {}
    for a in apps:
        name = str(a["name"])
        share = _num(a["weight"]) / total_weight
        sums: dict[str, float] = {}
        service = standalone = 0.0
        for _ in range(n_per_app):
            path = sample_path(workload, name, rng)
            for s in path.stages:
                key = s.backend or ""
                sums[key] = sums.get(key, 0.0) + s.service_s
                service += s.service_s
                standalone += s.latency_s or 0.0
        for key, total in sums.items():
            per_backend[key] += share * total / n_per_app
        per_app_service[name] = service / n_per_app
        per_app_standalone[name] = standalone / n_per_app
    return DemandSummary(per_backend, per_app_service, per_app_standalone)


def rate_for_load(
    workload: Workload, load: float, *, backend: str = "llm", summary: DemandSummary | None = None
) -> float:
    """Apps per second that keep ``backend`` busy a ``load`` fraction of its capacity."""
    summary = summary or demand_summary(workload)
    servers = _num(cast(JsonObject, cast(JsonObject, workload["backends"])[backend])["servers"])
    return load * servers / summary.service_s[backend]


def app_names(workload: Workload) -> Sequence[str]:
    """Names of the workload's apps in mix order."""
    return [str(a["name"]) for a in cast(list[JsonObject], workload["apps"])]
