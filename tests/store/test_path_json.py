"""The fast path encoder writes exactly the text of the generic ``json.dumps(path_to_dict())``."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_sdk.graph.records import Call, RunPath, Stage, path_from_dict, path_to_dict
from hermes_sdk.store import path_json as path_json_module
from hermes_sdk.store.base import encode_path
from hermes_sdk.store.path_json import path_json
from tests.graph import generator as gen


def _reference(path: RunPath) -> str:
    return json.dumps(path_to_dict(path), separators=(",", ":"), allow_nan=False)


seconds = st.one_of(
    st.floats(min_value=0.0, max_value=7 * 24 * 3600.0, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 0.1, 1.0]),
)
tokens = st.one_of(st.none(), st.integers(min_value=0, max_value=10_000_000))
names = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=12).filter(
    lambda s: s not in ("START", "END")
)
calls = st.builds(
    Call,
    service_s=seconds,
    input_tokens=tokens,
    output_tokens=tokens,
    cold_start_s=st.one_of(st.none(), seconds),
    failed=st.booleans(),
)


@st.composite
def stages(draw: st.DrawFn) -> Stage:
    cs = tuple(draw(st.lists(calls, min_size=1, max_size=4)))
    latency = draw(st.one_of(st.none(), seconds, st.sampled_from([c.service_s for c in cs])))
    return Stage(
        draw(names),
        cs,
        draw(st.sampled_from(["llm", "tool", "retriever", "custom"])),
        draw(st.one_of(st.none(), names)),
        latency,
    )


paths = st.builds(
    RunPath,
    app=names,
    stages=st.lists(stages(), max_size=6).map(tuple),
    run_id=st.text(max_size=10),
    tenant=names,
    started_at=st.one_of(seconds, st.integers(min_value=0, max_value=2**40)),
    deadline_s=st.one_of(st.none(), seconds, st.integers(min_value=0, max_value=3600)),
    failed=st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(paths)
def test_fast_encoder_matches_json_dumps(path: RunPath) -> None:
    text = path_json(path)
    assert text == _reference(path)
    assert path_from_dict(json.loads(text)) == path


def test_generator_paths_encode_identically() -> None:
    rng = np.random.default_rng(7)
    for i in range(300):
        path = gen.make_path(rng, i)
        assert encode_path(path) == _reference(path)


def test_numpy_started_at_prints_as_a_plain_float() -> None:
    path = RunPath("a", (Stage("x", (Call(0.5),)),), started_at=np.float64(12.25))  # type: ignore[arg-type]
    assert path_json(path) == _reference(path)


def test_non_finite_numbers_are_refused_like_json() -> None:
    path = RunPath("a", (Stage("x", (Call(0.5),)),), started_at=1.0)
    object.__setattr__(path, "deadline_s", float("inf"))
    with pytest.raises(ValueError):
        _reference(path)
    with pytest.raises(ValueError):
        path_json(path)


def test_the_fast_route_knows_every_record_field() -> None:
    """A new field on Call/Stage/RunPath switches to the generic route until taught here."""
    assert path_json_module._FAST


@settings(max_examples=150, deadline=None)
@given(paths, seconds, st.booleans())
def test_pause_fields_encode_identically(path: RunPath, paused_s: float, abandoned: bool) -> None:
    if "paused_s" not in {f.name for f in fields(RunPath)}:
        pytest.skip("RunPath has no pause fields")
    changes = {"paused_s": paused_s, "abandoned": abandoned and path.failed}
    path = replace(path, **changes)  # type: ignore[arg-type]
    assert path_json(path) == _reference(path)


@settings(max_examples=300, deadline=None)
@given(st.lists(calls, min_size=1, max_size=3))
def test_stage_service_is_the_exact_sum_of_its_calls(cs: list[Call]) -> None:
    """The width-1 shortcut of Stage.service_s answers exactly what math.fsum does."""
    stage = Stage("x", tuple(cs))
    expected = math.fsum(c.service_s for c in cs)
    assert stage.service_s == expected
    assert math.copysign(1.0, stage.service_s) == math.copysign(1.0, expected)
