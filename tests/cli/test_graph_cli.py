"""`hermes graph list | export` reads learned graphs from a store, as a platform team would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hermes_sdk as hermes
from hermes_sdk.cli import app
from hermes_sdk.graph.export import validate_graph_json


def _learn(store_url: str) -> None:
    registry = hermes.GraphRegistry(hermes.open_store(store_url))
    try:
        for i in range(30):
            loops = 1 + i % 3
            stages = [hermes.Stage("plan", (hermes.Call(0.2, 100, 20),), "llm", "gpt")]
            for _ in range(loops):
                stages.append(hermes.Stage("search", (hermes.Call(0.5), hermes.Call(0.7)), "tool"))
                stages.append(hermes.Stage("think", (hermes.Call(0.3, 300, 30),), "llm", "gpt"))
            registry.observe(hermes.RunPath("doc qa", tuple(stages), run_id=f"r{i}"))
    finally:
        registry.close()


@pytest.fixture()
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    _learn(url)
    return url


def test_list_shows_every_app(store_url: str) -> None:
    result = CliRunner().invoke(app, ["graph", "list", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert "doc qa" in result.output and "30" in result.output


def test_export_json_validates_and_text_formats_name_every_node(store_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["graph", "export", "--app", "doc qa", "--store", store_url])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    validate_graph_json(doc)
    assert doc["runs"] == 30
    for fmt in ("dot", "mermaid"):
        out = runner.invoke(
            app, ["graph", "export", "--app", "doc qa", "--format", fmt, "--store", store_url]
        )
        assert out.exit_code == 0, out.output
        for node in ("plan", "search", "think"):
            assert node in out.stdout


def test_export_png_writes_a_picture(store_url: str, tmp_path: Path) -> None:
    png = tmp_path / "g.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hermes_sdk",
            "graph",
            "export",
            "--app",
            "doc qa",
            "--format",
            "png",
            "--out",
            str(png),
            "--store",
            store_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", "nope"], "no graph for app"),
        (["--app", "doc qa", "--format", "svg"], "--format must be one of"),
        (["--app", "doc qa", "--format", "png"], "needs --out"),
    ],
)
def test_bad_requests_exit_2_with_a_message(store_url: str, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["graph", "export", *args, "--store", store_url])
    assert result.exit_code == 2
    assert message in result.output


def test_unreachable_server_is_a_clear_error() -> None:
    result = CliRunner().invoke(
        app, ["graph", "export", "--app", "x", "--server", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2
    assert "cannot reach" in result.output
