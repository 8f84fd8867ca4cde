"""The queue-wide deadline pass inside the simulator: one preemptive engine slot, runs without a
deadline (1-3 s) and tight runs with one (4-6 s, deadline 8 s) at load 0.9.

Ranked one at a time, a tight run waits behind the sum of the short runs ranked ahead of it (the
slack cap compares its slack with each of their ranks, not with their total) and EDF pushes
every tight run first, the doomed ones too (the domino effect). The pass promotes a tight run
just enough to fit and gives up on those Moore-Hodgson cannot fit, so it meets more deadlines
than both, and the runs without a deadline finish sooner than under either.
"""

from __future__ import annotations

from typing import Any

from hermes_sdk.sim import simulate

END = [{"to": "END", "p": 1.0}]


def one_slot_mix(servers: int, seed: int = 3) -> dict[str, Any]:
    """Bulk runs without a deadline (1-3 s) and tight runs with one (4-6 s, deadline 8 s) at
    load 0.9 on ``servers`` preemptive slots (oracle learning); also used by the oracle's test."""

    def app(name: str, low: float, high: float, weight: float) -> dict[str, Any]:
        unit = {"kind": "llm", "backend": "llm", "next": END,
                "service": {"dist": "uniform", "low": low, "high": high}}  # fmt: skip
        return {"name": name, "start": "u", "units": {"u": unit}, "weight": weight}

    tight = app("tight", 4.0, 6.0, 0.4)
    tight["deadline_s"] = 8.0
    return {
        "seed": seed,
        "n_apps": 800,
        "warmup_apps": 100,
        "arrival": {"process": "load", "load": 0.9},
        "backends": {"llm": {"servers": servers, "preemptive": True}},
        "learning": "oracle",
        "rank_samples": 200,
        "apps": [app("bulk", 1.0, 3.0, 0.6), tight],
    }


def test_pass_meets_more_deadlines_than_the_per_run_rank_and_edf_on_one_slot() -> None:
    doc = one_slot_mix(servers=1)
    runs = {p: simulate(doc, p) for p in ("gittins", "gittins_queue", "edf")}
    hit = {p: r.deadline_hit_rate for p, r in runs.items()}
    free = {p: r.no_deadline_mean for p, r in runs.items()}
    assert all(v is not None for v in (*hit.values(), *free.values())), (hit, free)
    assert hit["gittins_queue"] >= max(hit["gittins"], hit["edf"]) + 0.05, hit  # type: ignore[operator]
    assert free["gittins_queue"] < min(free["gittins"], free["edf"]), free  # type: ignore[type-var]


def test_pass_changes_nothing_without_deadline_runs() -> None:
    doc = one_slot_mix(servers=4)
    doc["apps"] = doc["apps"][:1]
    a, b = simulate(doc, "gittins"), simulate(doc, "gittins_queue")
    assert a.completion_times.tolist() == b.completion_times.tolist()
