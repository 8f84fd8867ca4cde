"""Text renderings of a graph document: Graphviz DOT and Mermaid flowcharts.

Node names may contain spaces, ``|``, quotes or non-ASCII characters: DOT ids are always quoted
and escaped; Mermaid gets synthetic ids (``n0``, ``n1``, ...) with the real name as a quoted
label in which ``"`` and ``<``/``>`` are written as Mermaid entity codes.
"""

from __future__ import annotations

from typing import Any

from hermes_sdk.graph.records import END, START


def _fmt_s(value: object) -> str:
    return f"{value:.3g}s" if isinstance(value, (int, float)) else "?"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def graph_to_dot(doc: dict[str, Any]) -> str:
    """DOT digraph of a graph document (from ``PDGraph.to_dict``)."""
    lines = [f"digraph {_dot_quote(str(doc['app']))} {{", "  rankdir=LR;"]
    lines.append(f"  {_dot_quote(START)} [shape=circle];")
    lines.append(f"  {_dot_quote(END)} [shape=doublecircle];")
    for node in doc["nodes"]:
        label = (
            f"{node['id']}\\n{node['kind']}"
            + (f" @ {node['backend']}" if node["backend"] else "")
            + f"\\nmean {_fmt_s(node['service_s']['mean'])} x{node['count']}"
        )
        escaped = label.replace('"', '\\"')
        lines.append(f'  {_dot_quote(node["id"])} [shape=box, label="{escaped}"];')
    for edge in doc["edges"]:
        lines.append(
            f"  {_dot_quote(edge['source'])} -> {_dot_quote(edge['target'])}"
            f' [label="{edge["p"]:.2f}"];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_label(text: str) -> str:
    return (
        text.replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\n", " ")
    )


def graph_to_mermaid(doc: dict[str, Any]) -> str:
    """Mermaid ``flowchart LR`` of a graph document (from ``PDGraph.to_dict``)."""
    ids = {START: "start", END: "end_"}
    lines = ["flowchart LR", '  start(("START"))', '  end_(("END"))']
    for i, node in enumerate(doc["nodes"]):
        ids[node["id"]] = f"n{i}"
        label = _mermaid_label(
            f"{node['id']} ({node['kind']}) mean {_fmt_s(node['service_s']['mean'])}"
        )
        lines.append(f'  n{i}["{label}"]')
    for edge in doc["edges"]:
        lines.append(f'  {ids[edge["source"]]} -->|"{edge["p"]:.2f}"| {ids[edge["target"]]}')
    return "\n".join(lines) + "\n"
