"""`hermes graph learn --from FILE` over Collector file-exporter output (OTLP JSON lines)."""

from __future__ import annotations

import gzip
from pathlib import Path

from typer.testing import CliRunner

from hermes_sdk.cli import app
from hermes_sdk.graph import GraphRegistry
from hermes_sdk.store import open_store
from tests.otlp.traces import Traces, chat, json_line


def write_traces(path: Path) -> None:
    lines = []
    qa, bot = Traces("doc-qa"), Traces("bot")
    for i in range(6):  # doc-qa: retrieve -> answer, and every third run answers twice
        root = qa.span("request", 0, None)
        qa.span("retrieve", 0, 1, root, {"gen_ai.operation.name": "retrieval"})
        qa.span("answer", 1, 2, root, chat())
        if i % 3 == 0:
            qa.span("answer", 2, 3, root, chat())
        qa.span("GET /health", 3, 3.1, root)  # plain span: ignored
        qa.end(root, 4)
        lines.append(json_line(qa.take()))
    root = bot.span("turn", 0, None)
    bot.span("chat m", 0, 1, root, chat())
    bot.end(root, 1)
    spans = bot.take()
    lines.append(json_line(spans[:1]))  # spans of one trace split across lines
    lines.append(json_line(spans[1:]))
    orphan = bot.span("turn", 0, None)  # its root never ends: not in the file
    bot.span("chat m", 0, 1, orphan, chat())
    lines.append(json_line(bot.take()))
    lines.append("{this is not json")
    lines.append('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}')
    lines.append("")
    path.write_text("\n".join(lines) + "\n")


def test_learn_from_a_collector_file(tmp_path: Path) -> None:
    plain = tmp_path / "traces.json"
    write_traces(plain)
    packed = tmp_path / "more.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    store = f"sqlite:///{tmp_path}/h.db"
    result = CliRunner().invoke(
        app, ["graph", "learn", "--from", str(plain), "--from", str(packed), "--store", store]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "app doc-qa: runs learned" in out and "spans ignored: not_a_unit" in out
    assert "lines ignored: not an OTLP JSON request" in out
    assert "spans ignored: late" in out  # the same traces twice (gz copy): each run learned once
    registry = GraphRegistry(open_store(store))
    try:
        qa = registry.get("doc-qa")
        bot = registry.get("bot")
        assert qa is not None and bot is not None
        doc = qa.to_dict(include_samples=False)
        assert doc["runs"] == 6 and doc["failed_runs"] == 0
        edges = {(e["source"], e["target"]): e["p"] for e in doc["edges"]}
        assert edges[("START", "retrieve")] == 1.0 and edges[("retrieve", "answer")] == 1.0
        assert edges[("answer", "answer")] == 2 / 8  # 2 of 6 runs answer twice
        bot_doc = bot.to_dict(include_samples=False)
        assert bot_doc["runs"] == 2 and bot_doc["failed_runs"] == 1  # the rootless trace
    finally:
        registry.close()
    row = next(line for line in out.splitlines() if "app doc-qa: runs learned" in line)
    assert row.split()[-2] == "6"


def test_learn_reports_bad_options(tmp_path: Path) -> None:
    plain = tmp_path / "t.json"
    plain.write_text("")
    result = CliRunner().invoke(app, ["graph", "learn", "--from", str(plain), "--kind", "x=no"])
    assert result.exit_code == 2 and "kind_by_span_name" in result.output
