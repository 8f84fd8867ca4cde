"""A known synthetic app whose exact transition law and mean demand the tests compare against.

START -> plan -> (search x width 2..4 w.p. 0.7 | lookup w.p. 0.3) -> refine^L -> END, with the
loop length L in 1..5 drawn from a non-geometric law.
"""

from __future__ import annotations

import numpy as np

from hermes_sdk import Call, RunPath, Stage

APP = "gen"
P_SEARCH = 0.7
LOOP_LAW = {1: 0.1, 2: 0.4, 3: 0.2, 4: 0.2, 5: 0.1}
WIDTHS = (2, 3, 4)
PLAN_MEAN_S = 1.0  # exponential
SEARCH_CALL_MEAN_S = 1.0  # uniform(0.5, 1.5)
LOOKUP_S = 2.0  # deterministic
REFINE_MEAN_S = 0.5  # gamma(2, 0.25)


def exact_mean_s() -> float:
    """E[total service] of one run, computed from the generator's parameters."""
    mean_width = sum(WIDTHS) / len(WIDTHS)
    mean_loops = sum(k * p for k, p in LOOP_LAW.items())
    return (
        PLAN_MEAN_S
        + P_SEARCH * mean_width * SEARCH_CALL_MEAN_S
        + (1 - P_SEARCH) * LOOKUP_S
        + mean_loops * REFINE_MEAN_S
    )


def loop_hazard(visit: int) -> float:
    """P(refine again | refine entered ``visit`` times)."""
    at_least = sum(p for k, p in LOOP_LAW.items() if k >= visit)
    more = sum(p for k, p in LOOP_LAW.items() if k > visit)
    return more / at_least


def make_path(rng: np.random.Generator, i: int = 0) -> RunPath:
    """One run of the generator."""
    stages = [
        Stage(
            "plan",
            (Call(float(rng.exponential(PLAN_MEAN_S)), input_tokens=200, output_tokens=50),),
            "llm",
            "gpt",
        )
    ]
    if rng.random() < P_SEARCH:
        width = int(rng.choice(WIDTHS))
        calls = tuple(Call(float(rng.uniform(0.5, 1.5))) for _ in range(width))
        stages.append(Stage("search", calls, "tool", "web"))
    else:
        stages.append(Stage("lookup", (Call(LOOKUP_S),), "retriever"))
    loops = int(rng.choice(list(LOOP_LAW), p=list(LOOP_LAW.values())))
    for _ in range(loops):
        stages.append(Stage("refine", (Call(float(rng.gamma(2.0, 0.25))),), "llm", "gpt"))
    return RunPath(APP, tuple(stages), run_id=f"r{i}", started_at=float(i))
