"""drift_batch's reference lookups and batch scores: the counts of ``bisect_left`` /
``bisect_right`` and the floats ``Stream.value`` gives one value at a time, exactly."""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right

import pytest

from hermes_sdk.graph import drift_batch
from hermes_sdk.graph.cusum import DriftSettings
from hermes_sdk.graph.drift import Stream


def _refs_and_values(kind: str, rng: random.Random) -> tuple[list[float], list[float]]:
    if kind == "continuous":
        ref = [rng.expovariate(50.0) for _ in range(997)]
        xs = [rng.expovariate(50.0) for _ in range(300)] + rng.sample(ref, 50)
    elif kind == "ties":  # few distinct values; some values the reference never saw
        ref = [float(rng.randint(40, 51)) for _ in range(1000)]
        xs = [float(rng.randint(37, 54)) for _ in range(350)]
    elif kind == "constant":
        ref, xs = [1.0] * 640, [1.0] * 300 + [2.0, 0.5, 1.0]
    else:  # "mixed": a few heavy ties among continuous values, signed zeros
        ref = [rng.random() for _ in range(500)] + [0.25] * 40 + [0.0] * 30 + [-0.0] * 3
        xs = [rng.choice((0.25, 0.0, -0.0, rng.random())) for _ in range(350)]
    rng.shuffle(xs)
    return sorted(ref), xs


KINDS = ("continuous", "ties", "constant", "mixed")


@pytest.mark.parametrize("kind", KINDS)
def test_counts_equal_bisect(kind: str) -> None:
    ref, xs = _refs_and_values(kind, random.Random(kind))
    lo, hi = drift_batch._counts(ref, xs)
    assert lo == [bisect_left(ref, x) for x in xs]
    assert hi == [bisect_right(ref, x) for x in xs]
    index = drift_batch._RefIndex(ref)  # one index, as fold_values keeps, answers the same
    assert drift_batch._counts(ref, xs, index) == (lo, hi)
    assert drift_batch._counts(ref, xs[::-1], index) == (lo[::-1], hi[::-1])


class _Recorder(Stream):
    """A stream that records each score ``Stream.value`` computes (and folds none)."""

    def __init__(self, ref: list[float]) -> None:
        super().__init__(DriftSettings(), h=5.0, floor=0.0)
        self.scores: list[float] = []
        self._seen = len(ref)
        self._freeze(ref, 10_000)  # next re-freeze after 2 * len(ref): none here
        self._weyl = 0.123

    def _fold(self, z: float, time_s: float, refine: bool = True) -> tuple[int, float] | None:
        self.scores.append(z)
        return None


@pytest.mark.parametrize("kind", KINDS)
def test_batch_scores_are_the_one_by_one_floats(kind: str) -> None:
    ref, xs = _refs_and_values(kind, random.Random(kind))
    one, batch = _Recorder(ref), _Recorder(ref)
    zs, weyls = drift_batch._value_scores(batch, xs)
    phases = []
    for x in xs:
        one.value(x, 1.0, (), 10_000)
        phases.append(one._weyl)
    assert [z.hex() for z in zs] == [z.hex() for z in one.scores]
    assert [w.hex() for w in weyls] == [w.hex() for w in phases]
    assert len(set(zs)) > 10  # scores spread (ties broken by the Weyl phase)
