"""PDGraph: the probabilistic demand graph of an app, learned online from completed runs."""

from hermes_sdk.graph.records import END, START, Call, RunPath, RunState, Stage, UnitKind

__all__ = ["END", "START", "Call", "RunPath", "RunState", "Stage", "UnitKind"]
