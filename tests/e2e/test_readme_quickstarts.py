"""The README's quick starts, run as written against real parts.

Each test reads its code block out of README.md (so editing a block into something that no
longer works fails here) and runs it in a fresh process: the application developers' script as
is, the platform team's commands in a shell, the LangGraph app as a script. Two `hermes
sim-engine` processes on loopback stand in for vLLM (``vllm-small``) and SGLang (``sglang-big``),
and `hermes serve` is a real child process. The only edits are deployment addresses (the
engines' host:port, the server's port), each listed in a table and required to be in the
block; ``~`` is a fresh home directory. The "no infrastructure at all" block has its own test
(tests/instrument/test_readme_no_infrastructure.py).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hermes_sdk.client.hints import PRIORITY_LEVELS

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent
TIMEOUT_S = 240.0


def quick_start(title: str, lang: str) -> str:
    """The first ```lang block under the README heading ``## Quick start: {title}...``."""
    text = README.read_text()
    start = text.index(f"## Quick start: {title}")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    found = re.search(rf"```{lang}\n(.*?)```", section, re.S)
    assert found is not None, f"no {lang} block under 'Quick start: {title}'"
    return found.group(1)


def substitute(block: str, addresses: Mapping[str, str]) -> str:
    """``block`` with each deployment address replaced; every one must be in the block."""
    for old, new in addresses.items():
        assert old in block, f"the README block no longer mentions {old!r}; update this test"
        block = block.replace(old, new)
    return block


def shell_commands(block: str) -> list[str]:
    """The commands of a bash block (continuation lines joined, comments dropped)."""
    joined = block.replace("\\\n", " ")
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]


def user_env(home: Path) -> dict[str, str]:
    """A new user's environment: the venv's commands on PATH, no Hermes or OpenAI settings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("HERMES_", "OPENAI_", "PYTEST_"))
    }
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    env.update(COLUMNS="200", NO_COLOR="1", PYTHONUNBUFFERED="1")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_python(code: str, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    script = cwd / "app.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done


def run_shell(command: str, cwd: Path, env: Mapping[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


class Background:
    """A long-running command (a server), its output collected line by line."""

    def __init__(self, command: str, cwd: Path, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, after: int = 0) -> int:
        """Index of the first output line matching ``pattern`` (waiting for it to appear)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for i, line in enumerate(self.lines[:]):
                if i >= after and re.search(pattern, line):
                    return i
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} in the output:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextmanager
def background(command: str, cwd: Path, env: Mapping[str, str]) -> Iterator[Background]:
    proc = Background(command, cwd, env)
    try:
        yield proc
    finally:
        proc.stop()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def test_application_developers_quick_start(tmp_path: Path) -> None:
    out = run_python(quick_start("application developers", "python"), tmp_path, user_env(tmp_path))
    hints, *mermaid = out.stdout.strip().splitlines()
    assert hints.startswith("Hints(app='doc-qa', run_id=") and "deadline_s=30" in hints
    graph = "\n".join(mermaid)
    assert graph.startswith("flowchart LR")
    assert '"search (retriever)' in graph and '"answer (llm)' in graph
    assert (tmp_path / ".hermes" / "hermes.db").is_file()  # the embedded store it configured


REPORT_APP = """
from typing import TypedDict

from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from hermes_langgraph import HermesCallbackHandler, chat_openai_kwargs

class Report(TypedDict, total=False):
    text: str

def step(name):
    def node(state: Report) -> Report:
        return {"text": llm.invoke(name + ": " + state["text"]).content}
    return node

llm = ChatOpenAI(base_url="SERVER/v1", model="llama-70b", api_key="-", max_tokens=96,
                 **chat_openai_kwargs(engine="sglang"))
g = StateGraph(Report)
names = ["outline", "research", "write", "edit"]
for name in names:
    g.add_node(name, step(name))
for a, b in zip([START, *names], [*names, END]):
    g.add_edge(a, b)
graph = g.compile()
for i in range(3):
    graph.invoke({"text": f"report {i}"},
                 config={"callbacks": [HermesCallbackHandler(app="report")]})
"""
"""A second, bigger app (four model calls of 96 tokens on the SGLang upstream), written the way
the LangGraph quick start says, so the server has two apps to rank."""


def _level(record: Mapping[str, Any], engine: str) -> int:
    """The rank level (0 = most urgent) an engine-native priority stands for."""
    priority = record["priority"]
    assert isinstance(priority, int)
    return PRIORITY_LEVELS - 1 - priority if engine == "sglang" else priority


def _first_call_of_last_run(records: list[dict[str, Any]], app: str) -> dict[str, Any]:
    mine = [r for r in records if r["headers"].get("x-hermes-app") == app]
    last_run = mine[-1]["headers"]["x-hermes-run"]
    return next(r for r in mine if r["headers"]["x-hermes-run"] == last_run)


def _levels(records: list[dict[str, Any]], engine: str) -> list[tuple[str, int]]:
    """(unit, level) of each call, for failure messages."""
    return [(r["headers"].get("x-hermes-unit"), _level(r, engine)) for r in records]


@pytest.mark.slow
def test_langgraph_app_through_the_platform_gateway_is_learned_at_the_server(
    tmp_path: Path,
) -> None:
    env = user_env(tmp_path)
    small, big, port = free_port(), free_port(), free_port()
    server = f"http://127.0.0.1:{port}"
    platform = substitute(
        quick_start("platform teams", "bash"),
        {
            "http://vllm-small:8000": f"http://127.0.0.1:{small}",
            "http://sglang-big:30000": f"http://127.0.0.1:{big}",
            "--port 8700": f"--port {port}",
            "http://127.0.0.1:8700": server,
        },
    )
    serve, *after = shell_commands(platform)
    assert serve.startswith("hermes serve ")
    langgraph_app = substitute(
        quick_start("LangGraph users", "python"), {"http://127.0.0.1:8700": server}
    )
    engines = (
        f"hermes sim-engine --port {small} --model my-model --priority",
        f"hermes sim-engine --port {big} --model llama-70b --priority --higher-priority-first",
    )
    with (
        background(engines[0], tmp_path, env) as vllm,
        background(engines[1], tmp_path, env) as sglang,
    ):
        vllm.wait_for(f"on http://127.0.0.1:{small}/v1")
        sglang.wait_for(f"on http://127.0.0.1:{big}/v1")
        with background(serve, tmp_path, env) as hermes_serve:
            at = hermes_serve.wait_for(r"hermes scheduler listening on http://127\.0\.0\.1:\d+")
            hermes_serve.wait_for("admission backends", after=at)
            assert (tmp_path / ".hermes" / "server.db").is_file()  # ~ is the user's home
            startup = "\n".join(hermes_serve.lines[at : at + 3])
            assert f"2 upstreams: small (vllm at http://127.0.0.1:{small}/v1" in startup
            assert f"big (sglang at http://127.0.0.1:{big}/v1" in startup
            assert "admission backends: none" in startup and "0 backends" not in startup

            # The LangGraph quick start, as written: no hermes.configure anywhere.
            run_python(langgraph_app, tmp_path, env)
            (tmp_path / "report").mkdir()
            run_python(REPORT_APP.replace("SERVER", server), tmp_path / "report", env)

            listed = run_shell(after[0], tmp_path, env)  # hermes graph list --server ...
            rows = {ln.split()[1]: ln.split() for ln in listed.splitlines() if "│" in ln}
            assert rows["doc-qa"][3] == "3" and rows["report"][3] == "3", listed
            run_shell(after[1], tmp_path, env)  # hermes graph export --format png ...
            assert (tmp_path / "doc-qa.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            apps = get_json(f"{server}/v1/apps")["apps"]
            assert {a["app"]: a["runs"] for a in apps} == {"doc-qa": 3, "report": 3}
            doc = get_json(f"{server}/v1/apps/doc-qa/graph")
            assert {n["id"] for n in doc["nodes"]} >= {"draft", "review"}
            # HERMES_SCHEDULER_URL works where --server does.
            listed = run_shell(
                "hermes graph list", tmp_path, {**env, "HERMES_SCHEDULER_URL": server}
            )
            assert "doc-qa" in listed and "report" in listed

        seen_small = get_json(f"http://127.0.0.1:{small}/debug/requests")["requests"]
        seen_big = get_json(f"http://127.0.0.1:{big}/debug/requests")["requests"]
    assert isinstance(seen_small, list) and isinstance(seen_big, list)
    # Every call went through the gateway and reached its engine with a native priority.
    assert len(seen_small) == 3 * 2 and len(seen_big) == 3 * 4
    assert all(isinstance(r["priority"], int) for r in [*seen_small, *seen_big])
    # Ranks differ between apps: the short app's first call is more urgent than the long one's.
    doc_qa = _level(_first_call_of_last_run(seen_small, "doc-qa"), "vllm")
    report = _level(_first_call_of_last_run(seen_big, "report"), "sglang")
    assert doc_qa < report, (_levels(seen_small, "vllm"), _levels(seen_big, "sglang"))
