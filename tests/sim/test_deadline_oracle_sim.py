"""The clairvoyant deadline oracle inside the simulator: the true latency it reads, and that it
bounds the predictive deadline policies where its model is exact (one preemptive slot)."""

from __future__ import annotations

import pytest

from hermes_sdk.sim import simulate
from hermes_sdk.sim.bench_deadlines import sweep_policy
from hermes_sdk.sim.clairvoyant import true_remaining_latency
from hermes_sdk.sim.run import draw_runs
from hermes_sdk.sim.workload import parse_workload
from hermes_sdk.sim.workloads import SUITES
from tests.sim.test_deadline_queue_sim import one_slot_mix


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_true_latency_at_arrival_is_the_standalone_time(suite: str) -> None:
    wl = parse_workload(SUITES[suite](load=0.85, seed=2, n_apps=200, warmup_apps=20))
    _, apps = draw_runs(wl, 2)
    speed1 = {name: spec.speed_at(1) for name, spec in wl.backends.items()}
    for app in apps:
        assert true_remaining_latency(app, speed1) == pytest.approx(app.standalone_s, rel=1e-12)
    # half-way through its first stage's longest call, a run has that much less left
    app = next(a for a in apps if a.stages[0].width == 1)
    stage = app.stages[0]
    app.stage_attained_s = stage.services_s[0] / 2
    half = stage.services_s[0] / 2 / speed1[stage.unit.backend]
    assert true_remaining_latency(app, speed1) == pytest.approx(app.standalone_s - half)
    app.stage_i = len(app.stages)
    assert true_remaining_latency(app, speed1) == 0.0


def test_oracle_meets_at_least_what_the_predictive_policies_meet_on_one_slot() -> None:
    doc = one_slot_mix(servers=1, seed=5)
    names = ("edf", "gittins", "gittins_queue", "deadline_oracle_w1", "deadline_oracle_w100")
    runs = {p: simulate(doc, sweep_policy(p)) for p in names}
    hit = {p: r.deadline_hit_rate for p, r in runs.items()}
    free = {p: r.no_deadline_mean for p, r in runs.items()}
    assert all(isinstance(v, float) for v in (*hit.values(), *free.values())), (hit, free)
    best_predictive = max(hit[p] for p in ("edf", "gittins", "gittins_queue"))  # type: ignore[type-var]
    assert hit["deadline_oracle_w100"] >= best_predictive, hit  # type: ignore[operator]
    # the weight trades hits for the others' completion: SRPT order at weight 1 is faster
    assert free["deadline_oracle_w1"] < free["deadline_oracle_w100"], free  # type: ignore[operator]
    assert hit["deadline_oracle_w1"] < hit["deadline_oracle_w100"], hit  # type: ignore[operator]
    assert runs["deadline_oracle_w100"].policy == "deadline_oracle_w100"


def test_sweep_policy_names() -> None:
    assert sweep_policy("gittins") == "gittins"
    oracle = sweep_policy("deadline_oracle_w2.5")
    assert not isinstance(oracle, str) and oracle.name == "deadline_oracle_w2.5"
    assert getattr(oracle, "weight", None) == 2.5
    with pytest.raises(ValueError, match="bad oracle weight"):
        sweep_policy("deadline_oracle_wx")
