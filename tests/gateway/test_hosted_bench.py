"""The hosted-API benchmark's harness (benchmarks/bench_hosted.py): its runs are the light suite
offering the load asked for, an app whose call the openai client gives up on counts as failed
(not as a fast completion), and a run through the gateway teaches it the app's graph."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from hermes_sdk.server.upstreams import UpstreamConfig
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine
from hermes_sdk.sim.provider import RateLimitConfig
from hermes_sdk.sim.workloads.light import light_apps
from tests.gateway.support import FAST_ENGINE, StartGateway

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_hosted import MODEL, Driver
from hosted_workload import Run, Stage, workload


def test_runs_are_the_light_suite_offering_the_load_asked_for() -> None:
    tpm, load, duration = 300_000, 0.9, 200.0
    runs = workload(3, tpm, load, duration, "m")
    offered = sum(r.tokens for r in runs)
    largest = max(r.tokens for r in runs)
    assert load * tpm / 60 * duration <= offered <= load * tpm / 60 * duration + largest
    assert all(0 <= r.arrival_s < duration for r in runs)
    assert [r.arrival_s for r in runs] == sorted(r.arrival_s for r in runs)
    assert {r.app for r in runs} == {str(a["name"]) for a in light_apps()}
    multi = [r for r in runs if sum(len(s.calls) for s in r.stages) > 1]
    assert len(multi) > len(runs) / 2  # mostly multi-call runs
    assert any(not s.calls and s.tool_s > 0 for r in runs for s in r.stages)  # tool steps
    assert workload(3, tpm, load, duration, "m") == runs  # seeded
    two = Run("x", "a", 0.0, (Stage("s", ((10, 100), (10, 200)), 0.0, "llm"),))
    tool = Run("y", "a", 0.0, (*two.stages, Stage("t", (), 1.5, "search")))
    assert (two.standalone_s(0.01), tool.standalone_s(0.01)) == (2.0, 3.5)  # longest call


async def test_a_call_the_client_gives_up_on_fails_the_run() -> None:
    """Ten parallel 900-token calls at a 1,000 tokens/s provider: the openai client's two
    retries cannot place them all, so the app breaks and the run is a failure."""
    config = SimEngineConfig(model=MODEL, **FAST_ENGINE)  # type: ignore[arg-type]
    limit = RateLimitConfig(tpm=60_000, window_s=1.0)
    async with serve_sim_engine(config, rate_limit=limit) as url:
        driver = Driver(url, None)
        run = Run("r1", "greedy", 0.0, (Stage("fan", ((895, 5),) * 10, 0.0, "llm"),))
        run_id, app, _, completion, elapsed, error = await driver.run(run, time.monotonic())
        await driver.http.aclose()
    assert (run_id, app, completion, error) == ("r1", "greedy", None, "RateLimitError")
    assert elapsed > 0.0
    assert driver.seen_429 >= 3  # a call's first try and its two retries, at least


async def test_a_run_through_the_gateway_is_learned_from_the_path_it_sends(
    stack: tuple[object, StartGateway],
) -> None:
    _, gateway = stack
    config = SimEngineConfig(model=MODEL, **FAST_ENGINE)  # type: ignore[arg-type]
    limit = RateLimitConfig(tpm=600_000, window_s=1.0)
    async with serve_sim_engine(config, rate_limit=limit) as url:
        gw = await gateway(UpstreamConfig("hosted", url, max_inflight=64, tpm=600_000))
        driver = Driver(gw.url, gw.url.removesuffix("/v1"))
        stages = (
            Stage("plan", ((40, 5),), 0.0, "llm"),
            Stage("search", (), 0.01, "search"),
            Stage("answer", ((60, 8), (30, 4)), 0.0, "llm"),
        )
        outcomes = [
            await driver.run(Run(f"r{i}", "qa", 0.0, stages), time.monotonic()) for i in range(3)
        ]
        await driver.http.aclose()
    assert all(o[3] is not None and o[5] is None for o in outcomes)
    graph = gw.scheduler.registry.get("qa", "default")
    assert graph is not None and graph.runs == 3
    assert {"plan", "search", "answer"} <= set(graph.nodes)
    assert graph.nodes["answer"].width.mean() == 2
    assert graph.nodes["answer"].output_tokens.quantile(1.0) == 8
    assert graph.nodes["search"].kind == "retriever"


def test_the_oracle_ranks_by_the_runs_true_remaining_tokens(tmp_path: Path) -> None:
    """The bench-only oracle order: a run's rank is its waiting tokens plus every later stage's,
    over TPM/60; it follows the run's stage from its requests' node and cost."""
    from hosted_oracle import OracleRanker, dump_runs

    def stage(node: str, *calls: tuple[int, int]) -> Stage:
        return Stage(node, calls, 0.0 if calls else 1.0, "llm" if calls else "search")

    long = Run(
        "long", "a", 0.0, (stage("plan", (100, 50)), stage("tool"), stage("act", (300, 100)))
    )
    short = Run("short", "b", 0.0, (stage("act", (300, 300)),))
    dump_runs([long, short], tmp_path / "runs.json")
    ranker = OracleRanker.load(tmp_path / "runs.json", tpm=60_000)  # 1,000 tokens a second
    keys = {r: ("default", r) for r in ("long", "short")}
    with (
        ranker.queued(keys["long"], "a", "plan", 150),
        ranker.queued(keys["short"], "b", "act", 600),
    ):
        assert ranker.rank(keys["long"], 0.0, 150) == (150 + 400) / 1000
        assert ranker.rank(keys["short"], 0.0, 600) == 600 / 1000
    with ranker.queued(keys["long"], "a", "act", 400):  # its last stage: only its own tokens
        assert ranker.rank(keys["long"], 0.0, 400) == 400 / 1000
    assert ranker.rank(("default", "unknown"), 0.0, 1) == float("inf")
