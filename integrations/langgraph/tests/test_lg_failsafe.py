"""The handler never raises into the graph: handler bugs and scheduler outages change nothing."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from hermes_langgraph import HermesCallbackHandler
from lg_apps import map_reduce_graph, react_graph, react_input, subgraph_graph

import hermes_sdk.instrument as hi
from hermes_sdk.errors import GraphError


def _outputs(handler: HermesCallbackHandler | None) -> list[Any]:
    cfg: Any = {"callbacks": [handler]} if handler is not None else {}
    react = react_graph().invoke(react_input(2, width=2), cfg)
    mapped = map_reduce_graph().invoke({"width": 3, "summaries": []}, cfg)
    nested = subgraph_graph().invoke({"question": "q", "drafts": 0, "answer": ""}, cfg)
    return [
        [(type(m).__name__, m.content) for m in react["messages"]],
        mapped["final"],
        nested,
    ]


def _boom(*args: object, **kwargs: object) -> Any:
    raise RuntimeError("injected handler bug")


@pytest.mark.parametrize("method", ["chain_start", "call_start", "end", "set_hint_token"])
def test_a_failing_handler_leaves_results_identical(
    method: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    expected = _outputs(None)
    handler = HermesCallbackHandler(app="buggy")
    monkeypatch.setattr(handler._tracker, method, _boom)
    with caplog.at_level(logging.DEBUG, logger="hermes_langgraph"):
        assert _outputs(handler) == expected
    assert handler.errors > 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # logged once, then at debug level


@pytest.mark.parametrize("method", ["chain_start", "_remember"])
def test_a_root_start_failure_does_not_turn_nodes_into_runs(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails before anything is recorded (chain_start) or after the run was opened (_remember)."""
    handler = HermesCallbackHandler(app="half")
    real = getattr(handler._tracker, method)
    calls = {"n": 0}

    def fail_first(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("root start failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(handler._tracker, method, fail_first)
    react_graph().invoke(react_input(1), {"callbacks": [handler]})
    assert handler.errors == 1
    assert list(handler.recent_paths) == []  # the invocation is skipped, not split up
    assert handler.open_runs == 0 and handler._tracker.open_entries == 0
    react_graph().invoke(react_input(1), {"callbacks": [handler]})  # next one is recorded
    assert [s.node for s in handler.recent_paths[-1].stages] == ["agent", "tools", "agent"]


def test_store_failure_is_swallowed_too() -> None:
    class BrokenStore:
        def append_path(self, path: object) -> None:
            raise OSError("disk full")

        def load_paths(self) -> Any:
            return iter(())

        def close(self) -> None:
            pass

    expected = _outputs(None)
    hi.configure(store=BrokenStore(), enabled=True)
    handler = HermesCallbackHandler(app="no-disk")
    assert _outputs(handler) == expected
    assert handler.open_runs == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_scheduler_outage_leaves_results_identical() -> None:
    expected = _outputs(None)
    hi.configure(scheduler_url=f"http://127.0.0.1:{_closed_port()}", enabled=True)
    handler = HermesCallbackHandler(app="offline")
    assert _outputs(handler) == expected
    assert handler.errors == 0 and len(handler.recent_paths) == 3
    hi.flush(timeout_s=5.0)
    stats = hi.stats()
    assert stats.send_errors > 0 and stats.events_sent == 0


def test_disabled_instrumentation_records_nothing() -> None:
    hi.configure(store="memory://", enabled=False)
    handler = HermesCallbackHandler(app="off")
    assert _outputs(handler) == _outputs(None)
    assert list(handler.recent_paths) == [] and handler.errors == 0


def test_invalid_settings_raise_at_construction_not_in_the_graph() -> None:
    with pytest.raises(GraphError):
        HermesCallbackHandler(app="")
    with pytest.raises(GraphError):
        HermesCallbackHandler(app="ok", deadline_s=-1.0)
