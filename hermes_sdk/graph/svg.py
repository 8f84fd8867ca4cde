"""SVG (and a self-contained HTML page) of a graph document (from ``PDGraph.to_dict``).

Drawn in pure Python, no JS library: the dashboard inlines the SVG and ``hermes graph export
--format html`` wraps it in a page. Layout as in :mod:`hermes_sdk.graph.picture`: columns by
shortest distance from START, END last; a node's area grows with its mean service demand per
visit (all calls of the stage), edges carry their transition probability; loops curve above.
Every name is XML-escaped; element ids are prefixed per app so several graphs can share a page.
"""

from __future__ import annotations

import hashlib
import math
from html import escape
from typing import Any, Final

from hermes_sdk.graph.picture import graph_layers
from hermes_sdk.graph.records import END, START

COL_W: Final = 190
ROW_H: Final = 130
MARGIN: Final = 60
TOP_PAD: Final = 60
"""Room above the top row for loops (bulging up) and below for column skips (bulging down)."""
MIN_R: Final = 12.0
MAX_R: Final = 38.0
VIRTUAL_R: Final = 10.0
KIND_COLORS: Final = {
    "llm": "#4e79a7",
    "tool": "#e15759",
    "retriever": "#59a14f",
    "dnn": "#b07aa1",
    "container": "#9c755f",
    "custom": "#76b7b2",
}
_LABEL_CHARS: Final = 24


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _fmt_s(value: object) -> str:
    v = _num(value)
    return "?" if v is None else f"{v:.3g} s"


def _short(name: str) -> str:
    return name if len(name) <= _LABEL_CHARS else name[: _LABEL_CHARS - 1] + "\u2026"


def node_demand_s(node: dict[str, Any]) -> float:
    """Mean service seconds one visit of ``node`` puts on its backend (all its calls)."""
    for key in ("stage_service_s", "service_s"):
        mean = _num((node.get(key) or {}).get("mean"))
        if mean is not None:
            return mean
    return 0.0


def _id_prefix(app: str) -> str:
    return "g" + hashlib.sha1(app.encode("utf-8")).hexdigest()[:10]


def _layout(doc: dict[str, Any]) -> tuple[dict[str, tuple[float, float]], float, float]:
    rows = graph_layers(doc)
    n_rows = max((len(v) for v in rows.values()), default=1)
    height = 2 * TOP_PAD + 2 * MARGIN + max(n_rows - 1, 0) * ROW_H + 40
    pos: dict[str, tuple[float, float]] = {}
    for col, names in rows.items():
        top = height / 2 - (len(names) - 1) * ROW_H / 2 - 10
        for i, node in enumerate(names):
            pos[node] = (float(MARGIN + col * COL_W), top + i * ROW_H)
    width = 2 * MARGIN + max(rows, default=0) * COL_W
    return pos, float(width), float(height)


def _radii(doc: dict[str, Any]) -> dict[str, float]:
    demand = {n["id"]: node_demand_s(n) for n in doc["nodes"]}
    biggest = max(demand.values(), default=0.0) or 1.0
    radii = {START: VIRTUAL_R, END: VIRTUAL_R}
    for name, d in demand.items():
        radii[name] = MIN_R + (MAX_R - MIN_R) * math.sqrt(max(d, 0.0) / biggest)
    return radii


def _edge(
    src: tuple[float, float], dst: tuple[float, float], r0: float, r1: float, self_loop: bool
) -> tuple[str, float, float]:
    """SVG path ``d`` from the source's rim to the target's rim, and a label position."""
    (x0, y0), (x1, y1) = src, dst
    if self_loop:
        a = (x0 - r0 * 0.7, y0 - r0 * 0.7)
        b = (x0 + r0 * 0.7, y0 - r0 * 0.7)
        top = y0 - r0 - 42
        d = f"M{a[0]:.1f},{a[1]:.1f} C{x0 - 34:.1f},{top:.1f} {x0 + 34:.1f},{top:.1f} "
        return d + f"{b[0]:.1f},{b[1]:.1f}", x0, top + 8
    dx, dy = x1 - x0, y1 - y0
    dist = math.hypot(dx, dy) or 1.0
    if x1 > x0 and (x1 - x0 <= COL_W * 1.01 or abs(y1 - y0) > 1.0):  # next column: straight
        ux, uy = dx / dist, dy / dist
        sx, sy, ex, ey = x0 + ux * r0, y0 + uy * r0, x1 - ux * (r1 + 3), y1 - uy * (r1 + 3)
        d = f"M{sx:.1f},{sy:.1f} L{ex:.1f},{ey:.1f}"
        return d, (sx + ex) / 2, (sy + ey) / 2 - 6
    # backward or same column (a loop back) bulges upwards; a forward edge skipping columns on
    # the same row bulges downwards, below the labels of the nodes it passes
    nx, ny = dy / dist, -dx / dist  # left normal of the direction
    if x1 > x0:
        bend = 150.0
        if ny < 0:
            nx, ny = -nx, -ny
    else:
        bend = min(0.35 * dist + 30, 110.0)
        if ny > 0:
            nx, ny = -nx, -ny
    cx, cy = (x0 + x1) / 2 + nx * bend, (y0 + y1) / 2 + ny * bend
    ux0, uy0 = cx - x0, cy - y0
    n0 = math.hypot(ux0, uy0) or 1.0
    ux1, uy1 = cx - x1, cy - y1
    n1 = math.hypot(ux1, uy1) or 1.0
    sx, sy = x0 + ux0 / n0 * r0, y0 + uy0 / n0 * r0
    ex, ey = x1 + ux1 / n1 * (r1 + 3), y1 + uy1 / n1 * (r1 + 3)
    d = f"M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}"
    return d, 0.25 * sx + 0.5 * cx + 0.25 * ex, 0.25 * sy + 0.5 * cy + 0.25 * ey - 4


def _changed_marker(node: dict[str, Any], x: float, y: float, r: float) -> str:
    """A dashed orange ring and a "changed" badge on a node whose behaviour change was detected
    (its optional ``changed_at``), else ""."""
    if _num(node.get("changed_at")) is None:
        return ""
    return (
        f'<circle class="changed" cx="{x:.1f}" cy="{y:.1f}" r="{r + 4:.1f}" fill="none" '
        'stroke="#e8590c" stroke-width="2" stroke-dasharray="4 3"/>'
        f'<text class="changed" x="{x:.1f}" y="{y - r - 7:.1f}" fill="#e8590c" font-size="10">'
        "changed</text>"
    )


def graph_to_svg(doc: dict[str, Any]) -> str:
    """An accessible SVG (``role="img"``, title and description) of a graph document."""
    app = str(doc["app"])
    gid = _id_prefix(app)
    pos, width, height = _layout(doc)
    radii = _radii(doc)
    nodes = {n["id"]: n for n in doc["nodes"]}
    title = f"PDGraph of {app}: {len(nodes)} nodes, {len(doc['edges'])} edges, {doc['runs']} runs"
    desc = "; ".join(
        f"{e['source']} to {e['target']} with probability {e['p']:.2f}" for e in doc["edges"]
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pdgraph" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'aria-labelledby="{gid}-t {gid}-d" data-app="{escape(app)}" '
        'font-family="system-ui, sans-serif">',
        f'<title id="{gid}-t">{escape(title)}</title>',
        f'<desc id="{gid}-d">{escape(desc or "no transitions yet")}</desc>',
        f'<defs><marker id="{gid}-arrow" viewBox="0 0 10 10" refX="8" refY="5" '
        'markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
        '<g class="edges" fill="none" stroke="#666" stroke-width="1.4">',
    ]
    labels = []
    for e in doc["edges"]:
        src, dst = e["source"], e["target"]
        if src not in pos or dst not in pos:
            continue
        d, lx, ly = _edge(pos[src], pos[dst], radii[src], radii[dst], src == dst)
        width_px = 1.0 + 3.0 * float(e["p"])
        out.append(
            f'<path d="{d}" stroke-width="{width_px:.1f}" marker-end="url(#{gid}-arrow)">'
            f"<title>{escape(src)} \u2192 {escape(dst)}: p={e['p']:.3f} "
            f"({e['count']} transitions)</title></path>"
        )
        labels.append(
            f'<text class="edge-p" x="{lx:.1f}" y="{ly:.1f}" text-anchor="middle">'
            f"{e['p']:.2f}</text>"
        )
    out.append("</g>")
    out.append(
        '<g class="edge-labels" font-size="11" fill="#222" stroke="#fff" stroke-width="3" '
        'paint-order="stroke">'
    )
    out.extend(labels)
    out.append("</g>")
    out.append('<g class="nodes" font-size="12" text-anchor="middle">')
    for name, (x, y) in pos.items():
        r = radii.get(name, MIN_R)
        if name in (START, END):
            out.append(
                f'<g class="node virtual" data-node="{escape(name)}">'
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="#ddd" stroke="#888"/>'
                f'<text x="{x:.1f}" y="{y + r + 14:.1f}" fill="#444">{escape(name)}</text></g>'
            )
            continue
        n = nodes[name]
        demand = node_demand_s(n)
        backend = f" @ {n['backend']}" if n.get("backend") else ""
        tip = (
            f"{name}: {n['kind']}{backend}, {n['count']} visits, mean {_fmt_s(demand)} per visit, "
            f"p95 {_fmt_s((n.get('stage_service_s') or {}).get('p95'))}"
        )
        color = KIND_COLORS.get(str(n["kind"]), "#888")
        changed = _changed_marker(n, x, y, r)
        if changed:
            tip += f"; {n.get('changes', 1)} change(s) detected, last from t={n['changed_at']:.0f}"
        out.append(
            f'<g class="node" data-node="{escape(name)}" data-demand-s="{demand:.6g}">'
            f"<title>{escape(tip)}</title>"
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{color}" fill-opacity="0.85" '
            'stroke="#222" stroke-width="1"/>'
            f'<text x="{x:.1f}" y="{y + r + 15:.1f}" fill="#111">{escape(_short(name))}</text>'
            f'<text x="{x:.1f}" y="{y + r + 29:.1f}" fill="#555" font-size="10">'
            f"{escape(str(n['kind']))} \u00b7 {escape(_fmt_s(demand))}</text>{changed}</g>"
        )
    out.append("</g></svg>")
    return "\n".join(out) + "\n"


_PAGE_CSS: Final = """
body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem;color:#111;background:#fff}
h1{font-size:1.4rem}figure{margin:0}svg.pdgraph{max-width:100%;height:auto}
table{border-collapse:collapse;margin:1rem 0}caption{text-align:left;font-weight:600}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}
"""


def _cell(value: object) -> str:
    v = _num(value)
    return escape(str(value)) if v is None else f"{v:.4g}"


def graph_page_html(doc: dict[str, Any]) -> str:
    """A self-contained HTML page (no scripts, no external assets): the SVG plus tables."""
    app = escape(str(doc["app"]))
    rows = []
    for n in doc["nodes"]:
        st = n.get("stage_service_s") or n.get("service_s") or {}
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{_cell(v)}</td>"
                for v in (
                    n["id"],
                    n["kind"],
                    n.get("backend") or "",
                    n["count"],
                    st.get("mean"),
                    st.get("p95"),
                    (n.get("output_tokens") or {}).get("mean") or "",
                )
            )
            + "</tr>"
        )
    edges = "".join(
        f"<tr><td>{escape(e['source'])}</td><td>{escape(e['target'])}</td>"
        f"<td>{e['p']:.3f}</td><td>{e['count']}</td></tr>"
        for e in doc["edges"]
    )
    node_head = "".join(
        f'<th scope="col">{h}</th>'
        for h in (
            "node",
            "kind",
            "backend",
            "visits",
            "mean s / visit",
            "p95 s / visit",
            "mean output tokens",
        )
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>PDGraph of {app}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_PAGE_CSS}</style></head><body><main>"
        f"<h1>PDGraph of {app}</h1>"
        f"<p>{doc['runs']} runs learned, graph version {doc['version']}. Node area grows with "
        "mean service seconds per visit; edges are labelled with transition probabilities.</p>"
        f"<figure>{graph_to_svg(doc)}</figure>"
        f"<table><caption>Nodes</caption><thead><tr>{node_head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<table><caption>Edges</caption><thead><tr><th scope="col">from</th>'
        '<th scope="col">to</th><th scope="col">p</th><th scope="col">count</th></tr></thead>'
        f"<tbody>{edges}</tbody></table>"
        "</main></body></html>\n"
    )
