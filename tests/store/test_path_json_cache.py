"""path_json's cache of call seconds' text: the same text as json.dumps whether values repeat
(cache hits), are all distinct (the cache turns itself off, then on again) or are signed zeros."""

from __future__ import annotations

import json
import random

import pytest

from hermes_sdk.graph.records import Call, RunPath, Stage, path_to_dict
from hermes_sdk.store import path_json as module
from hermes_sdk.store.path_json import path_json


def _reference(path: RunPath) -> str:
    return json.dumps(path_to_dict(path), separators=(",", ":"), allow_nan=False)


def _run(values: list[float], r: int) -> RunPath:
    stages = tuple(
        Stage("act", (Call(x, 3, 4),), "tool", None, x if i % 2 else None)
        for i, x in enumerate(values)
    )
    return RunPath("a", stages, run_id=f"r{r}", started_at=float(r))


@pytest.fixture
def small_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "_REPRS_MAX", 16)
    monkeypatch.setattr(module, "_REPRS_OFF", 64)
    monkeypatch.setattr(module, "_repr_tally", [0, 0, 0])
    monkeypatch.setattr(module, "_reprs", {})


@pytest.mark.usefixtures("small_cache")
def test_repeated_distinct_and_zero_seconds_encode_like_json() -> None:
    rng = random.Random(5)
    pool = [n / 1e9 for n in range(400, 420)] + [0.0, -0.0, 5e-324, 604800.0]
    offs = []
    for r in range(300):
        if r < 100 or r >= 200:  # repeated values: the cache serves them
            values = [rng.choice(pool) for _ in range(rng.randint(1, 9))]
        else:  # all distinct: the cache mostly misses and turns off
            values = [rng.uniform(0.0, 9.0) for _ in range(rng.randint(1, 9))]
        path = _run(values, r)
        assert path_json(path) == _reference(path)
        offs.append(module._repr_tally[2] > module._repr_tally[0])
        assert 0.0 not in module._reprs  # (nor -0.0: the same key)
    assert any(offs[100:200]) and not all(offs[100:200])  # off, then tried again
    assert not offs[0] and len(module._reprs) > 0


def test_non_finite_seconds_still_refused() -> None:
    for bad in (float("nan"), float("inf")):
        path = _run([1e-6], 0)
        object.__setattr__(path.stages[0].calls[0], "service_s", bad)
        with pytest.raises(ValueError):
            path_json(path)
