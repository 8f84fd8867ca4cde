"""End to end, real processes and unmodified instrumentation: an app using the ``openai`` client
traced by ``opentelemetry-instrumentation-openai-v2``, exporting OTLP/HTTP protobuf to
``hermes serve``, calling ``hermes sim-engine``; the learned graph is the app's structure."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.test_gateway_cli import HERMES, _free_port, _running

APP = Path(__file__).with_name("apps") / "openai_app.py"
RUNS = 400


def edge_p(doc: dict[str, Any]) -> dict[tuple[str, str], float]:
    return {(e["source"], e["target"]): e["p"] for e in doc["edges"]}


def visit_p(doc: dict[str, Any], source: str, target: str, visit: int) -> float:
    for e in doc["edges"]:
        if (e["source"], e["target"]) == (source, target):
            for v in e["by_visit"]:
                if v["visit"] == visit:
                    return float(v["p"])
    return 0.0


def truth(runs: list[list[str]]) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], int] = {}
    for seq in runs:
        path = ["START", *seq, "END"]
        for a, b in itertools.pairwise(path):
            counts[(a, b)] = counts.get((a, b), 0) + 1
    out = {}
    for (a, b), n in counts.items():
        out[(a, b)] = n / sum(m for (x, _), m in counts.items() if x == a)
    return out


@pytest.mark.slow
def test_openai_v2_traces_learn_the_apps_graph(tmp_path: Path) -> None:
    e_port, s_port = _free_port(), _free_port()
    engine = [HERMES, "sim-engine", "--port", str(e_port), "--model", "m", "--step-s", "0.001"]
    server = [HERMES, "serve", "--port", str(s_port), "--store", f"sqlite:///{tmp_path}/h.db"]
    with _running(engine, e_port), _running(server, s_port):
        out = subprocess.run(
            [
                sys.executable,
                str(APP),
                "--engine",
                f"http://127.0.0.1:{e_port}/v1",
                "--traces",
                f"http://127.0.0.1:{s_port}/v1/traces",
                "--runs",
                str(RUNS),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        runs = json.loads(out.stdout)
        base = f"http://127.0.0.1:{s_port}"
        doc = httpx.get(f"{base}/v1/apps/research-bot/graph").json()
        metrics = httpx.get(f"{base}/metrics").text
    assert len(runs) == RUNS and doc["runs"] == RUNS and doc["failed_runs"] == 0
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert set(nodes) == {"plan", "search", "answer"}
    assert all(n["kind"] == "llm" and n["backend"] == "m" for n in nodes.values())
    # the sim engine answers max_tokens tokens: the chat spans' usage reached the nodes
    assert nodes["plan"]["output_tokens"]["mean"] == 3
    assert nodes["answer"]["output_tokens"]["mean"] == 4
    learned, actual = edge_p(doc), truth(runs)
    assert set(learned) == set(actual)
    for edge, p in actual.items():  # every run's path arrived and was learned as it happened
        assert learned[edge] == pytest.approx(p, abs=1e-9), edge
    # the loop per visit, as the app looped (again after visit k iff it searched k+1 times)
    for k in (1, 2):
        reached = [seq.count("search") for seq in runs if seq.count("search") >= k]
        again = sum(n > k for n in reached) / len(reached)
        assert visit_p(doc, "search", "search", k) == pytest.approx(again, abs=1e-9)
    assert visit_p(doc, "search", "answer", 3) == 1.0  # the app searches at most 3 times
    # and the app's design: branch to search with p = 0.6 (sampled: within 0.05)
    assert learned[("plan", "search")] == pytest.approx(0.6, abs=0.05)
    assert learned[("START", "plan")] == 1.0 and learned[("answer", "END")] == 1.0
    assert f'hermes_otlp_runs_total{{outcome="learned"}} {float(RUNS)}' in metrics
