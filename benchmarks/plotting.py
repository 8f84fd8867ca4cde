"""Chart helpers shared by the benchmark scripts: grouped bars with value labels and targets.

The scripts import this module from their own directory (``python benchmarks/bench_x.py`` puts
``benchmarks/`` on ``sys.path``) inside their ``plot()``; matplotlib itself is imported lazily
with the ``Agg`` backend, so measuring never needs a display.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

# "ours" first, baselines in grey, further series in the default cycle's colours.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
BASELINE = "#8c8c8c"
TARGET = "#d62728"
LEGEND_COLUMNS = 5


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(
    rows: int,
    cols: int,
    size: tuple[float, float],
    title: str,
    height_ratios: Sequence[float] | None = None,
) -> tuple[Any, list[Any]]:
    """A figure with a suptitle and its axes as a flat list (row-major)."""
    fig, axes = pyplot().subplots(
        rows, cols, figsize=size, squeeze=False, height_ratios=height_ratios
    )
    fig.suptitle(title, fontsize=11)
    return fig, list(axes.flat)


def shared_legend(fig: Any, axes: Sequence[Any]) -> None:
    """One legend under all panels (entries of every panel, each label once), replacing the
    panels' own legends; :func:`save` leaves room for it."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend(
        list(entries.values()),
        list(entries),
        loc="lower center",
        ncol=min(len(entries), LEGEND_COLUMNS),
        fontsize=8,
        frameon=False,
    )


def save(fig: Any, path: Path) -> None:
    """Lay out, write the PNG and free the figure."""
    rows = sum(math.ceil(len(leg.get_texts()) / LEGEND_COLUMNS) for leg in fig.legends)
    bottom = rows * 0.3 / fig.get_figheight()  # 0.3 inch per legend row
    top = 1.0 - 0.1 / fig.get_figheight()  # a little air under the suptitle
    fig.tight_layout(rect=(0.0, bottom, 1.0, top))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


def short(value: float) -> str:
    """A value label: thousands separators from 1000 up, else 3 significant digits."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def us(value: float) -> str:
    """A latency label with 2 significant digits below 10, whole numbers above."""
    if value < 1:
        return f"{value:.2g}"
    return f"{value:.1f}" if value < 10 else short(round(value))


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def grouped_bars(
    ax: Any,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    axis_label: str,
    title: str | None = None,
    horizontal: bool = True,
    log: bool = False,
    fmt: Callable[[float], str] = short,
    labels: Mapping[str, Sequence[str]] | None = None,
    colors: Mapping[str, str] | None = None,
    bar_colors: Mapping[str, Sequence[str]] | None = None,
    targets: Sequence[tuple[float, str]] = (),
    legend: str | None = "best",
) -> None:
    """One group of bars per category, one bar per series, each labelled with its value.

    ``None``/NaN values leave a gap. Series whose name starts with ``baseline`` are grey unless
    ``colors`` (per series) or ``bar_colors`` (per series, per bar) say otherwise; bars of a
    category whose name starts with ``baseline`` are hatched. ``labels`` replace the value
    labels (per series, per bar). ``targets`` are ``(value, label)`` pairs drawn as dashed lines
    across the value axis. Horizontal groups read top to bottom in the given order. ``legend`` is
    a matplotlib ``loc``, ``"outside"`` (right of the axes) or None (see :func:`shared_legend`).
    """
    n = max(1, len(series))
    width = 0.8 / n
    values_seen: list[float] = [t for t, _ in targets]
    colour_cycle = iter(PALETTE * 4)
    for j, (name, values) in enumerate(series.items()):
        colour = (colors or {}).get(name)
        if colour is None:
            colour = BASELINE if name.lower().startswith("baseline") else next(colour_cycle)
        idx = [i for i, v in enumerate(values) if _finite(v)]
        vals = [float(values[i]) for i in idx]  # type: ignore[arg-type]
        pos = [i + (j - (n - 1) / 2) * width for i in idx]
        if horizontal:
            bars = ax.barh(pos, vals, width, label=name, color=colour)
        else:
            bars = ax.bar(pos, vals, width, label=name, color=colour)
        for i, bar in zip(idx, bars, strict=True):
            if bar_colors and name in bar_colors:
                bar.set_color(bar_colors[name][i])
            if categories[i].lower().startswith("baseline"):
                bar.set_hatch("///")
                bar.set_edgecolor("white")
        texts = [labels[name][i] for i in idx] if labels and name in labels else map(fmt, vals)
        ax.bar_label(bars, labels=list(texts), padding=2, fontsize=7)
        values_seen += vals
    ticks = list(range(len(categories)))
    if horizontal:
        ax.set_yticks(ticks, list(categories))
        ax.set_ylim(len(categories) - 0.5, -0.5)
        ax.set_xlabel(axis_label)
    else:
        ax.set_xticks(ticks, list(categories))
        ax.set_ylabel(axis_label)
    for k, (value, label) in enumerate(targets):
        line = ax.axvline if horizontal else ax.axhline
        line(value, color=TARGET, ls=("--", ":", "-.")[k % 3], lw=1.2, label=label)
    _headroom(ax, values_seen, horizontal=horizontal, log=log)
    ax.grid(axis="x" if horizontal else "y", alpha=0.3, which="major")
    ax.set_axisbelow(True)
    if title:
        ax.set_title(title, fontsize=10)
    if legend == "outside":
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    elif legend:
        ax.legend(fontsize=7, loc=legend)


def _headroom(ax: Any, values: list[float], *, horizontal: bool, log: bool) -> None:
    """Value axis from 0 (or below the smallest value on a log axis) with room for labels."""
    positive = [v for v in values if v > 0] or [1.0]
    top = max(positive)
    if log:
        lo, hi = min(positive) / 2, top * 2.5
        (ax.set_xscale if horizontal else ax.set_yscale)("log")
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        axis = ax.xaxis if horizontal else ax.yaxis  # 1-2-5 steps in plain numbers: matplotlib
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # labels the minor ticks of a
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))  # short range
        axis.set_minor_formatter(NullFormatter())  # ("2x10^3 3x10^3 ...", overlapping)
    else:
        lo, hi = 0.0, top * 1.18
    (ax.set_xlim if horizontal else ax.set_ylim)(lo, hi)


def add_plot_only(parser: argparse.ArgumentParser, png: Path, results: Path) -> None:
    """Add ``--plot-only``: redraw ``png`` from the committed ``results`` without measuring."""
    parser.add_argument(
        "--plot-only", action="store_true", help=f"redraw {png.name} from {results.name}"
    )


def redraw(plot: Callable[[dict[str, Any], Path], None], results: Path, png: Path) -> None:
    """``--plot-only``: draw ``png`` from the JSON at ``results``."""
    plot(json.loads(results.read_text(encoding="utf-8")), png)
    print(f"wrote {png}")
