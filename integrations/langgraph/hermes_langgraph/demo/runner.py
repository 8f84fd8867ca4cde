"""`hermes demo`: the same seeded mix of LangGraph apps under FCFS, then under Hermes.

Two simulated OpenAI-compatible engines (a fast one every app shares, a slower one with a cold
start) run as child processes; for each policy a `hermes serve` scheduler with its gateway fronts
them, on free loopback ports, with a SQLite store in the output directory. The apps are real
LangGraph graphs (:mod:`hermes_langgraph.demo.apps`) calling ``ChatOpenAI(base_url=gateway)`` with
:class:`~hermes_langgraph.HermesCallbackHandler` and the hint hook, exactly as a user would wire
them. The FCFS pass also teaches the scheduler every app's PDGraph (both passes share one store),
so the Hermes pass ranks apps with graphs learned online, never with the generator's truth.

The engines batch as production engines do (16 requests per step, priority scheduling on) and the
gateway admits a batch's worth to each (``max_inflight`` = batch); the rest wait in the gateway's
admission queue, in the policy's order. Each pass also records each engine's load
(:mod:`hermes_langgraph.demo.load`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
from langchain_openai import ChatOpenAI

import hermes_sdk as hermes
from hermes_langgraph import (
    HermesCallbackHandler,
    async_httpx_request_hook,
    async_httpx_response_hook,
)
from hermes_langgraph.demo.apps import DEMO_APPS
from hermes_langgraph.demo.classes import per_class_vs_baseline
from hermes_langgraph.demo.load import EngineLoad, clear_records, measure
from hermes_langgraph.demo.processes import ChildProcesses, free_port

log = logging.getLogger("hermes_langgraph.demo")

FAST_MODEL = "fast-llm"
SLOW_MODEL = "slow-llm"


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Knobs of one demo run (seconds, counts)."""

    apps: int = 160
    arrival_rate: float = 6.0
    """Apps started per second (Poisson). The mix asks ~58 tokens per app of the shared engine,
    whose full batch decodes 16 / 0.056 s = 286 tokens/s: 6/s offers it ~1.1x that, so a queue
    builds at the gateway over the ~27 s of arrivals (4.5/s: 0.83x, almost no queue)."""
    policies: tuple[str, ...] = ("fcfs", "gittins")
    seed: int = 7
    max_batch: int = 16
    """Requests each engine decodes per step (its continuous batch, ``sim-engine --max-batch``)."""
    max_inflight: int | None = None
    """Requests the gateway lets into each engine at once (None: the engine's batch); the rest
    wait in the scheduler's admission queue, in the policy's order."""
    step_s: float = 0.04
    """Base decoding step of the fast engine; the slow one takes twice as long."""
    step_per_request_s: float = 0.001
    """What each request in the batch adds to a step (the slow engine: twice as much): a full
    batch of 16 steps in 56 ms, 1.4x a lone request's 41 ms, as a memory-bound decode does."""
    engine_priority: bool = True
    """Engines order their waiting queue by the ``priority`` the gateway derives from the rank
    (``sim-engine --priority``, vLLM's ``--scheduling-policy priority``)."""
    slow_cold_start_s: float = 1.0
    out: Path = field(default_factory=lambda: Path("hermes-demo"))


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """App completion times (seconds) under one policy."""

    policy: str
    apps: int
    completed: int
    failed: int
    mean: float
    p95: float
    per_app: dict[str, float]
    times_s: tuple[float, ...] = ()
    load: tuple[EngineLoad, ...] = ()
    """Each engine's batch occupancy and queues during this pass."""


@dataclass(frozen=True, slots=True)
class PlannedApp:
    """One app of the seeded plan: which graph, when it starts, its control-flow seed."""

    name: str
    start_s: float
    seed: int


def plan(config: DemoConfig) -> list[PlannedApp]:
    """The seeded arrival plan every policy replays (Poisson arrivals, weighted app mix)."""
    rng = random.Random(config.seed)
    names = [a.name for a in DEMO_APPS]
    weights = [a.weight for a in DEMO_APPS]
    t, out = 0.0, []
    for i in range(config.apps):
        out.append(PlannedApp(rng.choices(names, weights)[0], t, config.seed * 100_003 + i))
        t += rng.expovariate(config.arrival_rate)
    return out


def _chat_factory(gateway: str, client: httpx.AsyncClient) -> Callable[[int, str], ChatOpenAI]:
    def build(max_tokens: int, tier: str) -> ChatOpenAI:
        return ChatOpenAI(
            base_url=f"{gateway}/v1",
            api_key="demo",  # type: ignore[arg-type]
            model=SLOW_MODEL if tier == "slow" else FAST_MODEL,
            max_tokens=max_tokens,  # type: ignore[call-arg]
            http_async_client=client,
            max_retries=0,
            timeout=120,
        )

    return build


async def _run_apps(
    planned: Sequence[PlannedApp],
    gateway: str,
    tick: Callable[[], None],
) -> tuple[list[tuple[str, float]], int]:
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(
        limits=limits,
        timeout=120,
        event_hooks={
            "request": [async_httpx_request_hook(engine="openai")],
            "response": [async_httpx_response_hook()],
        },
    ) as client:
        chat = _chat_factory(gateway, client)
        graphs = {a.name: a.build(chat) for a in DEMO_APPS}
        handlers = {a.name: HermesCallbackHandler(app=a.name) for a in DEMO_APPS}
        t0 = time.perf_counter()
        done: list[tuple[str, float]] = []
        failed = 0

        async def one(p: PlannedApp) -> None:
            nonlocal failed
            await asyncio.sleep(max(0.0, p.start_s - (time.perf_counter() - t0)))
            start = time.perf_counter()
            try:
                await graphs[p.name].ainvoke(
                    {"question": f"question {p.seed}", "seed": p.seed},
                    config={"callbacks": [handlers[p.name]]},
                )
                done.append((p.name, time.perf_counter() - start))
            except Exception as exc:
                failed += 1
                if failed == 1:
                    log.warning("app %s failed: %r", p.name, exc, exc_info=True)
            tick()

        await asyncio.gather(*(one(p) for p in planned))
    return done, failed


def _outcome(
    policy: str,
    planned: int,
    done: list[tuple[str, float]],
    failed: int,
    load: Sequence[EngineLoad] = (),
) -> PolicyOutcome:
    times = np.array([t for _, t in done], dtype=np.float64)
    per_app: dict[str, float] = {}
    for name in sorted({n for n, _ in done}):
        per_app[name] = float(np.mean([t for n, t in done if n == name]))
    return PolicyOutcome(
        policy=policy,
        apps=planned,
        completed=len(done),
        failed=failed,
        mean=float(times.mean()) if times.size else float("nan"),
        p95=float(np.quantile(times, 0.95)) if times.size else float("nan"),
        per_app=per_app,
        times_s=tuple(float(t) for t in times),
        load=tuple(load),
    )


def run_demo(
    config: DemoConfig, *, on_progress: Callable[[str, int, int], None] | None = None
) -> tuple[list[PolicyOutcome], list[Path], list[int]]:
    """Run each policy on the same plan; returns outcomes, graph files written, child pids."""
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    planned = plan(config)
    _exit_on_sigterm()
    store_url = f"sqlite:///{(out / 'hermes.db').resolve()}"
    outcomes: list[PolicyOutcome] = []
    graphs: list[Path] = []
    with ChildProcesses(out / "logs") as children:
        fast_port, slow_port = free_port(), free_port()
        engine_args = ["--max-batch", str(config.max_batch), "--seed", str(config.seed)]
        engine_args += ["--priority"] if config.engine_priority else []
        inflight = config.max_inflight or config.max_batch
        children.start(
            "engine-fast",
            [
                "sim-engine",
                "--port",
                str(fast_port),
                "--model",
                FAST_MODEL,
                "--step-s",
                str(config.step_s),
                "--step-per-request-s",
                str(config.step_per_request_s),
                *engine_args,
            ],
            f"http://127.0.0.1:{fast_port}/health",
        )
        children.start(
            "engine-slow",
            [
                "sim-engine",
                "--port",
                str(slow_port),
                "--model",
                SLOW_MODEL,
                "--step-s",
                str(2 * config.step_s),
                "--step-per-request-s",
                str(2 * config.step_per_request_s),
                "--cold-start-s",
                str(config.slow_cold_start_s),
                "--keep-alive-s",
                "5",
                *engine_args,
            ],
            f"http://127.0.0.1:{slow_port}/health",
        )
        full_step_s = config.step_s + config.step_per_request_s * config.max_batch
        engines = {  # upstream -> (engine URL, seconds of a full batch's step)
            "fast": (f"http://127.0.0.1:{fast_port}", full_step_s),
            "slow": (f"http://127.0.0.1:{slow_port}", 2 * full_step_s),
        }
        upstreams = [
            f"fast=http://127.0.0.1:{fast_port},engine=vllm,"
            f"max_inflight={inflight},models={FAST_MODEL}",
            f"slow=http://127.0.0.1:{slow_port},engine=vllm,"
            f"max_inflight={inflight},models={SLOW_MODEL}",
        ]
        for policy in config.policies:
            port = free_port()
            gateway = f"http://127.0.0.1:{port}"
            args = ["serve", "--port", str(port), "--policy", policy, "--store", store_url]
            for flag in upstreams:
                args += ["--upstream", flag]
            pid = children.start(f"scheduler-{policy}", args, f"{gateway}/healthz")
            hermes.configure(scheduler_url=gateway, store="memory://")
            count = 0

            def tick(policy: str = policy) -> None:
                nonlocal count
                count += 1
                if on_progress is not None:
                    on_progress(policy, count, len(planned))

            if on_progress is not None:  # this policy's pass starts now (its own clock)
                on_progress(policy, 0, len(planned))
            for url, _ in engines.values():
                clear_records(url)
            started = time.monotonic()  # CLOCK_MONOTONIC: the engines' record clock too
            done, failed = asyncio.run(_run_apps(planned, gateway, tick))
            window = (started, started + planned[-1].start_s, time.monotonic())
            load = measure(engines, gateway, config.max_batch, window)
            hermes.flush(timeout_s=10.0)
            outcomes.append(_outcome(policy, len(planned), done, failed, load))
            if policy == config.policies[-1]:  # the store is shared: the last one has them all
                graphs = _export_graphs(gateway, out)
            children.stop(pid)
        pids = children.pids
    hermes.configure(store="memory://")
    return outcomes, graphs, pids


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so the child processes are stopped on the way out."""
    if threading.current_thread() is threading.main_thread():

        def stop(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, stop)


def _export_graphs(gateway: str, out: Path) -> list[Path]:
    """Fetch every learned graph from the scheduler as JSON and Mermaid into ``out/graphs``."""
    folder = out / "graphs"
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with httpx.Client(base_url=gateway, timeout=10) as client:
        apps = client.get("/v1/apps").raise_for_status().json()
        for entry in apps.get("apps", []):
            name = entry["app"] if isinstance(entry, dict) else str(entry)
            for fmt, suffix in (("json", "json"), ("mermaid", "mmd")):
                resp = client.get(f"/v1/apps/{name}/graph", params={"format": fmt})
                resp.raise_for_status()
                path = folder / f"{name}.{suffix}"
                path.write_text(resp.text)
                written.append(path)
    return written


def summary_json(
    outcomes: Sequence[PolicyOutcome], graphs: Sequence[Path], pids: Sequence[int]
) -> str:
    """The `--json` document: per-policy results (``per_app``: mean completion per app kind, s;
    ``per_app_vs_fcfs``: its ratio to FCFS; ``load``: each engine's batch occupancy and queues),
    graph files written, child pids (all stopped)."""
    ratios = per_class_vs_baseline(outcomes)
    skip = ("policy", "times_s", "load")
    policies = {
        o.policy: {
            **{k: v for k, v in asdict(o).items() if k not in skip},
            "per_app_vs_fcfs": {n: round(r, 4) for n, r in ratios[o.policy].items()},
            "load": {x.engine: {**asdict(x), "utilisation": x.utilisation} for x in o.load},
        }
        for o in outcomes
    }
    return json.dumps(
        {"policies": policies, "graphs": [str(p) for p in graphs], "processes": list(pids)}
    )
