"""Recipe: decorators on a plain asyncio app (no framework), learning its graph in-process.

Shows ``@hermes.retriever`` / ``@hermes.llm`` / ``@hermes.tool`` on async functions, a
``hermes.run`` per request, an ``asyncio.gather`` fan-out (three retrievals in parallel form one
stage of width 3) and a draft/check loop (visits 1, 2, 3 of ``draft`` are separate graph states).
Embedded mode: runs are learned in this process and stored in SQLite in a temporary directory,
no service needed. At the end it prints the learned graph as Mermaid and the hints a new run
gets (rank and predicted remaining seconds), which is what you attach to backend requests.

Run: ``python cookbook/decorators_async.py [--runs 40]`` (about two seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile

import hermes_sdk as hermes

APP = "support-bot"


@hermes.retriever
async def search(shard: int, question: str) -> list[str]:
    await asyncio.sleep(0.005 + 0.002 * shard)  # a vector search on one shard
    return [f"doc {shard}.{i} about {question}" for i in range(2)]


@hermes.llm(backend="gpu-pool")
async def draft(question: str, docs: list[str], attempt: int) -> str:
    await asyncio.sleep(0.02)  # stands in for the model call
    hermes.record(input_tokens=40 * len(docs), output_tokens=30 + 10 * attempt)
    return f"answer #{attempt} to {question!r}"


@hermes.tool
async def check(answer: str, rng: random.Random) -> bool:
    await asyncio.sleep(0.003)  # e.g. a policy/grounding checker
    return rng.random() < 0.6


async def handle(question: str, rng: random.Random) -> str:
    """One user request = one run of APP: fan-out, then draft/check until it passes (max 3)."""
    async with hermes.run(APP, deadline_s=5.0):
        shards = await asyncio.gather(*(search(s, question) for s in range(3)))
        docs = [d for shard in shards for d in shard]
        answer = ""
        for attempt in range(1, 4):
            answer = await draft(question, docs, attempt)
            if await check(answer, rng):
                break
        return answer


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hermes.configure(store=f"sqlite:///{tmp}/hermes.db")  # embedded mode
        for start in range(0, runs, 8):  # eight concurrent requests at a time
            batch = range(start, min(start + 8, runs))  # each request has its own seeded dice
            await asyncio.gather(*(handle(f"q{i}", random.Random(i)) for i in batch))
        graph = hermes.graph(APP)  # waits until every finished run is learned
        print(f"learned {graph.runs} runs of {APP!r}")
        print(graph.to_mermaid())
        print(f"search fan-out width (mean): {graph.node_stats('search').width.mean():.1f}")
        for visit in (1, 3):  # the loop is learned per visit: the 3rd check always ends the run
            state = hermes.RunState("check", (("check", visit), ("draft", visit), ("search", 1)))
            print(f"P(next | check, visit {visit}):", graph.next_stage_probs(state))
        async with hermes.run(APP, deadline_s=5.0):
            print("hints of a new run:", hermes.current_hints())
        hermes.configure(store="memory://")  # closes the SQLite store before the dir goes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="requests to serve")
    asyncio.run(main(parser.parse_args().runs))
