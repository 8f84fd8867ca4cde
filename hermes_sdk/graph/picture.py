"""PNG picture of a graph document (from ``PDGraph.to_dict``), drawn with matplotlib.

Layout: nodes in columns by their shortest distance from START (loops point backwards), START on
the left, END on the right; a node's area grows with its mean service demand per visit, and
edges carry their transition probability.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from hermes_sdk.graph.records import END, START


def _columns(doc: dict[str, Any]) -> dict[str, int]:
    succ: dict[str, list[str]] = {}
    for edge in doc["edges"]:
        succ.setdefault(edge["source"], []).append(edge["target"])
    depth = {START: 0}
    queue = deque([START])
    while queue:
        node = queue.popleft()
        for nxt in succ.get(node, []):
            if nxt not in depth and nxt != END:
                depth[nxt] = depth[node] + 1
                queue.append(nxt)
    last = max(depth.values(), default=0) + 1
    for node in doc["nodes"]:
        depth.setdefault(node["id"], last)  # unreachable nodes (should not happen) go last
        last = max(last, depth[node["id"]] + 1)
    depth[END] = last
    return depth


def graph_layers(doc: dict[str, Any]) -> dict[int, list[str]]:
    """Node ids (START and END included) by column, each column's names sorted."""
    rows: dict[int, list[str]] = {}
    for node, col in sorted(_columns(doc).items(), key=lambda kv: (kv[1], kv[0])):
        rows.setdefault(col, []).append(node)
    return rows


def graph_to_png(doc: dict[str, Any], path: str | Path) -> Path:
    """Draw the graph document into a PNG file at ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = graph_layers(doc)
    pos = {
        node: (col, (len(names) - 1) / 2 - i)
        for col, names in rows.items()
        for i, node in enumerate(names)
    }
    means = {n["id"]: float(n["service_s"]["mean"] or 0.0) for n in doc["nodes"]}
    biggest = max(means.values(), default=1.0) or 1.0
    n_cols = max(rows, default=1) + 1
    n_rows = max((len(v) for v in rows.values()), default=1)
    fig, ax = plt.subplots(figsize=(2.2 * n_cols + 1, 1.4 * n_rows + 1.5))
    for edge in doc["edges"]:
        (x0, y0), (x1, y1) = pos[edge["source"]], pos[edge["target"]]
        bend = 0.35 if x1 <= x0 else 0.0  # back edges (loops) curve so they stay visible
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#555",
                "shrinkA": 18,
                "shrinkB": 18,
                "connectionstyle": f"arc3,rad={bend}",
            },
        )
        ax.text(
            (x0 + x1) / 2,
            (y0 + y1) / 2 + (0.25 if bend else 0.08),
            f"{edge['p']:.2f}",
            ha="center",
            fontsize=8,
            color="#333",
        )
    for node, (x, y) in pos.items():
        virtual = node in (START, END)
        size = 300 if virtual else 500 + 2500 * means.get(node, 0.0) / biggest
        ax.scatter([x], [y], s=size, color="#ddd" if virtual else "#7aa6d6", zorder=3)
        ax.text(x, y - 0.32, node, ha="center", va="top", fontsize=9)
    ax.set_title(f"PDGraph of {doc['app']} ({doc['runs']} runs)")
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(-n_rows / 2 - 0.6, n_rows / 2 + 0.4)
    ax.axis("off")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
