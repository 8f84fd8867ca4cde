"""Input checks of the PDGraph: everything observe() and remaining_demand() rely on.

``observe`` runs :func:`check_path` before it changes anything, so a rejected path leaves the
learned state untouched. Limits are module constants so deployments (and tests) can tune them.
"""

from __future__ import annotations

import math

from hermes_sdk.errors import GraphError
from hermes_sdk.graph.records import END, START, RunPath, RunState, Stage

MAX_NODES = 10_000
"""Most distinct nodes one app graph accepts (protects memory against runaway names)."""
MAX_PATH_STAGES = 10_000
"""Most stages one observed path may have."""
MAX_PATH_CALLS = 1_000_000
"""Most calls (summed over stages) one observed path may have."""


def check_path(path: object, app: str, known: set[str]) -> RunPath:
    """Validate everything observe() relies on, before any state changes."""
    if not isinstance(path, RunPath):
        raise GraphError(f"observe() needs a RunPath, got {type(path).__name__}")
    if path.app != app:
        raise GraphError(f"path of app {path.app!r} observed by the graph of app {app!r}")
    if len(path.stages) > MAX_PATH_STAGES:
        raise GraphError(f"path has {len(path.stages)} stages, more than {MAX_PATH_STAGES}")
    if not math.isfinite(path.started_at):
        raise GraphError("path.started_at must be finite")
    calls = sum([len(stage.calls) for stage in path.stages])
    if calls > MAX_PATH_CALLS:
        raise GraphError(f"path has {calls} calls in total, more than {MAX_PATH_CALLS}")
    new_nodes: set[str] = set()
    for i, stage in enumerate(path.stages):
        if not isinstance(stage, Stage) or not stage.calls:
            raise GraphError(f"stages[{i}] is not a Stage with calls")
        node = stage.node
        if node in (START, END) or not node:
            raise GraphError(f"stages[{i}] uses the reserved or empty node name {node!r}")
        for call in stage.calls:  # finite and >= 0 (NaN and infinities fail the comparison)
            v = call.service_s
            if not 0.0 <= v < math.inf:
                raise GraphError(f"stages[{i}] ({node!r}) has service_s={v!r}")
            cold = call.cold_start_s
            if cold is not None and not 0.0 <= cold < math.inf:
                raise GraphError(f"stages[{i}] ({node!r}) has cold_start_s={cold!r}")
        if node not in known:
            new_nodes.add(node)
    if len(known) + len(new_nodes) > MAX_NODES:
        raise GraphError(f"graph of app {app!r} would exceed {MAX_NODES} nodes")
    return path


def check_state(state: RunState) -> None:
    """Reject states whose counters would index outside the learned tables."""
    for item in state.visits:
        if (
            not isinstance(item, tuple)
            or len(item) != 2
            or not isinstance(item[1], int)
            or isinstance(item[1], bool)
            or item[1] < 0
        ):
            raise GraphError(f"state.visits must be (node, count >= 0) pairs, got {item!r}")
    for what in ("input_tokens", "width"):
        value = getattr(state, what)
        if value is not None and (not isinstance(value, int) or value < 0):
            raise GraphError(f"state.{what} must be an int >= 0 or None, got {value!r}")
