"""Offline replay of the hosted benchmark's runs through the gateway's own budget code: which order
and which admission mechanism could go below the clairvoyant order, and how far.

The same seeded runs as ``bench_hosted.py`` (:func:`hosted_workload.workload`, 90% of 300k TPM,
120 s) go through the real :class:`~hermes_sdk.server.budget.UpstreamBudget` and its reservation
and backfill (:func:`~hermes_sdk.server.budget_backfill.admit`) on a virtual clock; a call takes
its output tokens x ``step_s`` once granted (the sim provider's batch steps cost nothing per
request), a tool step its drawn seconds. No gateway, HTTP or event loop: what is left is the
queueing the budget itself implies, so the replay isolates the order and the mechanism, and its
FCFS / stage / oracle means are checked against the live ones of ``hosted_oracle.seedN.json``.

Orders (lower first; ties by arrival of the request): ``fcfs`` (the request's arrival, as
Hermes' fcfs), ``stage`` (the run's waiting tokens: Hermes Gittins' stage rank), ``run_oracle``
(the run's waiting + every later stage's true tokens: the bench's clairvoyant order),
``run_mean`` (the same with the later stages' tokens replaced by their mean for the run's app
at that stage and node, from 2,000 other draws of each app: what a well-learned demand model
could know, no clairvoyance), ``run_gittins`` (1 / the Gittins index of the waiting tokens plus
that distribution of the later ones: :func:`~hermes_sdk.policy.gittins.gittins_index_and_quantum`,
as the live ``budget_rank=run`` computes it, here on a perfectly learned distribution),
``stage_then_run`` (the stage, ties by the run's true remaining tokens) and ``run_stages`` (the
run's remaining tokens divided by its remaining LLM stages: a c-mu rule per stage of the run's
future). Mechanisms: ``reserve`` (the gateway's: the best that does not fit reserves, others
backfill within twice its wait), ``greedy`` (any waiter that fits goes, best first: no
reservation), ``hol`` (no backfill: only the best may go) and ``burst2`` (``reserve`` on a bucket
twice as deep, which the provider does not allow: how much a larger burst would be worth).

Run: ``.venv/bin/python benchmarks/hosted_orders.py --seeds 1,...,20`` (no lock: virtual time;
about a second a seed) writes ``results/hosted_orders.json`` and ``.png`` (``--name`` to change
it; ``hosted_orders.seeds1-5`` is the live benchmark's seeds).
"""

from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hosted_workload import Run, RunDrawer, workload
from plotting import figure, grouped_bars, save

from hermes_sdk.policy.gittins import gittins_index_and_quantum
from hermes_sdk.server import budget_backfill
from hermes_sdk.server.budget import UpstreamBudget

RESULTS = Path(__file__).parent / "results"
ORDERS = ("fcfs", "stage", "run_oracle", "run_mean", "run_gittins", "stage_then_run", "run_stages")
MECHANISMS = ("reserve", "greedy", "hol", "burst2")
HERMES = "stage/reserve"
"""What Hermes Gittins runs on a budgeted upstream: the stage rank with the reservation."""
LIVE_WAYS = {"fcfs": "hermes_fcfs", "stage": "hermes_gittins", "run_oracle": "hermes_oracle_run"}


class Clock:
    """The replay's virtual monotonic clock, seconds."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@dataclass(slots=True)
class Waiter:
    run: int
    cost: float
    output: int
    enqueued_s: float


@contextmanager
def _slack(value: float) -> Iterator[None]:
    """The reservation's slack set to ``value`` (a huge one: no reservation at all)."""
    old = budget_backfill.BACKFILL_SLACK
    budget_backfill.BACKFILL_SLACK = value
    try:
        yield
    finally:
        budget_backfill.BACKFILL_SLACK = old


@functools.cache
def _after(draws: int = 2000) -> dict[tuple[str, int, str], NDArray[np.float64]]:
    """(app, stage index, node) -> provider tokens of the app's stages after that one, over
    ``draws`` runs of each app drawn apart from the benchmark's (seed 4242)."""
    drawer = RunDrawer(4242)
    sums: dict[tuple[str, int, str], list[float]] = {}
    for i, app in enumerate(drawer.apps):
        for _ in range(draws):
            stages = drawer.stages(i)
            tokens = [sum(a + b for a, b in s.calls) for s in stages]
            for k, s in enumerate(stages):
                sums.setdefault((app.name, k, s.node), []).append(float(sum(tokens[k + 1 :])))
    return {k: np.asarray(v) for k, v in sums.items()}


@functools.cache
def _gittins_rank(key: tuple[str, int, str], pending: float, rate: float) -> float:
    """Seconds: 1 / the Gittins index of ``pending`` tokens plus the later stages' at ``key``."""
    index, _ = gittins_index_and_quantum((pending + _after()[key]) / rate)
    return 1.0 / index


def replay(
    runs: list[Run], order: str, mechanism: str, tpm: float, window_s: float, step_s: float
) -> list[float]:
    """Completion seconds of each run (in ``runs``' order) under ``order`` and ``mechanism``."""
    clock = Clock()
    window = window_s * 2 if mechanism == "burst2" else window_s
    budget = UpstreamBudget(rpm=None, tpm=tpm, window_s=window, clock=clock)
    rate = tpm / 60.0
    stage_at = [0] * len(runs)
    left_calls = [0] * len(runs)
    pending = [0.0] * len(runs)  # tokens of each run's waiting calls
    after = [[sum(i + o for i, o in s.calls) for s in r.stages] for r in runs]
    after = [[sum(a[k + 1 :]) for k in range(len(a))] for a in after]
    learned = _after()
    where = [[(r.app, k, s.node) for k, s in enumerate(r.stages)] for r in runs]
    guess = [[float(learned[k].mean()) if k in learned else 0.0 for k in w] for w in where]
    llm_after = [
        [sum(1 for s in r.stages[k + 1 :] if s.calls) for k in range(len(r.stages))] for r in runs
    ]
    done = [0.0] * len(runs)
    waiters: dict[int, Waiter] = {}
    seqs = itertools.count()
    events: list[tuple[float, int, int]] = [
        (r.arrival_s, next(seqs), i) for i, r in enumerate(runs)
    ]
    heapq.heapify(events)  # (time, tie, run): the run's current stage starts (or ends, see below)
    finishing: list[tuple[float, int, int]] = []  # (time, tie, run): one of its calls finished

    def key(seq: int) -> tuple[float, ...]:
        w = waiters[seq]
        r = w.run
        stage_s = pending[r] / rate
        future_s = after[r][stage_at[r]] / rate
        if order == "fcfs":
            return (w.enqueued_s, seq)
        if order == "stage":
            return (stage_s, w.enqueued_s, seq)
        if order == "run_oracle":
            return (stage_s + future_s, w.enqueued_s, seq)
        if order == "run_mean":
            return (stage_s + guess[r][stage_at[r]] / rate, w.enqueued_s, seq)
        if order == "run_gittins":
            rank = _gittins_rank(where[r][stage_at[r]], pending[r], rate)
            return (rank, w.enqueued_s, seq)
        if order == "stage_then_run":
            return (stage_s, future_s, w.enqueued_s, seq)
        return ((stage_s + future_s) / (1 + llm_after[r][stage_at[r]]), w.enqueued_s, seq)

    def start_stage(r: int, now: float) -> None:
        run = runs[r]
        while stage_at[r] < len(run.stages):
            stage = run.stages[stage_at[r]]
            if stage.calls:
                left_calls[r] = len(stage.calls)
                for i, o in stage.calls:
                    waiters[next(seqs)] = Waiter(r, float(i + o), o, now)
                    pending[r] += i + o
                return
            heapq.heappush(events, (now + stage.tool_s, next(seqs), ~r))  # a tool step
            return
        done[r] = now - run.arrival_s

    def cost_of(seq: int) -> float | None:
        w = waiters.get(seq)
        return None if w is None else w.cost

    def admit(now: float) -> float:
        """Grant what the mechanism allows now; the time to look again (inf: at the next event)."""
        while waiters:
            ranked = sorted(waiters, key=key)
            ranked = ranked[: 1 if mechanism == "hol" else budget_backfill.BACKFILL_SCAN]
            seq, wait = budget.admit(((s, waiters[s].cost) for s in ranked), cost_of)
            if seq is None:
                return now + wait
            w = waiters.pop(seq)
            pending[w.run] -= w.cost
            heapq.heappush(finishing, (now + w.output * step_s, next(seqs), w.run))
        return float("inf")

    wake = float("inf")
    slack = 1e12 if mechanism == "greedy" else budget_backfill.BACKFILL_SLACK
    with _slack(slack):
        while events or finishing or waiters:
            nxt = min(
                events[0][0] if events else float("inf"),
                finishing[0][0] if finishing else float("inf"),
                wake,
            )
            clock.t = now = nxt
            while finishing and finishing[0][0] <= now:
                _, _, r = heapq.heappop(finishing)
                left_calls[r] -= 1
                if left_calls[r] == 0:
                    stage_at[r] += 1
                    start_stage(r, now)
            while events and events[0][0] <= now:
                _, _, code = heapq.heappop(events)
                if code >= 0:
                    start_stage(code, now)
                else:  # a tool step ended
                    stage_at[~code] += 1
                    start_stage(~code, now)
            wake = admit(now)
    return done


def _mean_ci(values: list[float]) -> dict[str, float | None]:
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if len(arr) < 2:
        return {"mean": mean, "lo": None, "hi": None}
    half = float(stats.t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / np.sqrt(len(arr)))
    return {"mean": mean, "lo": mean - half, "hi": mean + half}


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    runs = workload(seed, args.tpm, args.load, args.duration_s, "m")
    measured = [i for i, r in enumerate(runs) if r.arrival_s >= args.warmup_s]
    floor = float(np.mean([runs[i].standalone_s(args.step_s) for i in measured]))
    means: dict[str, float] = {}
    p95s: dict[str, float] = {}
    for mechanism in MECHANISMS:
        for order in ORDERS:
            done = replay(runs, order, mechanism, args.tpm, args.window_s, args.step_s)
            means[f"{order}/{mechanism}"] = float(np.mean([done[i] for i in measured]))
            p95s[f"{order}/{mechanism}"] = float(np.quantile([done[i] for i in measured], 0.95))
    fcfs, fcfs_p95 = means["fcfs/reserve"], p95s["fcfs/reserve"]
    out: dict[str, Any] = {
        "seed": seed,
        "measured_runs": len(measured),
        "floor_mean_s": floor,
        "mean_completion_s": means,
        "vs_fcfs_reserve": {k: v / fcfs for k, v in means.items()},
        "p95_completion_s": p95s,
        "p95_vs_fcfs_reserve": {k: v / fcfs_p95 for k, v in p95s.items()},
        "floor_vs_fcfs_reserve": floor / fcfs,
    }
    live = args.out_dir / f"hosted_oracle.seed{seed}.json"
    if live.exists():  # the live means of the same orders, on the runs every live way completed
        doc = json.loads(live.read_text())
        if not doc.get("quick") and "analysis" in doc:
            live_means = doc["analysis"]["mean_completion_s"]
            out["live_mean_completion_s"] = {
                o: live_means[w] for o, w in LIVE_WAYS.items() if w in live_means
            }
    print(json.dumps({"seed": seed, "vs_fcfs_reserve": out["vs_fcfs_reserve"]}), flush=True)
    return out


def plot(doc: dict[str, Any], png: Path) -> None:
    """Each order's mean completion / FCFS-with-reservation's, per mechanism (mean over seeds)."""
    ratio = doc["vs_fcfs_reserve"]
    title = f"Hosted replay, seeds {doc['command'].split()[-1]}: mean completion / FCFS (reserve)"
    fig, axes = figure(1, 1, (9, 6), title)
    grouped_bars(
        axes[0],
        list(ORDERS),
        {m: [ratio[f"{o}/{m}"]["mean"] for o in ORDERS] for m in MECHANISMS},
        axis_label="x FCFS with the gateway's reservation (lower is better)",
        targets=[(0.8, "target 0.8x"), (doc["floor_vs_fcfs_reserve"]["mean"], "floor")],
        legend="outside",
    )
    save(fig, png)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--tpm", type=int, default=300_000)
    p.add_argument("--window-s", type=float, default=1.0)
    p.add_argument("--load", type=float, default=0.9)
    p.add_argument("--duration-s", type=float, default=120.0)
    p.add_argument("--warmup-s", type=float, default=30.0)
    p.add_argument("--step-s", type=float, default=0.005)
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--name", default="hosted_orders", help="of the JSON and PNG written")
    args = p.parse_args()
    per_seed = [run_seed(args, int(s)) for s in args.seeds.split(",")]
    keys = list(per_seed[0]["vs_fcfs_reserve"])
    doc = {
        "command": "benchmarks/hosted_orders.py --seeds " + args.seeds,
        **{k: getattr(args, k) for k in ("tpm", "window_s", "load", "duration_s", "warmup_s")},
        "step_s": args.step_s,
        "vs_fcfs_reserve": {k: _mean_ci([s["vs_fcfs_reserve"][k] for s in per_seed]) for k in keys},
        "p95_vs_fcfs_reserve": {
            k: _mean_ci([s["p95_vs_fcfs_reserve"][k] for s in per_seed]) for k in keys
        },
        # paired per seed against what Hermes Gittins runs (the stage rank, the reservation)
        "vs_stage_reserve": {
            k: _mean_ci([s["vs_fcfs_reserve"][k] / s["vs_fcfs_reserve"][HERMES] for s in per_seed])
            for k in keys
        },
        "floor_vs_fcfs_reserve": _mean_ci([s["floor_vs_fcfs_reserve"] for s in per_seed]),
        "per_seed": per_seed,
    }
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(doc, args.out_dir / f"{args.name}.png")
    for k in keys:
        mean, p95 = doc["vs_fcfs_reserve"][k], doc["p95_vs_fcfs_reserve"][k]
        ci = f"[{mean['lo']:.3f}, {mean['hi']:.3f}]"
        print(f"{k:24s} mean {mean['mean']:.3f} {ci}  p95 {p95['mean']:.3f}")


if __name__ == "__main__":
    main()
