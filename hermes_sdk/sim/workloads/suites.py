"""Assemble the paper and light suites into complete workload documents for a target load.

A suite fixes the apps, the mix, the backends and the arrival shape; ``load`` sets the arrival
rate so the LLM engine (the bottleneck every app shares) is busy that fraction of the time on
average (rate = load x slots / mean LLM service seconds per app, the mean measured by sampling
standalone runs once per suite and cached). The pools (search, containers, DNN servers) are sized
so they stay below ~40% busy even at load 0.95: the contention this suite studies is the engine.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Final, Literal, cast

from hermes_sdk.sim.workloads.light import light_apps
from hermes_sdk.sim.workloads.paper import paper_apps
from hermes_sdk.sim.workloads.paths import DemandSummary, demand_summary, rate_for_load
from hermes_sdk.sim.workloads.spec import (
    JsonObject,
    JsonValue,
    Workload,
    deadline_law,
    llm_backend,
    poisson_arrival,
    pool_backend,
    trace_arrival,
)

Arrival = Literal["trace", "poisson"]
Learning = Literal["online", "oracle"]

PAPER_SLOTS: Final = 16
"""Paper suite engine batch capacity (concurrent sequences), as in the issue's measurements."""
LIGHT_SLOTS: Final = 4
"""Light suite engine batch capacity: a smaller engine, so the light mix still queues."""
DEADLINE_FRACTION: Final = 0.22
"""Share of runs with a deadline (the paper: 20-25%)."""
DEADLINE_FACTORS: Final[tuple[float, ...]] = (1.2, 1.5, 2.0)
"""Deadline = factor x standalone time, factor drawn from these (the paper's 1.2x/1.5x/2x)."""


def paper_suite(
    load: float = 0.85,
    seed: int = 1,
    *,
    deadlines: bool = False,
    n_apps: int = 3000,
    warmup_apps: int = 500,
    arrival: Arrival = "trace",
    learning: Learning = "online",
    deadline_factors: Sequence[float] = DEADLINE_FACTORS,
    deadline_fraction: float = DEADLINE_FRACTION,
    chat_weight: float = 0.0,
) -> Workload:
    """The paper's heavy-tailed mix on one 16-slot engine with bursty (trace) arrivals.

    ``load`` is the mean utilisation of the engine (0 < load < 1); ``deadlines`` gives
    ``deadline_fraction`` of every app's runs a deadline of a factor from ``deadline_factors``
    times their standalone time; ``chat_weight`` > 0 adds multi-turn chat to the mix.
    """
    apps = paper_apps(chat_weight=chat_weight)
    backends: JsonObject = {
        "llm": llm_backend(PAPER_SLOTS),
        "search": pool_backend(2),
        "container": pool_backend(4, cold_start_s=2.0, keep_alive_s=60.0),
        "dnn": pool_backend(2, cold_start_s=5.0, keep_alive_s=120.0),
    }
    return _assemble(
        apps,
        backends,
        load,
        seed,
        deadlines,
        n_apps,
        warmup_apps,
        arrival,
        learning,
        deadline_factors,
        deadline_fraction,
    )


def light_suite(
    load: float = 0.85,
    seed: int = 1,
    *,
    deadlines: bool = False,
    n_apps: int = 3000,
    warmup_apps: int = 500,
    arrival: Arrival = "poisson",
    learning: Learning = "online",
    deadline_factors: Sequence[float] = DEADLINE_FACTORS,
    deadline_fraction: float = DEADLINE_FRACTION,
    chat_weight: float = 5.0,
) -> Workload:
    """The light-tailed mix (no app above ~3x the mean) on one 4-slot engine, Poisson arrivals
    by default; arguments as in :func:`paper_suite`."""
    apps = light_apps(chat_weight=chat_weight)
    backends: JsonObject = {
        "llm": llm_backend(LIGHT_SLOTS),
        "search": pool_backend(2),
        "container": pool_backend(2, cold_start_s=2.0, keep_alive_s=60.0),
        "dnn": pool_backend(2, cold_start_s=5.0, keep_alive_s=120.0),
    }
    return _assemble(
        apps,
        backends,
        load,
        seed,
        deadlines,
        n_apps,
        warmup_apps,
        arrival,
        learning,
        deadline_factors,
        deadline_fraction,
    )


SuiteFactory = Callable[..., Workload]
SUITES: Final[dict[str, SuiteFactory]] = {"paper": paper_suite, "light": light_suite}
"""Suite name -> factory ``(load, seed, *, deadlines=..., n_apps=..., ...) -> Workload``."""


def _assemble(
    apps: list[JsonObject],
    backends: JsonObject,
    load: float,
    seed: int,
    deadlines: bool,
    n_apps: int,
    warmup_apps: int,
    arrival: Arrival,
    learning: Learning,
    deadline_factors: Sequence[float],
    deadline_fraction: float,
) -> Workload:
    if not 0.0 < load < 1.0:
        raise ValueError(f"load must be in (0, 1), got {load}")
    if not 0 <= warmup_apps < n_apps:
        raise ValueError(f"need 0 <= warmup_apps < n_apps, got {warmup_apps}, {n_apps}")
    skeleton: Workload = {"apps": list[JsonValue](apps), "backends": backends}
    rate = rate_for_load(skeleton, load, summary=_cached_summary(json.dumps(skeleton)))
    if deadlines:
        for a in apps:
            a["deadline"] = deadline_law(deadline_fraction, deadline_factors)
    return {
        "seed": seed,
        "n_apps": n_apps,
        "warmup_apps": warmup_apps,
        "arrival": trace_arrival(rate) if arrival == "trace" else poisson_arrival(rate),
        "backends": backends,
        "learning": learning,
        "apps": list[JsonValue](apps),
    }


@functools.lru_cache(maxsize=32)
def _cached_summary(skeleton_json: str) -> DemandSummary:
    skeleton: Workload = json.loads(skeleton_json)
    return demand_summary(skeleton, n_per_app=1000, seed=0)


def suite_summary(workload: Workload) -> DemandSummary:
    """Mean demand of a suite's workload (cached per app mix and backends)."""
    apps = [
        {k: v for k, v in a.items() if k != "deadline"}
        for a in cast(list[JsonObject], workload["apps"])
    ]
    skeleton: Workload = {"apps": list[JsonValue](apps), "backends": workload["backends"]}
    return _cached_summary(json.dumps(skeleton))


def with_slo_deadlines(
    workload: Workload, factors: Sequence[float], fraction: float = DEADLINE_FRACTION
) -> Workload:
    """``workload`` with SLO deadlines: a ``fraction`` of every app kind's runs get the deadline
    ``factor x`` the kind's mean standalone time (:func:`suite_summary`), one number per kind
    known before the run (unlike the per-run law, blind to how big the run turns out)."""
    standalone = suite_summary(workload).per_app_standalone_s
    apps: list[JsonValue] = []
    for a in cast(list[JsonObject], workload["apps"]):
        base = round(standalone[str(a["name"])], 6)
        apps.append({**a, "deadline": deadline_law(fraction, factors, base)})
    return {**workload, "apps": apps}
