"""End to end with real processes: `hermes sim-engine` behind `hermes serve --upstream`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from hermes_sdk.client.hints import Hints
from hermes_sdk.client.openai_kwargs import openai_kwargs

HERMES = str(Path(sys.executable).with_name("hermes"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _running(args: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise AssertionError(f"{args[1]} did not start: {err}") from None
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_cli_engine_behind_cli_gateway(tmp_path: Path) -> None:
    e_port, g_port = _free_port(), _free_port()
    engine = [HERMES, "sim-engine", "--port", str(e_port), "--model", "m", "--priority"]
    engine += ["--step-s", "0.001"]
    upstream = f"sim=http://127.0.0.1:{e_port}/v1,engine=vllm,max_inflight=2"
    server = [HERMES, "serve", "--port", str(g_port), "--store", f"sqlite:///{tmp_path}/h.db"]
    server += ["--upstream", upstream]
    with _running(engine, e_port), _running(server, g_port):
        client = OpenAI(base_url=f"http://127.0.0.1:{g_port}/v1", api_key="k", max_retries=0)
        hints = Hints(app="qa", run_id="r1", unit="draft", rank_s=0.01)
        out = client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=3,
            **openai_kwargs(hints),
        )
        assert out.usage is not None and out.usage.completion_tokens == 3
        chunks = list(
            client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=3,
                stream=True,
            )
        )
        assert sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) == 3
        assert [m.id for m in client.models.list().data] == ["m"]
        client.close()
        seen = httpx.get(f"http://127.0.0.1:{e_port}/debug/requests").json()["requests"]
    assert seen[0]["headers"]["x-hermes-run"] == "r1"
    # the gateway sent its own priority (from its rank), not the client's level 0
    assert all(isinstance(r["priority"], int) for r in seen)
    assert seen[0]["priority"] != hints.engine_priority("vllm")
