"""`hermes serve`: run the scheduler service (control API, admission queues, gateway)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from aiohttp import web
from rich.markup import escape

from hermes_sdk.cli._app import app, console, err_console
from hermes_sdk.errors import HermesError

if TYPE_CHECKING:  # the server is imported when the command runs, so `hermes --help` stays fast
    from hermes_sdk.server import ServerConfig
    from hermes_sdk.server.gc_setup import GcSettings


def build_config(
    *,
    config_file: Path | None,
    host: str | None,
    port: int | None,
    store: str | None,
    policy: str | None,
    backends: list[str],
    api_keys: list[str],
    upstreams: list[str],
    prewarm: list[str] | None = None,
    insecure_no_auth: bool = False,
) -> ServerConfig:
    """Config file first, then command-line flags on top (flags win)."""
    from hermes_sdk.server import ServerConfig, load_config
    from hermes_sdk.server.config import (
        parse_api_key_flag,
        parse_backend_flag,
        parse_prewarm_flag,
    )
    from hermes_sdk.server.upstreams import parse_upstream_flag

    cfg = load_config(config_file) if config_file is not None else ServerConfig()
    changes: dict[str, object] = {}
    for name, value in (("host", host), ("port", port), ("store_url", store), ("policy", policy)):
        if value is not None:
            changes[name] = value
    cfg = replace(cfg, **changes)  # type: ignore[arg-type]
    if backends:
        merged = dict(cfg.backends)
        merged.update(parse_backend_flag(flag) for flag in backends)
        cfg = replace(cfg, backends=merged)
    if upstreams:
        cfg = replace(cfg, upstreams=cfg.upstreams + tuple(map(parse_upstream_flag, upstreams)))
    if prewarm:
        parsed = [parse_prewarm_flag(flag) for flag in prewarm]
        hooks = {name: url for name, url in parsed if url is not None}
        cfg = replace(
            cfg,
            prewarm_backends=tuple(dict.fromkeys([*cfg.prewarm_backends, *(n for n, _ in parsed)])),
            prewarm_webhooks={**cfg.prewarm_webhooks, **hooks},
        )
    if api_keys:
        cfg = cfg.with_api_keys(dict(parse_api_key_flag(flag) for flag in api_keys))
    if insecure_no_auth:
        cfg = replace(cfg, insecure_no_auth=True)
    return cfg


async def run_server(config: ServerConfig, gc: GcSettings | None = None) -> None:
    """Serve until SIGINT/SIGTERM; prints the bound URL (useful with ``--port 0``).

    Refuses (ConfigError) a non-loopback address without API keys unless ``insecure_no_auth``
    (protected mode); SIGHUP re-reads the keys and rate limits of ``config.config_file``.
    ``gc``: the collector settings applied once the app is up (default: :class:`GcSettings`).
    """
    from hermes_sdk.server import create_app
    from hermes_sdk.server.admin import reload_on_signal
    from hermes_sdk.server.backends_view import startup_lines
    from hermes_sdk.server.event_loop import running_loop_name
    from hermes_sdk.server.exposure import check_protected_mode, insecure_mode
    from hermes_sdk.server.gc_setup import GcSettings, gc_settings
    from hermes_sdk.server.leases import HANDLERS_CANCELLED

    check_protected_mode(config)
    web_app = create_app(config)
    web_app[HANDLERS_CANCELLED] = True  # no sweep for gone clients: aiohttp cancels them
    runner = web.AppRunner(web_app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    port = int(runner.addresses[0][1]) if runner.addresses else config.port
    auth = f"{len(config.api_keys)} API keys" if config.api_keys else "no auth (one tenant)"
    if insecure_mode(config):
        auth = "NO AUTH on a non-loopback address: --insecure-no-auth"
    url = f"http://{config.host}:{port}"
    console.print(
        f"hermes scheduler listening on {url} "
        f"(policy {config.policy}, store {config.store_url}, {auth}, "
        f"loop {running_loop_name()})",
        *startup_lines(config, url),
        sep="\n",
        soft_wrap=True,
        markup=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, AttributeError):  # no SIGHUP on Windows
        loop.add_signal_handler(signal.SIGHUP, reload_on_signal, web_app)
    try:
        async with gc_settings(gc or GcSettings()):
            await stop.wait()
    finally:
        await runner.cleanup()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port (default 8700; 0 picks a free one).")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(help="Store URL: sqlite:///path.db (default ~/.hermes/hermes.db), redis://"),
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="gittins (default), lstf, fcfs, las, ...")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config file (hermes.toml).")
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option("--backend", help="NAME=MAX_INFLIGHT[:LEASE_S], repeatable."),
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option("--api-key", help="KEY=TENANT, repeatable (none: one tenant, no auth)."),
    ] = None,
    upstream: Annotated[
        list[str] | None,
        typer.Option(
            "--upstream",
            help="Gateway upstream NAME=URL[,engine=vllm,...][,rpm=N,tpm=N,api_key_env=VAR].",
        ),
    ] = None,
    prewarm: Annotated[
        list[str] | None,
        typer.Option("--prewarm", help="NAME[=WEBHOOK_URL]: prewarm this backend, repeatable."),
    ] = None,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Serve a non-loopback --host without any API key (refused otherwise).",
        ),
    ] = False,
    gc_full_every: Annotated[
        float,
        typer.Option(
            help="Seconds between full garbage collections (0: CPython's collector unchanged, "
            "whose full collections hold the loop ~1 s every few seconds under 10,000 "
            "waiting requests).",
        ),
    ] = 600.0,
    gc_freeze: Annotated[
        bool, typer.Option(help="gc.freeze() the startup objects once the server is up.")
    ] = True,
    gc_young_every: Annotated[
        float,
        typer.Option(
            help="Seconds between timed young garbage collections (0: only CPython's "
            "automatic ones; ignored with --gc-full-every 0).",
        ),
    ] = 0.01,
    gc_refreeze: Annotated[
        bool, typer.Option(help="gc.freeze() the survivors of each timed full collection.")
    ] = False,
    loop: Annotated[
        str,
        typer.Option(
            help="Event loop: auto (uvloop when installed, else asyncio), asyncio, uvloop "
            "(pip install 'hermes-sdk[fast]').",
        ),
    ] = "auto",
    log_level: Annotated[str, typer.Option(help="Python log level.")] = "warning",
) -> None:
    """Run the Hermes scheduler service."""
    from hermes_sdk.server.event_loop import run_on
    from hermes_sdk.server.gc_setup import GcSettings

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = build_config(
            config_file=config,
            host=host,
            port=port,
            store=store,
            policy=policy,
            backends=backend or [],
            api_keys=api_key or [],
            upstreams=upstream or [],
            prewarm=prewarm or [],
            insecure_no_auth=insecure_no_auth,
        )
        gc = (
            GcSettings(
                freeze=gc_freeze,
                full_every_s=gc_full_every,
                young_every_s=gc_young_every,
                refreeze=gc_refreeze,
            )
            if gc_full_every > 0
            else GcSettings(
                freeze=gc_freeze, full_every_s=None, threshold1=None, young_every_s=None
            )
        )
        run_on(loop, run_server(cfg, gc))
    except HermesError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass
