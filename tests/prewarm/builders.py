"""Builders shared by the prewarm tests: simple apps as real PDGraphs."""

from __future__ import annotations

import numpy as np

from hermes_sdk.graph import PDGraph
from hermes_sdk.graph.records import Call, RunPath, Stage, UnitKind


def stage(node: str, latency_s: float, backend: str, kind: UnitKind = "llm") -> Stage:
    """One single-call stage."""
    return Stage(node, (Call(latency_s),), kind, backend)


def three_stage_path(
    rng: np.random.Generator, run_id: str, app: str = "coder", box_s: float = 2.0
) -> RunPath:
    """plan (llm) -> write (llm) -> test (cold 'box' container): the backend is always stage 3."""
    return RunPath(
        app,
        (
            stage("plan", float(rng.uniform(3.0, 6.0)), "llm"),
            stage("write", float(rng.uniform(5.0, 10.0)), "llm"),
            stage("test", box_s, "box", "container"),
        ),
        run_id=run_id,
    )


def learned(paths: list[RunPath]) -> PDGraph:
    """A PDGraph that observed ``paths``."""
    g = PDGraph(paths[0].app)
    for p in paths:
        g.observe(p)
    return g
