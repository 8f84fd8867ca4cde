"""The public read side of the instrumentation: ``hermes.stats()``, ``hermes.flush()``,
``hermes.graph(app)`` and ``hermes.registry()``, each over the active :class:`Runtime` (read
at every call: :func:`~hermes_sdk.instrument.runtime.configure` replaces it)."""

from __future__ import annotations

import importlib

from hermes_sdk.graph import GraphRegistry, PDGraph
from hermes_sdk.instrument import runtime as _rt
from hermes_sdk.instrument.instrument_stats import InstrumentStats


def stats() -> InstrumentStats:
    """Counters of the active configuration: runs recorded, events sent/dropped/lost."""
    return _rt.RUNTIME.stats()


def flush(timeout_s: float | None = None) -> bool:
    """Block until queued events reached the sink and completed runs were learned (stored).

    Returns ``False`` if that did not happen within ``timeout_s`` seconds (``None``: no limit).
    """
    runtime = _rt.RUNTIME
    learned = runtime.sync(timeout_s)
    rec = runtime.recorder
    return learned and (True if rec is None else rec.flush(timeout_s))


class GraphAccessor:
    """``hermes.graph``: call it for an app's learned PDGraph.

    ``hermes_sdk.graph`` is also the name of the graph package, and re-exporting a plain
    function under that name would hide the package from ``import hermes_sdk.graph as g``.
    This accessor is callable *and* forwards attribute access to the package, so both
    ``hermes.graph("doc-qa")`` and ``import hermes_sdk.graph.pdgraph`` keep working.
    """

    __slots__ = ()

    def __call__(self, app: str, *, tenant: str = "default") -> PDGraph:
        """The PDGraph learned for ``app`` in this process (created empty if it has no runs).

        Opens the configured store on first use (replaying its stored paths); raises
        :class:`~hermes_sdk.errors.StoreError` / :class:`ConfigError` if it is unusable.
        """
        _rt.RUNTIME.registry()  # opens the store (in a learner process: starts it) before waiting
        _rt.RUNTIME.sync()
        return _rt.RUNTIME.registry().graph(app, tenant)

    def __getattr__(self, name: str) -> object:
        return getattr(importlib.import_module("hermes_sdk.graph"), name)

    def __repr__(self) -> str:
        return "<hermes graph accessor: graph(app) -> PDGraph>"


graph = GraphAccessor()
"""``graph(app, *, tenant="default") -> PDGraph``: the graph learned for ``app`` so far."""


def registry() -> GraphRegistry:
    """The process-wide registry completed runs are folded into (synced, opened on first use)."""
    _rt.RUNTIME.registry()
    _rt.RUNTIME.sync()
    return _rt.RUNTIME.registry()
