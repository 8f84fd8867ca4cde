"""PNG picture of a graph document with matplotlib (Agg): a simple layered left-to-right layout.

Layers are breadth-first distances from START (END in the last layer); nodes in a layer are
spread vertically. Edge labels are transition probabilities, node labels name, kind and mean
stage seconds. Meant for reports and the CLI, not for huge graphs.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from hermes_sdk.graph.records import END, START


def _layers(doc: dict[str, Any]) -> dict[str, int]:
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
    for node in doc["nodes"]:
        depth.setdefault(node["id"], 1)
    depth[END] = max(depth.values()) + 1
    return depth


def graph_to_png(doc: dict[str, Any], path: str | Path, *, dpi: int = 120) -> Path:
    """Draw the document to ``path`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    depth = _layers(doc)
    by_layer: dict[int, list[str]] = {}
    for node, d in sorted(depth.items(), key=lambda kv: (kv[1], kv[0])):
        by_layer.setdefault(d, []).append(node)
    pos: dict[str, tuple[float, float]] = {}
    for d, names in by_layer.items():
        for i, name in enumerate(names):
            pos[name] = (float(d), (len(names) - 1) / 2.0 - i)
    info = {n["id"]: n for n in doc["nodes"]}
    width = max(6.0, 2.6 * (max(by_layer) + 1))
    height = max(3.0, 1.4 * max(len(v) for v in by_layer.values()))
    fig, ax = plt.subplots(figsize=(width, height))
    for edge in doc["edges"]:
        (x0, y0), (x1, y1) = pos[edge["source"]], pos[edge["target"]]
        label = f"{edge['p']:.2f}"
        if edge["source"] == edge["target"]:
            ax.annotate(
                "",
                xy=(x0 + 0.1, y0 + 0.18),
                xytext=(x0 - 0.1, y0 + 0.18),
                arrowprops={"arrowstyle": "->", "connectionstyle": "arc3,rad=-1.6"},
            )
            ax.text(x0, y0 + 0.55, label, ha="center", fontsize=7, color="tab:blue")
            continue
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={"arrowstyle": "->", "shrinkA": 22, "shrinkB": 22, "color": "0.4"},
        )
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.06, label, fontsize=7, color="tab:blue")
    for name, (x, y) in pos.items():
        if name in info:
            mean = info[name]["stage_service_s"]["mean"]
            text = f"{name}\n{info[name]['kind']}" + (f"\n{mean:.3g}s" if mean is not None else "")
            style = "round,pad=0.3"
        else:
            text, style = name, "circle,pad=0.3"
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": style, "facecolor": "white", "edgecolor": "0.2"},
        )
    ax.set_xlim(-0.6, max(by_layer) + 0.6)
    ax.set_ylim(min(y for _, y in pos.values()) - 0.8, max(y for _, y in pos.values()) + 0.8)
    ax.set_axis_off()
    ax.set_title(f"PDGraph of {doc['app']} ({doc['runs']} runs)")
    out = Path(path)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return out
