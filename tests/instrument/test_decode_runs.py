"""decode_run_list's two routes (runs whose every stage has one call, built a field at a time;
the others one by one) rebuild every run exactly: the same values of the same types, in order."""

from __future__ import annotations

import random

from hermes_sdk.graph.records import Call, RunPath, Stage
from hermes_sdk.instrument.learner_wire import decode_run_list, encode_run
from tests.instrument.test_learner_process import drift_paths

_FIELDS = {
    RunPath: (
        "app",
        "run_id",
        "tenant",
        "started_at",
        "deadline_s",
        "failed",
        "paused_s",
        "abandoned",
    ),
    Stage: ("node", "kind", "backend", "latency_s"),
    Call: ("service_s", "input_tokens", "output_tokens", "cold_start_s", "failed"),
}


def _exact(obj: object) -> list[object]:
    """Every field of a run, its stages and calls as (type, repr): 0.0 vs -0.0, 1 vs 1.0 and
    True vs 1 differ here, not under ``==``."""
    out: list[object] = [type(obj)]
    out += [(type(v), repr(v)) for v in (getattr(obj, f) for f in _FIELDS[type(obj)])]
    if isinstance(obj, RunPath):
        out.append(type(obj.stages))
        for stage in obj.stages:
            out += _exact(stage)
    if isinstance(obj, Stage):
        out.append((type(obj.calls), len(obj.calls)))
        for call in obj.calls:
            out += _exact(call)
    return out


def _one_call(r: int, rng: random.Random) -> RunPath:
    stages = []
    for i in range(rng.randint(1, 12)):
        stages.append(
            Stage(
                "think",
                (Call(rng.random() * 1e-3, 300 + i, 40 + i),),
                "llm",
                "model",
                None if i % 3 else rng.random(),
            )
        )
        stages.append(Stage("act", (Call(-0.0 if i == 5 else 2e-5, cold_start_s=0.25),), "tool"))
    return RunPath(
        f"app{r % 5}",
        tuple(stages),
        run_id=f"r{r}",
        started_at=1e9 + r,
        deadline_s=None if r % 2 else 3,
        failed=r % 13 == 0,
        paused_s=r % 3 * 0.5,
    )


ODD = RunPath(
    "a",
    (
        Stage("x", (Call(0.5, None, 7, 0.25, True), Call(1e-9)), "tool", None, 3.0),
        Stage("y", (Call(0.0, 1, None),), "llm", "m"),
    ),
    run_id="",
    tenant="t",
    started_at=0.0,
    deadline_s=2.5,
    failed=True,
    paused_s=4.0,
    abandoned=True,
)
"""A run with a stage of two calls (decoded one by one)."""


def test_one_call_runs_decode_exactly() -> None:
    rng = random.Random(7)
    paths = [_one_call(r, rng) for r in range(300)] + [RunPath("e", (), run_id="empty")]
    back = decode_run_list([encode_run(p) for p in paths])
    assert back == paths
    assert [_exact(p) for p in back] == [_exact(p) for p in paths]


def test_mixed_batches_keep_the_order_and_every_field() -> None:
    rng = random.Random(11)
    simple = [_one_call(r, rng) for r in range(40)]
    others = [ODD, *drift_paths(60)]  # multi-call stages among them
    for _ in range(50):
        batch = rng.sample(simple, rng.randint(0, 12)) + rng.sample(others, rng.randint(0, 6))
        rng.shuffle(batch)
        back = decode_run_list([encode_run(p) for p in batch])
        assert back == batch
        assert [_exact(p) for p in back] == [_exact(p) for p in batch]
