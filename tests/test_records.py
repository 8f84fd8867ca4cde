"""Run records validate their input and round-trip through their dict form."""

from __future__ import annotations

import math

import pytest

import hermes_sdk as hermes
from hermes_sdk.graph.records import path_from_dict, path_to_dict


def _path() -> hermes.RunPath:
    return hermes.RunPath(
        app="doc-qa",
        run_id="r1",
        stages=(
            hermes.Stage("plan", (hermes.Call(0.5, input_tokens=100, output_tokens=20),), "llm"),
            hermes.Stage("search", (hermes.Call(1.0), hermes.Call(2.0)), "tool", backend="web"),
        ),
    )


def test_stage_sums_service_and_takes_max_latency() -> None:
    stage = _path().stages[1]
    assert stage.width == 2
    assert stage.service_s == 3.0
    assert stage.latency_s == 2.0


def test_round_trip_dict() -> None:
    path = _path()
    assert path_from_dict(path_to_dict(path)) == path


@pytest.mark.parametrize(
    "bad",
    [-1.0, math.nan, math.inf, "1", True, 1e12],
)
def test_bad_seconds_raise_graph_error(bad: object) -> None:
    with pytest.raises(hermes.GraphError):
        hermes.Call(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a\x00b", "x" * 300, 7])
def test_bad_names_raise(name: object) -> None:
    with pytest.raises(ValueError, match="node"):
        hermes.Stage(name, (hermes.Call(1.0),))  # type: ignore[arg-type]


def test_reserved_and_empty_stage() -> None:
    with pytest.raises(hermes.GraphError):
        hermes.Stage("END", (hermes.Call(1.0),))
    with pytest.raises(hermes.GraphError, match="at least one call"):
        hermes.Stage("a", ())


def test_path_from_dict_names_the_field() -> None:
    with pytest.raises(hermes.GraphError, match="stages"):
        path_from_dict({"app": "a", "stages": "nope"})
    with pytest.raises(hermes.GraphError, match="input_tokens"):
        path_from_dict(
            {"app": "a", "stages": [{"node": "n", "calls": [{"service_s": 1, "input_tokens": -3}]}]}
        )


def test_state_after_counts_visits() -> None:
    s = hermes.RunState.after([*_path().stages, _path().stages[0]])
    assert s.node == "plan"
    assert s.visit_count("plan") == 2
    assert s.visit_count("search") == 1
    assert s.visit_count("other") == 0
