"""Online learning: the policy sees only a PDGraph learned from completed apps, and still gets
(within 5 %) the mean completion time it gets from the true distributions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hermes_sdk.sim import simulate

LOOP = [
    [{"to": "act", "p": 0.5}, {"to": "END", "p": 0.5}],
    [{"to": "act", "p": 0.2}, {"to": "END", "p": 0.8}],
    [{"to": "END", "p": 1.0}],
]
WORKLOAD: dict[str, Any] = {
    "seed": 3,
    "n_apps": 2000,
    "warmup_apps": 500,
    "arrival": {"process": "load", "load": 0.8},
    "backends": {"llm": {"servers": 1, "preemptive": True}},
    "rank_samples": 200,
    "apps": [
        {
            "name": "react",
            "start": "plan",
            "units": {
                "plan": {"kind": "llm", "backend": "llm",
                         "service": {"dist": "exponential", "mean": 0.5},
                         "next": [{"to": "act", "p": 1.0}]},
                "act": {"kind": "llm", "backend": "llm",
                        "service": {"dist": "deterministic", "value": 1.0}, "by_visit": LOOP},
            },
        },
        {
            "name": "long",
            "weight": 0.2,
            "start": "draft",
            "units": {
                "draft": {"kind": "llm", "backend": "llm",
                          "service": {"dist": "two_point", "values": [1, 15], "probs": [0.7, 0.3]},
                          "next": [{"to": "END", "p": 1.0}]},
            },
        },
    ],
}  # fmt: skip


def with_learning(learning: str) -> dict[str, Any]:
    doc = copy.deepcopy(WORKLOAD)
    doc["learning"] = learning
    return doc


@pytest.mark.slow
def test_online_gittins_reaches_oracle_gittins() -> None:
    oracle = simulate(with_learning("oracle"), "gittins")
    online = simulate(with_learning("online"), "gittins")
    fcfs = simulate(with_learning("online"), "fcfs")
    assert online.mean == pytest.approx(oracle.mean, rel=0.05)
    # the comparison has teeth: the learned ranks are worth a lot over FCFS here
    assert online.mean < 0.6 * fcfs.mean
    assert online.littles_law.relative_error < 0.02
    assert online.learning == "online"
