"""PNG plots of a ``hermes bench`` run (matplotlib, Agg backend: no display needed).

Each function takes the plain data the bench produced (the same values written to results.json)
and writes one PNG, returning its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from hermes_sdk.sim.bench_grid import BenchResult
from hermes_sdk.sim.bench_summary import summarize
from hermes_sdk.sim.workloads.spec import JsonValue

_COLORS = {
    "fcfs": "tab:gray",
    "app_fcfs": "tab:brown",
    "las": "tab:orange",
    "sjf_mean": "tab:olive",
    "gittins": "tab:blue",
    "gittins_blind": "tab:cyan",
    "srpt_oracle": "black",
    "edf": "tab:red",
    "lstf": "tab:green",
}


def _color(policy: str) -> str:
    return _COLORS.get(policy, "tab:purple")


def plot_cdfs(
    samples: Mapping[str, Mapping[str, Sequence[float]]], path: Path, *, title: str
) -> Path:
    """Completion-time CDFs: ``samples[panel][policy]`` -> completion times (s); one panel per
    key (e.g. "paper @ 0.95"), log-scale time axis."""
    panels = list(samples)
    ncols = min(3, max(1, len(panels)))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for policy, times in samples[panel].items():
            xs = np.sort(np.asarray(times, dtype=float))
            if xs.size == 0:
                continue
            ys = np.arange(1, xs.size + 1) / xs.size
            ax.step(xs, ys, where="post", label=policy, color=_color(policy))
        ax.set_xscale("log")
        ax.set_xlabel("app completion time (s)")
        ax.set_ylabel("fraction of apps")
        ax.set_title(panel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_vs_load(
    series: Mapping[str, Mapping[str, Sequence[tuple[float, float, float]]]],
    path: Path,
) -> Path:
    """Mean and P95 vs load: ``series[suite][policy]`` -> [(load, mean_s, p95_s), ...]."""
    suites = list(series)
    fig, axes = plt.subplots(len(suites), 2, figsize=(11, 4 * len(suites)), squeeze=False)
    for row, suite in zip(axes, suites, strict=True):
        for policy, points in series[suite].items():
            pts = sorted(points)
            loads = [p[0] for p in pts]
            row[0].plot(loads, [p[1] for p in pts], "o-", label=policy, color=_color(policy))
            row[1].plot(loads, [p[2] for p in pts], "o-", label=policy, color=_color(policy))
        for ax, stat in zip(row, ("mean", "P95"), strict=True):
            ax.set_yscale("log")
            ax.set_xlabel("load (LLM engine utilisation)")
            ax.set_ylabel(f"{stat} app completion time (s)")
            ax.set_title(f"{suite}: {stat} vs load")
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_learning(
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    drift: Mapping[str, Sequence[Mapping[str, float]]],
    rolling: Mapping[str, Sequence[tuple[float, float]]],
    path: Path,
) -> Path:
    """Learning curves: per app transition error and P95 coverage vs runs seen
    (``curves[app]`` -> points with runs/transition_error/p95_coverage), the drift scenario
    (``drift[variant]`` -> points) and mean completion time vs runs seen in a simulation
    (``rolling[label]`` -> [(runs_seen, mean_completion_s)])."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax_tv, ax_cov, ax_drift, ax_sim = axes[0, 0], axes[0, 1], axes[1, 0], axes[1, 1]
    for app, points in curves.items():
        runs = [p["runs"] for p in points]
        ax_tv.plot(runs, [p["transition_error"] for p in points], "o-", label=app)
        ax_cov.plot(runs, [p["p95_coverage"] for p in points], "o-", label=app)
    ax_tv.set_xscale("log")
    ax_tv.set_xlabel("runs observed")
    ax_tv.set_ylabel("transition error (total variation)")
    ax_tv.set_title("PDGraph transition error")
    ax_tv.legend(fontsize=7)
    ax_cov.axhline(0.95, color="black", ls="--", lw=1)
    ax_cov.set_xscale("log")
    ax_cov.set_ylim(0.5, 1.02)
    ax_cov.set_xlabel("runs observed")
    ax_cov.set_ylabel("share of true remaining <= predicted P95")
    ax_cov.set_title("P95 remaining-demand coverage")
    for variant, points in drift.items():
        runs = [p["runs"] for p in points]
        ax_drift.plot(runs, [p["mean_error"] for p in points], "o-", label=f"{variant}: mean err")
        ax_drift.plot(
            runs, [p["transition_error"] for p in points], "s--", label=f"{variant}: trans err"
        )
    if drift:
        first = next(iter(drift.values()))
        if first:
            ax_drift.axvline(max(p["runs"] for p in first) / 2, color="black", ls=":", lw=1)
    ax_drift.set_xlabel("runs observed (loop law changes half-way)")
    ax_drift.set_ylabel("error")
    ax_drift.set_title("drift: code_feedback re-learning")
    ax_drift.legend(fontsize=7)
    for label, trace in rolling.items():
        ax_sim.plot([t[0] for t in trace], [t[1] for t in trace], "-", label=label)
    ax_sim.set_xlabel("apps arrived (runs seen by the PDGraph)")
    ax_sim.set_ylabel("mean completion time, rolling (s)")
    ax_sim.set_title("simulated completion time while learning")
    ax_sim.legend(fontsize=8)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_deadlines(
    series: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]], path: Path
) -> Path:
    """Deadline hit rate vs tightness: ``series[suite][policy]`` -> [(factor, hit_rate)]."""
    suites = list(series)
    fig, axes = plt.subplots(1, len(suites), figsize=(5.5 * len(suites), 4.2), squeeze=False)
    for ax, suite in zip(axes[0], suites, strict=True):
        for policy, points in series[suite].items():
            pts = sorted(points)
            ax.plot(
                [p[0] for p in pts], [p[1] for p in pts], "o-", label=policy, color=_color(policy)
            )
        ax.set_xlabel("deadline factor (x standalone time; lower = tighter)")
        ax.set_ylabel("deadline hit rate")
        ax.set_ylim(0.0, 1.02)
        ax.set_title(f"{suite}: deadline hit rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_result(result: BenchResult, out_dir: Path) -> list[Path]:
    """Every plot of a bench run, written as PNGs into ``out_dir``."""
    made = [plot_cdfs(result.cdfs, out_dir / "cdf.png", title="app completion time")]
    summary = summarize(result.rows)
    series: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    for s in summary:
        series.setdefault(s.suite, {}).setdefault(s.policy, []).append((s.load, s.mean, s.p95))
    made.append(plot_vs_load(series, out_dir / "load.png"))
    if result.learning:
        suite = "paper" if "paper" in result.learning else next(iter(result.learning))
        report = result.learning[suite]
        assert isinstance(report, dict)
        curves = report["apps"]
        drift = report["drift"]
        assert isinstance(curves, dict) and isinstance(drift, dict)
        rolling: dict[str, list[tuple[float, float]]] = {}
        for s_name, sim in result.learning_sim.items():
            assert isinstance(sim, dict)
            for learning in ("online", "oracle"):
                trace = sim.get(learning)
                if isinstance(trace, list):
                    rolling[f"{s_name} gittins ({learning})"] = [
                        (_f(p[0]), _f(p[1])) for p in trace if isinstance(p, list)
                    ]
        made.append(
            plot_learning(
                _point_lists(curves),
                _point_lists({k: v for k, v in drift.items() if isinstance(v, list)}),
                rolling,
                out_dir / "learning.png",
            )
        )
    if result.tightness:
        dl: dict[str, dict[str, list[tuple[float, float]]]] = {}
        groups: dict[tuple[str, str, float], list[float]] = {}
        for t in result.tightness:
            key = (str(t["suite"]), str(t["policy"]), _f(t["factor"]))
            groups.setdefault(key, []).append(_f(t["deadline_hit_rate"]))
        for (suite, policy, factor), hits in groups.items():
            dl.setdefault(suite, {}).setdefault(policy, []).append((factor, float(np.mean(hits))))
        made.append(plot_deadlines(dl, out_dir / "deadlines.png"))
    return made


def _point_lists(d: Mapping[str, JsonValue]) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {}
    for key, points in d.items():
        assert isinstance(points, list)
        out[key] = [
            {k: _f(v) for k, v in p.items() if isinstance(v, (int, float))}
            for p in points
            if isinstance(p, dict)
        ]
    return out


def _f(value: JsonValue) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)
