"""Server-side graph drawings: valid, escaped, accessible SVG sized by demand; a static page."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

import hermes_sdk as hermes
from hermes_sdk.cli import app as cli
from hermes_sdk.graph.svg import graph_page_html, graph_to_svg, node_demand_s
from hermes_sdk.sim.workloads.paths import sample_path
from tests.ui.feed import ACME_KEY, RIVAL_APP, LoopbackServer, paper_workload

SVG_NS = "{http://www.w3.org/2000/svg}"
ODD = 'plan <"&"> \u00e9t\u00e9'


def _doc(app: str = "doc qa", runs: int = 30) -> dict[str, Any]:
    registry = hermes.GraphRegistry(hermes.open_store("memory://"))
    for i in range(runs):
        stages = [hermes.Stage(ODD, (hermes.Call(0.2, 100, 20),), "llm", "gpt")]
        for _ in range(1 + i % 3):
            stages.append(hermes.Stage("search", (hermes.Call(0.5), hermes.Call(0.7)), "tool"))
            stages.append(hermes.Stage("think", (hermes.Call(3.0, 300, 30),), "llm", "gpt"))
        registry.observe(hermes.RunPath(app, tuple(stages), run_id=f"r{i}"))
    graph = registry.get(app)
    assert graph is not None
    return graph.to_dict(include_samples=False)


def _nodes(svg: ET.Element) -> dict[str, ET.Element]:
    return {g.attrib["data-node"]: g for g in svg.iter(f"{SVG_NS}g") if "data-node" in g.attrib}


def _radius(group: ET.Element) -> float:
    circle = group.find(f"{SVG_NS}circle")
    assert circle is not None
    return float(circle.attrib["r"])


def test_svg_is_valid_escaped_and_sized_by_demand() -> None:
    doc = _doc()
    text = graph_to_svg(doc)
    svg = ET.fromstring(text)  # well-formed XML despite <, >, & and quotes in a node name
    assert svg.attrib["role"] == "img"
    title_id, desc_id = svg.attrib["aria-labelledby"].split()
    assert svg.find(f"{SVG_NS}title").attrib["id"] == title_id  # type: ignore[union-attr]
    assert svg.find(f"{SVG_NS}desc").attrib["id"] == desc_id  # type: ignore[union-attr]
    assert "PDGraph of doc qa" in (svg.find(f"{SVG_NS}title").text or "")  # type: ignore[union-attr]
    assert "think to search with probability" in (svg.find(f"{SVG_NS}desc").text or "")  # type: ignore[union-attr]
    nodes = _nodes(svg)
    assert set(nodes) == {"START", "END", ODD, "search", "think"}
    assert "<script" not in text and 'plan <"' not in text
    # think (3 s per visit) > search (1.2 s, both calls) > plan (0.2 s).
    assert _radius(nodes["think"]) > _radius(nodes["search"]) > _radius(nodes[ODD])
    demand = {n["id"]: node_demand_s(n) for n in doc["nodes"]}
    assert demand["search"] == pytest.approx(1.2)
    # Every edge is drawn with an arrow and labelled with its probability.
    paths = [p for p in svg.iter(f"{SVG_NS}path") if "marker-end" in p.attrib]
    labels = [t.text for t in svg.iter(f"{SVG_NS}text") if t.attrib.get("class") == "edge-p"]
    assert len(paths) == len(labels) == len(doc["edges"])
    assert sorted(labels) == sorted(f"{e['p']:.2f}" for e in doc["edges"])


def test_several_graphs_on_one_page_do_not_share_ids() -> None:
    a, b = graph_to_svg(_doc("a")), graph_to_svg(_doc("b"))
    ids_a = set(re.findall(r'id="([^"]+)"', a))
    ids_b = set(re.findall(r'id="([^"]+)"', b))
    assert ids_a and not ids_a & ids_b


def test_every_simulator_app_draws_inside_its_canvas() -> None:
    workload = paper_workload()
    rng = np.random.default_rng(3)
    for app in [str(a["name"]) for a in workload["apps"]]:  # type: ignore[union-attr, index]
        registry = hermes.GraphRegistry(hermes.open_store("memory://"))
        for i in range(25):
            registry.observe(sample_path(workload, app, rng, run_id=str(i)))
        graph = registry.get(app)
        assert graph is not None
        svg = ET.fromstring(graph_to_svg(graph.to_dict(include_samples=False)))
        width, height = float(svg.attrib["width"]), float(svg.attrib["height"])
        for circle in svg.iter(f"{SVG_NS}circle"):
            x, y, r = (float(circle.attrib[k]) for k in ("cx", "cy", "r"))
            assert r <= x <= width - r and r <= y <= height - r, app
        for label in svg.iter(f"{SVG_NS}text"):
            assert 0 < float(label.attrib["y"]) < height, app


def test_page_is_self_contained() -> None:
    page = graph_page_html(_doc())
    assert page.startswith("<!doctype html>") and '<html lang="en">' in page
    assert "<svg" in page and "<caption>Nodes</caption>" in page
    assert "<caption>Edges</caption>" in page
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "src=" not in page and "<link" not in page
    assert "plan &lt;&quot;&amp;&quot;&gt;" in page


def test_cli_exports_html_from_a_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    registry = hermes.GraphRegistry(hermes.open_store(url))
    try:
        for i in range(10):
            registry.observe(
                hermes.RunPath(
                    "qa",
                    (hermes.Stage("ask", (hermes.Call(0.4, 10, 5),), "llm", "gpt"),),
                    run_id=str(i),
                )
            )
    finally:
        registry.close()
    runner = CliRunner()
    result = runner.invoke(
        cli, ["graph", "export", "--app", "qa", "--format", "html", "--store", url]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<!doctype html>") and 'data-node="ask"' in result.stdout
    out = tmp_path / "qa.html"
    result = runner.invoke(
        cli,
        ["graph", "export", "--app", "qa", "--format", "html", "--store", url, "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "10 runs learned" in out.read_text(encoding="utf-8")


async def test_cli_exports_html_from_a_running_server_for_the_keys_tenant(
    server: LoopbackServer,
) -> None:
    runner = CliRunner()

    def export(app: str, key: str) -> Result:
        args = ["graph", "export", "--app", app, "--format", "html"]
        return runner.invoke(cli, [*args, "--server", server.url, "--api-key", key])

    result = await asyncio.to_thread(export, "react_fever", ACME_KEY)
    assert result.exit_code == 0, result.output
    assert 'data-node="thought"' in result.stdout and "PDGraph of react_fever" in result.stdout
    refused = await asyncio.to_thread(export, RIVAL_APP, ACME_KEY)
    assert refused.exit_code == 2 and "404" in refused.output
