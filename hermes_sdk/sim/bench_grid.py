"""`hermes bench` configuration and grid execution: what a run covers and how its jobs run.

:func:`plan` expands a :class:`BenchConfig` into jobs (policies x loads x seeds per suite, the
deadline-tightness sweep and the PDGraph learning runs), most expensive first; :func:`run_bench`
runs them in this process or a spawn pool and collects the rows, CDF samples and reports into a
:class:`BenchResult` in a deterministic order. Summaries, floors and results.json are in
:mod:`hermes_sdk.sim.bench_report`.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from typing import Final

import numpy as np

from hermes_sdk.sim.workloads import SUITES, Workload
from hermes_sdk.sim.workloads.learning import CHECKPOINTS, learning_report
from hermes_sdk.sim.workloads.spec import JsonValue

DEFAULT_POLICIES: Final = (
    "fcfs",
    "app_fcfs",
    "las",
    "gittins",
    "gittins_oracle",
    "gittins_blind",
    "srpt_oracle",
)
ORACLE_POLICIES: Final = {"gittins_oracle": "gittins"}
"""Bench-only policy names: the policy run on the workload with ``learning="oracle"`` (the
generator's true distributions instead of PDGraphs learned online: the non-clairvoyant limit)."""
"""``sjf_mean`` is not a default: it walks the graph per rank (no rank table) and cost 8,000 of the
grid's 12,500 CPU seconds while ranking within 0.5% of Gittins on every cell (docs/decisions.md)."""
DEADLINE_POLICIES: Final = ("edf", "lstf")
TIGHTNESS_POLICIES: Final = ("fcfs", "gittins", *DEADLINE_POLICIES)
"""The deadline-tightness sweep: FCFS, the default deadline mode (hit-reward Gittins), EDF, LSTF."""
BASELINE: Final = "fcfs"
CDF_POINTS: Final = 300
"""Completion times kept per (suite, load, policy) for the CDF plot (evenly spaced quantiles)."""


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What one `hermes bench` invocation runs."""

    suites: tuple[str, ...] = ("paper", "light")
    loads: tuple[float, ...] = (0.7, 0.85, 0.95)
    policies: tuple[str, ...] = DEFAULT_POLICIES
    seeds: int = 3
    """Seeds per (suite, load): the minimum for a paired 95% CI that says anything (t = 4.3)."""
    deadlines: bool = False
    n_apps: int = 13_200
    warmup_apps: int = 1_200
    """12000 measured apps per run: on the heavy-tailed suites 1200 are far from steady state
    (SRPT/FCFS 0.31-0.54 over three seeds at paper 0.85), 24000 vary by about 0.05."""
    tightness: tuple[float, ...] = (1.2, 1.5, 2.0, 3.0)
    """Deadline factors of the tightness sweep (empty = no sweep)."""
    tightness_load: float = 0.85
    tightness_seeds: int = 2
    learning: bool = True
    learning_checkpoints: tuple[int, ...] = CHECKPOINTS
    learning_held_out: int = 100
    drift_runs: int = 2000
    plots: bool = True
    jobs: int = 1
    """Worker processes (1 = run in this process)."""

    @staticmethod
    def quick() -> BenchConfig:
        """A < 1 minute smoke run of everything (small apps counts, one seed, one load)."""
        return BenchConfig(
            loads=(0.9,),
            seeds=1,
            n_apps=120,
            warmup_apps=20,
            tightness=(1.2,),
            tightness_seeds=1,
            learning_checkpoints=(5, 20),
            learning_held_out=8,
            drift_runs=40,
        )


@dataclass(frozen=True, slots=True)
class BenchRow:
    """One simulation: completion times in seconds over the apps after warm-up."""

    suite: str
    load: float
    policy: str
    seed: int
    n: int
    mean: float
    p50: float
    p95: float
    p99: float
    deadline_hit_rate: float | None
    utilization: float
    """Busy share of the LLM engine's slots."""
    cold_wait_s: float
    """Mean per app of the time its critical path waited for cold backends (prewarm metric)."""
    wall_s: float
    per_kind: Mapping[str, float] = field(default_factory=dict)
    """Mean completion time (s) of the measured apps of each app kind (program name)."""


@dataclass(slots=True)
class BenchResult:
    """Everything a bench run measured (the content of results.json, plus CDF samples)."""

    command: str
    config: BenchConfig
    rows: list[BenchRow] = field(default_factory=list)
    cdfs: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    tightness: list[dict[str, JsonValue]] = field(default_factory=list)
    learning: dict[str, JsonValue] = field(default_factory=dict)
    learning_sim: dict[str, JsonValue] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    """Wall-clock seconds of the whole grid (every job, all worker processes)."""


Step = Callable[[str], None]
"""Progress callback: called once per finished simulation with a description."""


def _workload(config: BenchConfig, suite: str, load: float, seed: int, **kw: object) -> Workload:
    factory = SUITES[suite]
    return factory(load=load, seed=seed, n_apps=config.n_apps, warmup_apps=config.warmup_apps, **kw)


@dataclass(frozen=True, slots=True)
class Job:
    """One unit of bench work, run in-process or in a worker process."""

    kind: str
    """"grid", "tightness", "learning" (PDGraph report) or "learning_sim"."""
    suite: str
    load: float
    seed: int = 1
    policy: str = ""
    factor: float = 0.0
    mode: str = "online"

    @property
    def label(self) -> str:
        """Progress-bar description."""
        if self.kind == "grid":
            return f"{self.suite} load {self.load:g} seed {self.seed} {self.policy}"
        if self.kind == "tightness":
            return f"{self.suite} deadlines x{self.factor:g} seed {self.seed} {self.policy}"
        if self.kind == "learning":
            return f"{self.suite} PDGraph learning report"
        return f"{self.suite} gittins while learning ({self.mode})"


_COST: Final = {
    "gittins": 10.0,
    "gittins_oracle": 10.0,
    "lstf": 10.0,
    "gittins_blind": 2.0,
    "sjf_mean": 2.0,
}


def plan(config: BenchConfig) -> list[Job]:
    """Every job of a bench run, most expensive first (balances a process pool)."""
    jobs: list[Job] = []
    for suite in config.suites:
        for load in config.loads:
            for seed in range(1, config.seeds + 1):
                jobs += [Job("grid", suite, load, seed, p) for p in _grid_policies(config)]
        for factor in config.tightness:
            for seed in range(1, config.tightness_seeds + 1):
                jobs += [
                    Job("tightness", suite, config.tightness_load, seed, p, factor)
                    for p in TIGHTNESS_POLICIES
                ]
        if config.learning:
            jobs.append(Job("learning", suite, config.loads[-1]))
            jobs += [
                Job("learning_sim", suite, config.loads[-1], 1, "gittins", mode=m)
                for m in ("online", "oracle")
            ]

    def cost(job: Job) -> float:
        if job.kind == "learning":
            return 8.0
        return _COST.get(job.policy, 1.0) * (2.0 if job.kind == "learning_sim" else 1.0)

    return sorted(jobs, key=cost, reverse=True)


def grid_size(config: BenchConfig) -> int:
    """Number of jobs :func:`run_bench` will run (for a progress bar)."""
    return len(plan(config))


def _grid_policies(config: BenchConfig) -> tuple[str, ...]:
    extra = tuple(p for p in DEADLINE_POLICIES if config.deadlines and p not in config.policies)
    return config.policies + extra


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What a job produced: a row and completion times (simulations) or a report."""

    job: Job
    row: BenchRow | None = None
    times: tuple[float, ...] = ()
    report: dict[str, JsonValue] | None = None


def run_job(config: BenchConfig, job: Job) -> JobOutcome:
    """Run one job (module-level so a process pool can pickle it)."""
    if job.kind == "learning":
        workload = _workload(config, job.suite, job.load, 1)
        report = learning_report(
            workload,
            checkpoints=config.learning_checkpoints,
            drift_runs=config.drift_runs,
            n_held_out=config.learning_held_out,
        )
        return JobOutcome(job, report=report)
    if job.kind == "learning_sim":
        workload = SUITES[job.suite](
            load=job.load, seed=1, n_apps=config.n_apps, warmup_apps=0, learning=job.mode
        )
    elif job.kind == "tightness":
        workload = _workload(
            config, job.suite, job.load, job.seed, deadlines=True, deadline_factors=(job.factor,)
        )
    elif job.policy in ORACLE_POLICIES:  # same apps and arrivals, the true distributions
        workload = _workload(
            config, job.suite, job.load, job.seed, deadlines=config.deadlines, learning="oracle"
        )
    else:
        workload = _workload(config, job.suite, job.load, job.seed, deadlines=config.deadlines)
    run_as = ORACLE_POLICIES.get(job.policy, job.policy)
    row, times = _simulate_row(workload, job.suite, job.load, run_as, job.seed)
    return JobOutcome(job, row=replace(row, policy=job.policy), times=tuple(times))


def _simulate_row(
    workload: Workload, suite: str, load: float, policy: str, seed: int
) -> tuple[BenchRow, list[float]]:
    from hermes_sdk.sim import simulate

    start = time.perf_counter()
    result = simulate(workload, policy, seed=seed)
    wall_s = time.perf_counter() - start
    hit = result.deadline_hit_rate
    util = result.backend_utilization.get("llm", result.utilization)
    row = BenchRow(
        suite=suite,
        load=load,
        policy=policy,
        seed=seed,
        n=int(result.n),
        mean=float(result.mean),
        p50=float(result.p50),
        p95=float(result.p95),
        p99=float(result.p99),
        deadline_hit_rate=None if hit is None else float(hit),
        utilization=float(util),
        cold_wait_s=float(result.cold_wait.app_mean_s),
        wall_s=wall_s,
        per_kind={name: float(a.mean) for name, a in sorted(result.per_app.items()) if a.n},
    )
    return row, [float(x) for x in result.completion_times]


def _quantile_points(times: Sequence[float], k: int = CDF_POINTS) -> list[float]:
    if len(times) <= k:
        return sorted(times)
    qs = np.quantile(np.asarray(times), np.linspace(0.0, 1.0, k))
    return [round(float(x), 4) for x in qs]


def run_bench(config: BenchConfig, command: str, *, step: Step | None = None) -> BenchResult:
    """Run every job of :func:`plan` (in a pool of ``config.jobs`` processes when > 1) and
    collect the results in a deterministic order."""
    tick = step or (lambda _desc: None)
    start = time.perf_counter()
    jobs = plan(config)
    outcomes: list[JobOutcome] = []
    if config.jobs <= 1:
        for job in jobs:
            outcomes.append(run_job(config, job))
            tick(job.label)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=config.jobs, mp_context=ctx) as pool:
            futures = [pool.submit(run_job, config, job) for job in jobs]
            for future in as_completed(futures):
                outcome = future.result()
                outcomes.append(outcome)
                tick(outcome.job.label)
    result = _collect(config, command, outcomes)
    result.wall_s = time.perf_counter() - start
    return result


def _collect(config: BenchConfig, command: str, outcomes: Sequence[JobOutcome]) -> BenchResult:
    out = BenchResult(command=command, config=config)
    order: dict[str, int] = {}
    for p in (*_grid_policies(config), "fcfs"):
        order.setdefault(p, len(order))

    def key(o: JobOutcome) -> tuple[str, float, int, float, int, str]:
        j = o.job
        return (j.suite, j.load, j.seed, j.factor, order.get(j.policy, 99), j.mode)

    for o in sorted(outcomes, key=key):
        j = o.job
        if j.kind == "grid" and o.row is not None:
            out.rows.append(o.row)
            if j.seed == 1:
                panel = out.cdfs.setdefault(f"{j.suite} @ {j.load:g}", {})
                panel[j.policy] = _quantile_points(o.times)
        elif j.kind == "tightness" and o.row is not None:
            out.tightness.append({"suite": j.suite, "factor": j.factor, **row_json(o.row)})
        elif j.kind == "learning" and o.report is not None:
            out.learning[j.suite] = o.report
        elif j.kind == "learning_sim" and o.row is not None:
            entry = out.learning_sim.setdefault(j.suite, {"load": j.load})
            assert isinstance(entry, dict)
            window = max(10, config.n_apps // 20)
            times = np.asarray(o.times, dtype=float)
            entry["window"] = window
            entry[f"{j.mode}_mean"] = round(o.row.mean, 4)
            if times.size >= window:
                rolling = np.convolve(times, np.ones(window) / window, mode="valid")
                idx = np.linspace(0, rolling.size - 1, min(60, rolling.size)).astype(int)
                entry[j.mode] = [[int(i + window), round(float(rolling[i]), 3)] for i in idx]
    return out


def row_json(row: BenchRow) -> dict[str, JsonValue]:
    """A row as JSON without its suite, floats rounded to 4 decimals."""
    d: dict[str, JsonValue] = {k: v for k, v in asdict(row).items() if k != "suite"}
    for key in ("mean", "p50", "p95", "p99", "utilization", "cold_wait_s", "wall_s"):
        value = d[key]
        assert isinstance(value, float)
        d[key] = round(value, 4)
    d["per_kind"] = {k: round(v, 4) for k, v in row.per_kind.items()}
    return d


def with_overrides(config: BenchConfig, **changes: object) -> BenchConfig:
    """``config`` with the given fields replaced (None values are ignored)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]
