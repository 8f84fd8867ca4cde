"""The items of a ``heapq`` list in ascending order, lazily, without popping or copying it.

A frontier of candidate positions (a small heap of its own) holds the children of every item
already yielded: taking the ``k`` smallest of ``n`` costs O(k log k), not the O(n) of
``heapq.nsmallest`` over the whole list. The admission queue's backfill asks for the next few
waiters behind the best at every budget dispatch, with thousands waiting.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T", bound=tuple[Any, ...])


def ascending(heap: list[T]) -> Iterator[T]:
    """``heap``'s items smallest first (ties as ``sorted`` would order equal tuples: any);
    ``heap`` must satisfy the heap invariant and must not change while this is iterated."""
    if not heap:
        return
    n = len(heap)
    frontier: list[tuple[T, int]] = [(heap[0], 0)]
    while frontier:
        item, i = heapq.heappop(frontier)
        yield item
        child = 2 * i + 1
        if child < n:
            heapq.heappush(frontier, (heap[child], child))
            if child + 1 < n:
                heapq.heappush(frontier, (heap[child + 1], child + 1))
