"""PDGraph: the probabilistic demand graph of an app, learned online from completed runs."""

from hermes_sdk.graph.export import graph_schema, validate_graph_json
from hermes_sdk.graph.pdgraph import NodeStats, PDGraph
from hermes_sdk.graph.records import END, START, Call, RunPath, RunState, Stage, UnitKind
from hermes_sdk.graph.registry import GraphRegistry
from hermes_sdk.graph.sketch import SortedSamples

__all__ = [
    "END",
    "START",
    "Call",
    "GraphRegistry",
    "NodeStats",
    "PDGraph",
    "RunPath",
    "RunState",
    "SortedSamples",
    "Stage",
    "UnitKind",
    "graph_schema",
    "validate_graph_json",
]
