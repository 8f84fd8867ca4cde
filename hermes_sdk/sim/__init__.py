"""Simulation: discrete-event simulator, workloads and a simulated OpenAI-compatible engine.

``simulate(workload, policy)`` runs one policy over a workload (a dict in the workload-file
format, see ``workload.schema.json``) and returns a :class:`SimResult`.
"""

from hermes_sdk.sim.oracle import OracleModel
from hermes_sdk.sim.result import AppStats, ColdWaitStats, LittleCheck, SimResult
from hermes_sdk.sim.run import simulate
from hermes_sdk.sim.workload import Workload, load_workload, parse_workload, workload_schema

__all__ = [
    "AppStats",
    "ColdWaitStats",
    "LittleCheck",
    "OracleModel",
    "SimResult",
    "Workload",
    "load_workload",
    "parse_workload",
    "simulate",
    "workload_schema",
]
