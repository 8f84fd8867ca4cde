"""`hermes bench`: run workload suites over policies x loads x seeds and report.

The grid runs every policy on the *same* workload document per (suite, load, seed), so the
simulator's common random numbers give every policy identical apps and arrivals. Results are
rows (one per simulation), a per-(suite, load, policy) summary averaged over seeds with ratios
to request-FCFS, floor checks against the issue's targets, a deadline-tightness sweep (EDF vs
LSTF), the PDGraph learning-quality report and PNG plots, all written to ``results.json``.

The implementation is split by responsibility: :mod:`~hermes_sdk.sim.bench_grid` (configuration,
jobs and running them) and :mod:`~hermes_sdk.sim.bench_report` (summaries, floor checks,
results.json and plots); this module re-exports their public names.
"""

from hermes_sdk.sim.bench_grid import (
    BASELINE,
    CDF_POINTS,
    DEADLINE_POLICIES,
    DEFAULT_POLICIES,
    BenchConfig,
    BenchResult,
    BenchRow,
    Job,
    JobOutcome,
    Step,
    grid_size,
    plan,
    run_bench,
    run_job,
    with_overrides,
)
from hermes_sdk.sim.bench_report import (
    FloorCheck,
    SummaryRow,
    check_floors,
    results_json,
    summarize,
    write_outputs,
)

__all__ = [
    "BASELINE",
    "CDF_POINTS",
    "DEADLINE_POLICIES",
    "DEFAULT_POLICIES",
    "BenchConfig",
    "BenchResult",
    "BenchRow",
    "FloorCheck",
    "Job",
    "JobOutcome",
    "Step",
    "SummaryRow",
    "check_floors",
    "grid_size",
    "plan",
    "results_json",
    "run_bench",
    "run_job",
    "summarize",
    "with_overrides",
    "write_outputs",
]
