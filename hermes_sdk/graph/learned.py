"""What the graph's readers see of a learned graph: node state and the :class:`LearnedGraph` shape.

:class:`~hermes_sdk.graph.pdgraph.PDGraph` owns learning; the compiler
(:mod:`hermes_sdk.graph.montecarlo`), the JSON form (:mod:`hermes_sdk.graph.export`) and the rank
tables (:mod:`hermes_sdk.graph.rank_tables`) read it through :class:`LearnedGraph`, so imports run
one way: ``learned <- montecarlo, export <- pdgraph``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Protocol

from hermes_sdk.graph.records import UnitKind
from hermes_sdk.graph.sketch import Sketch
from hermes_sdk.graph.token_model import TokenModel


class NodeState:
    """Mutable learned state of one node (owned by its PDGraph)."""

    __slots__ = (
        "backend",
        "calls",
        "cold_start_s",
        "count",
        "input_tokens",
        "kind",
        "output_tokens",
        "service_s",
        "stage_latency_s",
        "stage_service_s",
        "width",
    )

    SKETCHES = (
        "service_s",
        "stage_service_s",
        "input_tokens",
        "output_tokens",
        "width",
        "cold_start_s",
    )

    def __init__(self, kind: UnitKind, backend: str | None, window: int, half_life_s: float | None):
        self.kind: UnitKind = kind
        self.backend = backend
        self.count = 0
        self.calls = 0
        self.service_s = Sketch(window, half_life_s)
        self.stage_service_s = Sketch(window, half_life_s)
        # wall-clock seconds per stage (not in SKETCHES: not exported, rebuilt by replaying paths)
        self.stage_latency_s = Sketch(window, half_life_s)
        self.input_tokens = Sketch(window, half_life_s)
        self.output_tokens = Sketch(window, half_life_s)
        self.width = Sketch(window, half_life_s)
        self.cold_start_s = Sketch(window, half_life_s)

    def sketch(self, name: str) -> Sketch:
        """The sketch called ``name`` (one of :attr:`SKETCHES`)."""
        sk: Sketch = getattr(self, name)
        return sk


class LearnedGraph(Protocol):
    """The learned state of one app's graph, as its compiler, exporter and rank tables read it."""

    app: str
    window: int
    half_life_s: float | None
    max_visit: int
    runs: int
    failed_runs: int
    version: int
    nodes: dict[str, NodeState]
    transitions: dict[tuple[str, int], Counter[str]]
    token_models: dict[str, TokenModel]
    run_service_s: Sketch
    changes: Counter[str]
    changed_at: dict[str, float]

    def transition_counts(self, node: str, visit: int) -> Counter[str]:
        """Counts of the next node after the ``visit``-th entry of ``node`` (with fallbacks)."""
        ...

    def transition_windows(self) -> dict[tuple[str, int], list[str]]:
        """Per (node, visit): the targets of its last ``window`` departures, oldest first."""
        ...

    def _load_transitions(
        self, source: str, visit: int, counts: Mapping[str, int], order: list[str] | None
    ) -> None: ...


class GraphFactory(Protocol):
    """Builds an empty graph (the constructor of :class:`~hermes_sdk.graph.pdgraph.PDGraph`)."""

    def __call__(
        self, app: str, *, window: int, half_life_s: float | None, max_visit: int
    ) -> LearnedGraph: ...
