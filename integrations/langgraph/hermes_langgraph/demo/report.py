"""What `hermes demo` shows: a rich progress bar, a comparison table and a PNG plot."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hermes_langgraph.demo.classes import BASELINE, per_class_vs_baseline, trade_note
from hermes_langgraph.demo.runner import DemoConfig, PolicyOutcome, run_demo, summary_json


def run_with_report(config: DemoConfig, *, json_out: bool, console: Console) -> int:
    """Run the demo; print a table (or one JSON object with ``json_out``); returns an exit code."""
    progress, on_progress = policy_progress(config, console, disable=json_out)
    with progress:
        outcomes, graphs, pids = run_demo(config, on_progress=on_progress)
    plot = plot_outcomes(outcomes, config.out / "demo.png")
    if json_out:
        print(summary_json(outcomes, graphs, pids))
    else:
        console.print(outcome_table(outcomes))
        console.print(class_table(outcomes))
        for line in trade_note(outcomes):
            console.print(line, highlight=False, markup=False)
        if any(o.load for o in outcomes):
            console.print(load_table(outcomes))
        for line in batching_note(outcomes, config):
            console.print(line, highlight=False, markup=False)
        console.print(f"plot: {plot}\ngraphs: {config.out / 'graphs'} ({len(graphs)} files)")
    return 0 if all(o.completed == o.apps for o in outcomes) else 1


def policy_progress(
    config: DemoConfig, console: Console, *, disable: bool = False
) -> tuple[Progress, Callable[[str, int, int], None]]:
    """One progress bar per policy; each bar's clock starts when that policy's pass starts
    (the runner reports ``done=0`` first), so the second policy does not count the first's time."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=disable,
        transient=False,
    )
    tasks = {
        p: progress.add_task(f"apps under {p}", total=config.apps, start=False)
        for p in config.policies
    }
    started: set[str] = set()

    def on_progress(policy: str, done: int, total: int) -> None:
        if policy not in started:
            started.add(policy)
            progress.start_task(tasks[policy])
        progress.update(tasks[policy], completed=done, total=total)

    return progress, on_progress


def outcome_table(outcomes: Sequence[PolicyOutcome]) -> Table:
    """Mean and P95 app completion time per policy, with the speed-up against the first."""
    table = Table(title="App completion time (seconds)")
    for col in ("policy", "apps", "completed", "mean", "p95", "mean speed-up", "p95 speed-up"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    base = outcomes[0] if outcomes else None
    for o in outcomes:
        assert base is not None
        table.add_row(
            o.policy,
            str(o.apps),
            str(o.completed),
            f"{o.mean:.2f}",
            f"{o.p95:.2f}",
            f"{base.mean / o.mean:.2f}x",
            f"{base.p95 / o.p95:.2f}x",
        )
    return table


def class_table(outcomes: Sequence[PolicyOutcome]) -> Table:
    """Mean completion (s) of each app kind under each policy, with its ratio to FCFS."""
    ratios = per_class_vs_baseline(outcomes)
    table = Table(title="Per app kind: mean completion (s) and ratio to FCFS")
    table.add_column("app", no_wrap=True)
    for o in outcomes:
        table.add_column(o.policy, justify="right", no_wrap=True)
        if o.policy != BASELINE:
            table.add_column(f"/{BASELINE}", justify="right", no_wrap=True)
    for name in sorted({n for o in outcomes for n in o.per_app}):
        cells = [name]
        for o in outcomes:
            mean = o.per_app.get(name)
            cells.append("-" if mean is None else f"{mean:.2f}")
            if o.policy != BASELINE:
                r = ratios.get(o.policy, {}).get(name)
                cells.append("-" if r is None else f"{r:.2f}x")
        table.add_row(*cells)
    return table


def load_table(outcomes: Sequence[PolicyOutcome]) -> Table:
    """Each engine's load per policy: offered load, batch occupancy, queues, priorities."""
    table = Table(
        title="Engine load per pass",
        caption="offered: tokens asked / what a full batch decodes (arrival span); batch: mean "
        "requests decoding; full: share of the span with the batch full; wait s, queued: mean "
        "wait and mean requests waiting at the gateway; prio: distinct priorities received",
    )
    for col in ("policy", "engine", "offered", "batch", "full", "wait s", "queued", "prio"):
        table.add_column(col, justify="left" if col in ("policy", "engine") else "right")
    for o in outcomes:
        for x in o.load:
            table.add_row(
                o.policy,
                x.engine,
                f"{x.offered_load:.2f}",
                f"{x.mean_batch:.1f}/{x.max_batch}",
                f"{x.full_share:.0%}",
                f"{x.gateway_wait_s:.2f}",
                f"{x.gateway_queue:.1f}",
                str(x.priorities),
            )
    return table


def batching_note(outcomes: Sequence[PolicyOutcome], config: DemoConfig) -> list[str]:
    """What batching does to the comparison, with this run's numbers: how loaded the shared
    engine was, each policy's gain, and why it is smaller than on a one-request engine."""
    base = next((o for o in outcomes if o.policy == BASELINE), outcomes[0] if outcomes else None)
    fast = None if base is None else next((x for x in base.load if x.engine == "fast"), None)
    if base is None or fast is None or config.max_batch <= 1:
        return []
    inflight = config.max_inflight or config.max_batch
    gains = "; ".join(
        f"{o.policy}'s mean speed-up over {base.policy} {base.mean / o.mean:.2f}x, P95 "
        f"speed-up {base.p95 / o.p95:.2f}x"
        for o in outcomes
        if o is not base
    )
    lines = [
        f"Batching: each engine decodes up to {config.max_batch} requests per step and the "
        f"gateway admits {inflight} to it (max_inflight). Under {base.policy} the shared engine "
        f"was offered {fast.offered_load:.2f}x what a full batch decodes; its batch was full "
        f"{fast.full_share:.0%} of the arrival span (mean {fast.mean_batch:.1f} of "
        f"{fast.max_batch}) and requests waited {fast.gateway_wait_s:.2f} s on average at the "
        f"gateway ({fast.gateway_queue:.1f} waiting on average).",
        "A batch lets small requests ride along with large ones, so the order of waiting "
        "requests matters only while the batch is full, and an app's own decoding time, which "
        "no order shortens, is most of its completion time: a policy gains less here than on "
        f"an engine serving one request at a time ({gains or 'no other policy ran'}; below 1x: "
        "slower).",
    ]
    preempted = sum(x.preemptions for o in outcomes for x in o.load)
    if config.engine_priority and inflight > config.max_batch:
        lines.append(
            f"The gateway admits more than a batch ({inflight}), so each engine keeps a queue of "
            f"its own ({fast.engine_queue:.1f} waiting on average under {base.policy}) and "
            f"orders it by the priority the gateway derives from the rank ({preempted} "
            "preemptions of a worse running request)."
        )
    elif config.engine_priority:
        lines.append(
            "The engines run with priority scheduling and receive the rank as their "
            "priority, but the gateway admits at most a batch, so an engine's own queue holds "
            f"only requests waiting for the next step ({preempted} preemptions): the order is "
            "decided in the gateway's admission queue."
        )
    return lines


def plot_outcomes(outcomes: Sequence[PolicyOutcome], path: Path) -> Path:
    """Completion-time CDF per policy, plus per-app means, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for o in outcomes:
        times = np.sort(np.asarray(o.times_s))
        if times.size:
            left.plot(times, np.arange(1, times.size + 1) / times.size, label=o.policy)
    if any(o.times_s for o in outcomes):
        left.legend()
    left.set_xlabel("app completion time (s)")
    left.set_ylabel("fraction of apps")
    left.set_title("Completion-time CDF")
    names = sorted({n for o in outcomes for n in o.per_app})
    width = 0.8 / max(1, len(outcomes))
    for i, o in enumerate(outcomes):
        xs = np.arange(len(names)) + i * width
        right.bar(xs, [o.per_app.get(n, 0.0) for n in names], width=width, label=o.policy)
    right.set_xticks(np.arange(len(names)) + width * (len(outcomes) - 1) / 2, names)
    right.set_ylabel("mean completion time (s)")
    right.set_title("Per app")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def quick(config: DemoConfig) -> DemoConfig:
    """A smaller run for tests and CI (same shape, fewer apps)."""
    return dataclasses.replace(config, apps=min(config.apps, 80))
