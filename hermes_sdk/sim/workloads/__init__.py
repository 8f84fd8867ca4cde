"""Workload suites for the simulator: the paper's heavy-tailed app mix and a light-tailed one.

``paper_suite(load=0.85, seed=1, deadlines=False)`` and ``light_suite(...)`` return workload
documents for :func:`hermes_sdk.sim.simulate`; ``sample_path`` draws standalone runs of their apps.
"""

from hermes_sdk.sim.workloads.paths import DemandSummary, demand_summary, sample_path
from hermes_sdk.sim.workloads.spec import Workload
from hermes_sdk.sim.workloads.suites import SUITES, light_suite, paper_suite, suite_summary

__all__ = [
    "SUITES",
    "DemandSummary",
    "Workload",
    "demand_summary",
    "light_suite",
    "paper_suite",
    "sample_path",
    "suite_summary",
]
