"""Recipe: call vLLM/SGLang engines directly, with Hermes' rank as the engine-native priority.

No gateway: each model call passes ``**hermes.openai_kwargs(engine=...)`` to the official
``openai`` client, which adds the ``X-Hermes-*`` headers and ``extra_body={"priority": p}``.
vLLM (started with ``--scheduling-policy priority``) serves lower values first, SGLang higher
values first: ``engine="vllm"`` / ``engine="sglang"`` encode the same rank in each convention
(``hermes.current_hints().engine_priority(engine)`` gives the number). Two
``hermes sim-engine`` subprocesses stand in for them (``--priority``, and
``--priority --higher-priority-first``); their ``GET /debug/requests`` shows the priority each
request carried. Two apps learn their graphs (a one-call Q&A, a four-call research loop); a new
Q&A run, predicted to finish sooner, then gets the more urgent priority on both engines.

Run: ``python cookbook/engine_priority.py`` (a few seconds; engines stopped at the end).
Needs: ``pip install openai`` (in the dev environment already).
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

APPS = (("quick-qa", 1), ("research", 4))  # (app, LLM calls per run)
ENGINE_FLAGS = {"vllm": ["--priority"], "sglang": ["--priority", "--higher-priority-first"]}


@contextlib.contextmanager
def sim_engines() -> Iterator[dict[str, str]]:
    """One ``hermes sim-engine`` per convention on free ports; yields their origins."""
    origins, procs = {}, []
    try:
        for engine, flags in ENGINE_FLAGS.items():
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            argv = [sys.executable, "-m", "hermes_sdk", "sim-engine", *flags, "--port", str(port)]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
            origins[engine] = f"http://127.0.0.1:{port}"
        for proc, origin in zip(procs, origins.values(), strict=True):
            for _ in range(600):  # wait until it answers (at most ~30 s)
                if proc.poll() is not None:
                    raise RuntimeError(f"hermes sim-engine exited with status {proc.returncode}")
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(origin + "/health", timeout=1).close()
                    break
                time.sleep(0.05)
            else:
                raise TimeoutError("hermes sim-engine did not start")
        yield origins
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


async def app_run(client: openai.AsyncOpenAI, engine: str, app: str, calls: int) -> int | None:
    """One run of ``app`` making ``calls`` sequential LLM calls; returns its first priority."""

    @hermes.llm(name="generate", backend=engine)
    async def generate(step: int) -> object:
        return await client.chat.completions.create(
            model="sim-model",
            messages=[{"role": "user", "content": f"{app}: step {step}"}],
            max_tokens=12,
            **hermes.openai_kwargs(engine=engine),  # X-Hermes-* headers + extra_body priority
        )

    async with hermes.run(app, deadline_s=30.0):
        hints = hermes.current_hints()  # the run's hints before its first call
        for step in range(calls):
            await generate(step)  # usage (tokens) is read from the response
    return hints.engine_priority(engine) if hints else None


async def main() -> None:
    hermes.configure(store="memory://")  # embedded, in memory: nothing written to disk
    with sim_engines() as origins:
        clients = {
            e: openai.AsyncOpenAI(base_url=o + "/v1", api_key="-") for e, o in origins.items()
        }
        for _ in range(6):  # learn both apps' graphs (on the vLLM engine)
            await asyncio.gather(*(app_run(clients["vllm"], "vllm", a, n) for a, n in APPS))
        hermes.flush()
        for engine, client in clients.items():
            for app, calls in APPS:
                priority = await app_run(client, engine, app, calls)
                print(f"{engine:6s} new {app:8s} run: first call's priority {priority}")
            with urllib.request.urlopen(origins[engine] + "/debug/requests", timeout=5) as resp:
                records = json.load(resp)["requests"]
            seen = [r for r in records if r["headers"].get("x-hermes-app") == "quick-qa"][-1]
            order = "lower first" if engine == "vllm" else "higher first"
            print(f"{engine:6s} engine saw app={seen['headers']['x-hermes-app']} "
                  f"priority={seen['priority']} ({order})")  # fmt: skip
            await client.close()


if __name__ == "__main__":
    asyncio.run(main())
