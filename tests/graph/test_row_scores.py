"""The row change detector's batch scores equal the scores of the departures one at a time,
recounted from the window itself (the formula of ``Stream.category``), whatever the window."""

from __future__ import annotations

import math
from collections import Counter, deque

from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_sdk.graph.cusum import CLIP
from hermes_sdk.graph.drift_batch import count_departures
from hermes_sdk.graph.row_scores import row_scores

NAMES = st.sampled_from(["a", "b", "c", "d", "end"])


def one_at_a_time(recent: list[str], targets: list[str], window: int) -> list[float]:
    """Each departure scored against a window recounted from scratch."""
    out = []
    seq = list(recent)
    for target in targets:
        seq.append(target)
        counts = Counter(seq[-window:])
        n = sum(counts.values()) - 1
        top = max(counts.values())
        mode = min(name for name, c in counts.items() if c == top)
        hit = target == mode
        p0 = (top - hit) / n
        p0 = min(max(p0, 0.5 / n), 1.0 - 0.5 / n)
        z = ((1.0 if hit else 0.0) - p0) / math.sqrt(p0 * (1.0 - p0))
        out.append(max(-CLIP, min(CLIP, z)))
    return out


@settings(max_examples=400, deadline=None)
@given(
    window=st.integers(2, 40),
    recent=st.lists(NAMES, min_size=1, max_size=40),
    targets=st.lists(NAMES, min_size=1, max_size=120),
)
def test_batch_scores_equal_one_at_a_time(
    window: int, recent: list[str], targets: list[str]
) -> None:
    recent = recent[-window:]  # a row's window never holds more
    row: deque[str] = deque(recent)
    counter = Counter(recent)
    assert row_scores(row, counter, targets, window) == one_at_a_time(recent, targets, window)
    assert list(row) == recent and counter == Counter(recent)  # read, not changed


def test_the_row_then_counts_as_the_scores_assumed() -> None:
    # scores of a batch, then the batch counted, then the next batch: as one longer batch
    recent, window = deque(["a", "b", "a"]), 4
    counter = Counter(recent)
    first, second = ["b", "b", "c"], ["a", "c", "c", "b"]
    both = row_scores(deque(recent), Counter(counter), first + second, window)
    head = row_scores(recent, counter, first, window)
    count_departures(counter, recent, first, window)
    assert head + row_scores(recent, counter, second, window) == both
    assert len(both) == 7 and all(-CLIP <= z <= CLIP for z in both)


@settings(max_examples=100, deadline=None)
@given(
    window=st.integers(2, 10),
    recent=st.lists(NAMES, min_size=11, max_size=30),
    targets=st.lists(NAMES, min_size=1, max_size=30),
)
def test_a_window_longer_than_the_rows_counts_only_its_last(
    window: int, recent: list[str], targets: list[str]
) -> None:
    got = row_scores(deque(recent), Counter(recent), targets, window)
    assert got == one_at_a_time(recent, targets, window)
