"""README's "Quick start: no infrastructure at all", run as written against `hermes sim-engine`.

The shell block's engine command is run with its own arguments plus ``--port`` (a free port, so
parallel test runs do not collide), its ``export`` line becomes the environment of the Python
block (with that port), and the Python block runs unchanged in a fresh interpreter.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
HERMES = str(Path(sys.executable).with_name("hermes"))
TITLE = "## Quick start: no infrastructure at all"


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(TITLE)
    end = text.find("\n## ", start + len(TITLE))
    return text[start : end if end != -1 else len(text)]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.slow
def test_no_infrastructure_quick_start_runs_as_written(tmp_path: Path) -> None:
    (shell,) = _blocks(_section(), "bash")
    (program,) = _blocks(_section(), "python")
    engine_line, export_line = (line for line in shell.splitlines() if line.strip())
    engine_args = shlex.split(engine_line.removesuffix("&").strip())
    assert engine_args[:2] == ["hermes", "sim-engine"] and "--priority" in engine_args
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HERMES_"))}
    for assignment in shlex.split(export_line)[1:]:
        key, value = assignment.split("=", 1)
        env[key] = value.replace(":8000", f":{port}")
    env.update(HERMES_STORE=f"sqlite:///{tmp_path}/hermes.db", HOME=str(tmp_path))
    script = tmp_path / "quick_start.py"
    script.write_text(program)
    engine = subprocess.Popen(
        [HERMES, *engine_args[1:], "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert engine.poll() is None and time.monotonic() < deadline, "engine down"
                time.sleep(0.05)
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
        )
        records = httpx.get(f"http://127.0.0.1:{port}/debug/requests").json()["requests"]
    finally:
        engine.terminate()
        engine.wait(timeout=10)
    assert done.returncode == 0, done.stderr
    assert "without any unit" not in done.stderr
    mermaid = done.stdout
    assert "plan" in mermaid and "answer" in mermaid and "flowchart" in mermaid
    assert [r["headers"]["x-hermes-unit"] for r in records] == ["plan", "answer"] * 3
    assert {r["headers"]["x-hermes-app"] for r in records} == {"doc-qa"}
    assert all(r["headers"].get("x-hermes-rank") for r in records)
    assert all(r["completion_tokens"] > 0 for r in records)
