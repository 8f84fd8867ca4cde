"""A wide stage in progress: each call is conditioned on the per-call elapsed time."""

from __future__ import annotations

import numpy as np

import hermes_sdk as hermes


def _graph(width: int, call_s: float) -> hermes.PDGraph:
    g = hermes.PDGraph("wide")
    stage = hermes.Stage("score", tuple(hermes.Call(call_s) for _ in range(width)), "llm")
    for i in range(50):
        g.observe(hermes.RunPath("wide", (stage,), run_id=str(i)))
    return g


def test_half_done_wide_stage_has_half_its_service_left() -> None:
    g = _graph(width=4, call_s=10.0)  # stage service 40 s
    state = hermes.RunState(
        node="score", visits=(("score", 1),), running=True, elapsed_s=5.0, width=4
    )
    left = g.remaining_demand(state, n=2000, rng=np.random.default_rng(0))
    assert np.allclose(left, 20.0)  # 4 calls x (10 - 5) s


def test_unknown_width_uses_the_learned_width() -> None:
    g = _graph(width=5, call_s=2.0)  # stage service 10 s
    state = hermes.RunState(node="score", visits=(("score", 1),), running=True, elapsed_s=1.0)
    left = g.remaining_demand(state, n=2000, rng=np.random.default_rng(1))
    assert np.allclose(left, 5.0)  # 5 learned calls x (2 - 1) s
