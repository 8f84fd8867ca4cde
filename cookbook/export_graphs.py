"""Recipe: export learned graphs for a platform team (capacity planning, reviews, dashboards).

Learns the graph of a small app in embedded mode (decorators, SQLite store in a temporary
directory), then exports it with the CLI, exactly as you would in a shell:

    hermes graph export --app rag-qa --format json|dot|mermaid|png [--out FILE] --store URL
    hermes graph export --app rag-qa --format mermaid --server http://127.0.0.1:8700

first from the store file (JSON and PNG files, DOT on stdout), then from a running
``hermes serve`` over that store (Mermaid, and the ``hermes graph list`` table; pass
``--api-key`` / ``HERMES_API_KEY`` when the server has keys: graphs are per tenant). JSON
follows ``hermes_sdk/graph/schema/pdgraph.schema.json`` (schema_version 1); DOT renders with
Graphviz, Mermaid in GitHub/GitLab markdown; PNG needs a file (``--out``).

Run: ``python cookbook/export_graphs.py`` (five CLI calls, run concurrently; files go to a
temporary directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import PIPE

import hermes_sdk as hermes

APP = "rag-qa"
HERMES = [sys.executable, "-m", "hermes_sdk"]  # the `hermes` command


@hermes.retriever
async def retrieve(question: str) -> list[str]:
    await asyncio.sleep(0.01)
    return [question] * 3


@hermes.llm(backend="gpu")
async def answer(docs: list[str]) -> str:
    await asyncio.sleep(0.02)
    hermes.record(input_tokens=120 * len(docs), output_tokens=60)
    return "..."


async def learn(runs: int) -> None:
    for i in range(runs):
        async with hermes.run(APP, deadline_s=2.0):
            docs = await retrieve(f"q{i}")
            if i % 4 == 0:  # a quarter of the questions need a second retrieval
                docs += await retrieve(f"q{i} more")
            await answer(docs)


def hermes_cli(*commands: list[str]) -> list[str]:
    """Run several ``hermes ARGS`` commands at once; what each printed (raises if one fails)."""
    procs = [subprocess.Popen([*HERMES, *args], stdout=PIPE, stderr=PIPE, text=True)
             for args in commands]  # fmt: skip
    outputs = []
    for proc, args in zip(procs, commands, strict=True):
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, args, out, err)
        outputs.append(out + err)  # `wrote FILE` may go to stderr
    return outputs


def export(fmt: str, *source: str) -> list[str]:
    """``hermes graph export --app APP --format FMT SOURCE...`` as an argument list."""
    return ["graph", "export", "--app", APP, "--format", fmt, *source]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{tmp}/hermes.db"
        hermes.configure(store=store)
        asyncio.run(learn(20))
        hermes.configure(store="memory://")  # flushes and closes the store file
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        serve = [*HERMES, "serve", "--port", str(port), "--store", store]
        server = subprocess.Popen(serve, stdout=subprocess.DEVNULL)  # starts meanwhile
        try:
            for text in hermes_cli(
                export("json", "--store", store, "--out", f"{tmp}/{APP}.json"),
                export("png", "--store", store, "--out", f"{tmp}/{APP}.png"),
                export("dot", "--store", store),  # text formats go to stdout without --out
            ):
                print(text.strip())
            doc = json.loads(Path(f"{tmp}/{APP}.json").read_text())
            nodes = sorted(n["id"] for n in doc["nodes"])
            print(f"json: schema_version {doc['schema_version']}, {doc['runs']} runs, {nodes}")
            for _ in range(600):  # wait until the server accepts connections (at most ~30 s)
                if server.poll() is not None:
                    raise RuntimeError(f"hermes serve exited with status {server.returncode}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.05)
            else:
                raise TimeoutError("hermes serve did not start")
            url = f"http://127.0.0.1:{port}"
            mermaid, table = hermes_cli(
                export("mermaid", "--server", url), ["graph", "list", "--server", url]
            )
            print("from the server:", mermaid, table, sep="\n")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
