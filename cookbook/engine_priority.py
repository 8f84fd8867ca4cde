"""Recipe: call a vLLM/SGLang engine directly, with Hermes' rank as the engine-native priority.

No gateway: each model call passes ``**hermes.openai_kwargs()`` to the official ``openai``
client, which adds the ``X-Hermes-*`` headers and ``extra_body={"priority": p}``. vLLM started
with ``--scheduling-policy priority`` serves lower values first; SGLang serves higher values first
(``openai_kwargs(engine="sglang")`` / ``hints.engine_priority("sglang")`` flips the scale).
Here ``hermes sim-engine --priority`` stands in for vLLM; its ``GET /debug/requests`` shows the
priority each request carried. Two apps learn their graphs (a one-call Q&A, a four-call
research loop); the short app then gets the more urgent (lower) vLLM priority.

Run: ``python cookbook/engine_priority.py`` (about three seconds; the engine is a subprocess
on a free port, stopped at the end).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import openai

import hermes_sdk as hermes


@contextlib.contextmanager
def sim_engine() -> Iterator[str]:
    """``hermes sim-engine --priority`` on a free port; yields its origin, stops it on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "hermes_sdk", "sim-engine", "--priority", "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    origin = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # wait until it answers (at most ~30 s)
            if proc.poll() is not None:
                raise RuntimeError(f"hermes sim-engine exited with status {proc.returncode}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(origin + "/health", timeout=1).close()
                break
            time.sleep(0.05)
        else:
            raise TimeoutError("hermes sim-engine did not start")
        yield origin
    finally:
        proc.terminate()
        proc.wait(10)


async def app_run(client: openai.AsyncOpenAI, app: str, calls: int) -> dict[str, object]:
    """One run of ``app`` making ``calls`` sequential LLM calls; returns its first hints."""

    @hermes.llm(name="generate", backend="vllm")
    async def generate(step: int) -> object:
        return await client.chat.completions.create(
            model="sim-model",
            messages=[{"role": "user", "content": f"{app}: step {step}"}],
            max_tokens=12,
            **hermes.openai_kwargs(engine="vllm"),  # X-Hermes-* headers + extra_body priority
        )

    async with hermes.run(app, deadline_s=30.0):
        hints = hermes.current_hints()  # the run's hints before its first call
        assert hints is not None
        seen: dict[str, object] = {
            "rank_s": round(hints.rank_s or 0.0, 3),
            "vllm": hints.engine_priority("vllm"),
            "sglang": hints.engine_priority("sglang"),  # the same rank on SGLang's scale
        }
        for step in range(calls):
            await generate(step)  # usage (tokens) is read from the response
    return seen


async def main() -> None:
    hermes.configure(store="memory://")  # embedded, in memory: nothing written to disk
    with sim_engine() as origin:
        client = openai.AsyncOpenAI(base_url=origin + "/v1", api_key="not-needed")
        for _ in range(6):  # learn both apps' graphs
            await asyncio.gather(app_run(client, "quick-qa", 1), app_run(client, "research", 4))
        hermes.flush()
        for app, calls in (("quick-qa", 1), ("research", 4)):
            print(f"{app:9s} new run hints: {await app_run(client, app, calls)}")
        with urllib.request.urlopen(origin + "/debug/requests", timeout=5) as resp:
            records = json.load(resp)["requests"]
        await client.close()
    for rec in records[-5:]:  # what the engine saw for the last runs
        print(f"engine saw app={rec['headers'].get('x-hermes-app')} priority={rec['priority']}")


if __name__ == "__main__":
    asyncio.run(main())
