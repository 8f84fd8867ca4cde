"""Recipe: export learned graphs for a platform team (capacity planning, reviews, dashboards).

Learns the graph of a small app in embedded mode (decorators, SQLite store in a temporary
directory), then exports it with the CLI, exactly as you would in a shell:

    hermes graph export --app rag-qa --format json|dot|mermaid|png [--out FILE] --store URL
    hermes graph export --app rag-qa --format mermaid --server http://127.0.0.1:8700

first from the store file, then from a running ``hermes serve`` over that store (use
``--api-key`` / ``HERMES_API_KEY`` when the server has keys: graphs are per tenant). JSON
follows ``hermes_sdk/graph/schema/pdgraph.schema.json`` (schema_version 1); DOT renders with
Graphviz, Mermaid in GitHub/GitLab markdown; PNG needs a file (``--out``).

Run: ``python cookbook/export_graphs.py`` (a few CLI calls; the files go to a temporary dir).
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


def hermes_cli(*args: str) -> str:
    """Run ``hermes ARGS`` and return what it printed (raises if it fails)."""
    done = subprocess.run([*HERMES, *args], capture_output=True, text=True, check=True)
    return done.stdout + done.stderr  # `wrote FILE` may go to stderr


def export(fmt: str, *source: str, out: str | None = None) -> str:
    """``hermes graph export --app APP --format FMT [--out FILE] SOURCE...``."""
    return hermes_cli("graph", "export", "--app", APP, "--format", fmt, *source,
                      *(["--out", out] if out else []))  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{tmp}/hermes.db"
        hermes.configure(store=store)
        asyncio.run(learn(20))
        hermes.configure(store="memory://")  # flushes and closes the store file
        for fmt in ("json", "png"):  # files for the platform team
            print(export(fmt, "--store", store, out=f"{tmp}/{APP}.{fmt}").strip())
        doc = json.loads(Path(f"{tmp}/{APP}.json").read_text())
        nodes = sorted(n["id"] for n in doc["nodes"])
        print(f"json: schema_version {doc['schema_version']}, {doc['runs']} runs, nodes {nodes}")
        print(export("dot", "--store", store))  # text formats go to stdout without --out
        print(export("mermaid", "--store", store))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        serve = [*HERMES, "serve", "--port", str(port), "--store", store]
        server = subprocess.Popen(serve, stdout=subprocess.DEVNULL)
        try:
            for _ in range(400):  # wait until it accepts connections (at most ~20 s)
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port}"
            print("from the server:", export("mermaid", "--server", url), sep="\n")
            print(hermes_cli("graph", "list", "--server", url))
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
