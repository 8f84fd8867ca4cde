"""A branching app with a loop whose behaviour changes at a chosen run (the drift tests' truth).

START -> plan (llm) -> (search x width w.p. p_search | lookup) -> refine^L (llm) -> END, with the
loop length L drawn from ``loop_law``. Every parameter of :class:`Behaviour` can change at once at
run ``change_at``; :func:`exact_mean_s` is the mean total service of one run of a behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from hermes_sdk import Call, RunPath, Stage

APP = "drift"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One behaviour of the app (seconds are means of exponential / uniform laws)."""

    p_search: float = 0.7
    width: tuple[int, ...] = (2, 3, 4)
    plan_s: float = 1.0
    search_s: float = 1.0  # uniform(0.5, 1.5) x search_s
    lookup_s: float = 0.3
    refine_s: float = 0.5  # gamma(2, refine_s / 2)
    loop_law: tuple[tuple[int, float], ...] = ((1, 0.1), (2, 0.4), (3, 0.2), (4, 0.2), (5, 0.1))


BASE = Behaviour()
CHANGES: dict[str, Behaviour] = {
    "service_2x": replace(BASE, plan_s=2.0, refine_s=1.0),
    "branch_0.3": replace(BASE, p_search=0.4),
    "loop_law": replace(BASE, loop_law=((4, 0.5), (6, 0.5))),
    "fanout": replace(BASE, width=(6, 7, 8)),
}


def exact_mean_s(b: Behaviour) -> float:
    """E[total service seconds] of one run of ``b``."""
    loops = sum(k * p for k, p in b.loop_law)
    width = sum(b.width) / len(b.width)
    return (
        b.plan_s
        + b.p_search * width * b.search_s
        + (1 - b.p_search) * b.lookup_s
        + (loops * b.refine_s)
    )


def make_path(b: Behaviour, rng: np.random.Generator, i: int) -> RunPath:
    """Run ``i`` of behaviour ``b`` (``started_at = i`` seconds)."""
    stages = [
        Stage("plan", (Call(float(rng.exponential(b.plan_s)), 200, 50),), "llm", "gpt"),
    ]
    if rng.random() < b.p_search:
        width = int(rng.choice(b.width))
        calls = tuple(Call(float(rng.uniform(0.5, 1.5)) * b.search_s) for _ in range(width))
        stages.append(Stage("search", calls, "tool", "web"))
    else:
        stages.append(Stage("lookup", (Call(b.lookup_s),), "retriever"))
    laws = [k for k, _ in b.loop_law]
    loops = int(rng.choice(laws, p=[p for _, p in b.loop_law]))
    for _ in range(loops):
        stages.append(Stage("refine", (Call(float(rng.gamma(2.0, b.refine_s / 2))),), "llm", "gpt"))
    return RunPath(APP, tuple(stages), run_id=f"r{i}", started_at=float(i))


def stream(
    before: Behaviour, after: Behaviour, change_at: int, runs: int, seed: int
) -> list[RunPath]:
    """``runs`` paths: ``before`` until run ``change_at``, ``after`` from it on."""
    rng = np.random.default_rng(seed)
    return [make_path(before if i < change_at else after, rng, i) for i in range(runs)]
