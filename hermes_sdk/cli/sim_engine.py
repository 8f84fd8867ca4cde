"""`hermes sim-engine`: run the simulated OpenAI-compatible engine on a port."""

from __future__ import annotations

import typer
from aiohttp import web

from hermes_sdk.cli._app import app, console


@app.command("sim-engine")
def sim_engine(
    port: int = typer.Option(8000, help="TCP port to listen on."),
    model: str = typer.Option("sim-model", help="Model name served at /v1/models."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    cold_start_s: float = typer.Option(0.0, help="Seconds the first request after idle waits."),
    keep_alive_s: float = typer.Option(60.0, help="Idle seconds after which the engine is cold."),
    seed: int = typer.Option(0, help="Seed of the deterministic output lengths and text."),
    priority: bool = typer.Option(
        False, "--priority", help="Order the waiting queue by `priority` (vLLM: lower first)."
    ),
    higher_priority_first: bool = typer.Option(
        False, "--higher-priority-first", help="With --priority: higher values first (SGLang)."
    ),
    strict_priority: bool = typer.Option(
        False, "--strict-priority", help="Without --priority, reject a nonzero priority (vLLM)."
    ),
    max_batch: int = typer.Option(64, help="Most requests decoded per step."),
    step_s: float = typer.Option(0.002, help="Base seconds per decoding step."),
    step_per_request_s: float = typer.Option(0.0001, help="Step seconds per batched request."),
    prefill_per_token_s: float = typer.Option(0.00001, help="Prefill seconds per prompt token."),
    kv_cache_tokens: int = typer.Option(
        0, help="Prefix KV cache capacity in tokens (0: none); X-Hermes-Retain-S pins entries."
    ),
    rate_limit: str | None = typer.Option(
        None,
        "--rate-limit",
        help="Emulate a hosted provider: rpm=N,tpm=N (429s with Retry-After, x-ratelimit-*).",
    ),
) -> None:
    """Serve a simulated LLM engine (continuous batching, SSE, priority, cold start)."""
    from hermes_sdk.sim.engine import SimEngineConfig, create_engine_app  # only when run
    from hermes_sdk.sim.provider import parse_rate_limit

    try:
        limits = None if rate_limit is None else parse_rate_limit(rate_limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--rate-limit") from None

    config = SimEngineConfig(
        model=model,
        step_base_s=step_s,
        step_per_request_s=step_per_request_s,
        prefill_per_token_s=prefill_per_token_s,
        max_batch=max_batch,
        priority_scheduling=priority,
        higher_priority_first=higher_priority_first,
        strict_priority=strict_priority,
        cold_start_s=cold_start_s,
        keep_alive_s=keep_alive_s,
        seed=seed,
        kv_cache_tokens=kv_cache_tokens,
    )
    console.print(f"sim engine [bold]{model}[/] on http://{host}:{port}/v1")
    web.run_app(
        create_engine_app(config, limits),
        host=host,
        port=port,
        print=None,
        access_log=None,
        handler_cancellation=True,  # a client that goes away aborts its generation
    )
