"""`hermes demo`: the same seeded mix of LangGraph apps under FCFS, then under Hermes.

Two simulated OpenAI-compatible engines (a fast one every app shares, a slower one with a cold
start) run as child processes; for each policy a `hermes serve` scheduler with its gateway fronts
them, on free loopback ports, with a SQLite store in the output directory. The apps are real
LangGraph graphs (:mod:`hermes_langgraph.demo.apps`) calling ``ChatOpenAI(base_url=gateway)`` with
:class:`~hermes_langgraph.HermesCallbackHandler` and the hint hook, exactly as a user would wire
them. The FCFS pass also teaches the scheduler every app's PDGraph (both passes share one store),
so the Hermes pass ranks apps with graphs learned online, never with the generator's truth.
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
from hermes_langgraph.demo.processes import ChildProcesses, free_port

log = logging.getLogger("hermes_langgraph.demo")

FAST_MODEL = "fast-llm"
SLOW_MODEL = "slow-llm"


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Knobs of one demo run (seconds, counts)."""

    apps: int = 100
    arrival_rate: float = 3.2
    """Apps started per second (Poisson); the shared engine saturates around 3.5/s."""
    policies: tuple[str, ...] = ("fcfs", "gittins")
    seed: int = 7
    max_inflight: int = 1
    """Requests each engine serves at once; the rest wait in the scheduler's admission queue."""
    step_s: float = 0.005
    """Decoding step of the fast engine; the slow one takes twice as long."""
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
    policy: str, planned: int, done: list[tuple[str, float]], failed: int
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
        engine_args = ["--priority", "--max-batch", "64", "--seed", str(config.seed)]
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
                "--cold-start-s",
                str(config.slow_cold_start_s),
                "--keep-alive-s",
                "5",
                *engine_args,
            ],
            f"http://127.0.0.1:{slow_port}/health",
        )
        upstreams = [
            f"fast=http://127.0.0.1:{fast_port},engine=vllm,"
            f"max_inflight={config.max_inflight},models={FAST_MODEL}",
            f"slow=http://127.0.0.1:{slow_port},engine=vllm,"
            f"max_inflight={config.max_inflight},models={SLOW_MODEL}",
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
            done, failed = asyncio.run(_run_apps(planned, gateway, tick))
            hermes.flush(timeout_s=10.0)
            outcomes.append(_outcome(policy, len(planned), done, failed))
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
    ``per_app_vs_fcfs``: its ratio to FCFS), graph files written, child pids (all stopped)."""
    ratios = per_class_vs_baseline(outcomes)
    policies = {
        o.policy: {
            **{k: v for k, v in asdict(o).items() if k not in ("policy", "times_s")},
            "per_app_vs_fcfs": {n: round(r, 4) for n, r in ratios[o.policy].items()},
        }
        for o in outcomes
    }
    return json.dumps(
        {"policies": policies, "graphs": [str(p) for p in graphs], "processes": list(pids)}
    )
