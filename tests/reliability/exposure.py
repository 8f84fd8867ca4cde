"""Exposure scenarios: protected mode, the no-key/wrong/expired/foreign-key audit, key rotation.

Each ``async def scenario_*`` runs real servers (in-process on loopback or `hermes serve`
children, the sim engine behind the gateway, the real ``openai`` client) and returns
``{"name", "passed", ...figures}`` for the tests and ``benchmarks/bench_reliability.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import openai

from hermes_sdk.server import load_config
from hermes_sdk.server.auth import PUBLIC_PATHS
from hermes_sdk.sim.engine import SimEngineConfig

from .harness import HERMES, ServerProcess, with_engine
from .security import APP, KEYS, OWNER_KEY, RUN, _call, _concrete, _foreign_body, _seed_owner

MALLORY_KEY = next(k for k, t in KEYS.items() if t == "mallory")
EXPIRED_KEY = "key-owner-expired-31c8"
ADMIN_KEY = "key-ops-admin-9a4e"
WRONG_KEY = "key-nobody-00000"
STATIC_DOCS = frozenset(PUBLIC_PATHS - {"/healthz", "/metrics"})
"""The dashboard page, its assets and /openapi.json: the same bytes for everyone, no data."""
CREDENTIALS = {"no key": None, "wrong key": WRONG_KEY, "expired key": EXPIRED_KEY}


def _key_table(key: str, tenant: str, extra: str = "") -> str:
    return f'[[api_keys]]\ntenant = "{tenant}"\nkey = "{key}"\n{extra}'


def _audit_toml(metrics_public: bool) -> str:
    keys = [_key_table(k, t) for k, t in KEYS.items()]
    keys.append(_key_table(EXPIRED_KEY, "owner", f"not_after = {time.time() - 3600:.0f}\n"))
    keys.append(_key_table(ADMIN_KEY, "ops", 'role = "admin"\n'))
    server = f"[server]\nmetrics_public = {str(metrics_public).lower()}\n"
    return server + "[backends.gpu]\nmax_inflight = 4\n" + "\n".join(keys)


async def scenario_audit(tmp: Path, *, metrics_public: bool = False) -> dict[str, Any]:
    """Every registered route x {no key, wrong key, expired key, another tenant's key}.

    Without a valid key only /healthz, the static documents (page, assets, OpenAPI: the same
    bytes with and without a key) and /metrics when configured public answer 2xx; with another
    tenant's key nothing that names the owner's run, app or lease, no admin route and no
    non-public /metrics does. Positive controls: the owner and admin keys get 2xx there.
    """
    (tmp / "audit.toml").write_text(_audit_toml(metrics_public))
    config = replace(
        load_config(tmp / "audit.toml"),
        port=0,
        store_url=f"sqlite:///{tmp}/audit.db",
        prewarm_backends=("sandbox",),
    )
    sim = SimEngineConfig(min_output_tokens=2, max_output_tokens=4)
    violations: list[str] = []
    answered_2xx: dict[str, list[str]] = {c: [] for c in [*CREDENTIALS, "another tenant's key"]}
    cells = 0
    async with with_engine(config, sim) as (app, url, _), aiohttp.ClientSession() as http:
        lease_id = await _seed_owner(http, url)
        # routes creating same-named objects in the caller's own namespace go last
        routes = sorted(
            {
                (r.method, r.resource.canonical)
                for r in app.router.routes()
                if r.method != "HEAD" and r.resource is not None
            },
            key=lambda r: (r[1] in ("/v1/runs", "/v1/events"), r),
        )
        for method, template in routes:
            path = _concrete(template, lease_id)
            allowed = template == "/healthz" or template in STATIC_DOCS
            allowed |= template == "/metrics" and metrics_public
            for label, key in CREDENTIALS.items():
                cells += 1
                status, _ = await _call(http, url, key, method, path, {})
                if 200 <= status < 300:
                    answered_2xx[label].append(f"{method} {template}")
                    if not allowed:
                        violations.append(f"{label}: {method} {template} answered {status}")
                elif allowed:
                    violations.append(f"{label}: public {method} {template} answered {status}")
                elif status != 401:
                    violations.append(f"{label}: {method} {template} answered {status}, not 401")
            cells += 1
            body = _foreign_body(method, template)
            status, _ = await _call(http, url, MALLORY_KEY, method, path, body)
            owner_scoped = any(p in template for p in ("{run_id}", "{app}", "{lease_id}"))
            privileged = template.startswith("/v1/admin/") or (
                template == "/metrics" and not metrics_public
            )
            if 200 <= status < 300:
                answered_2xx["another tenant's key"].append(f"{method} {template}")
                if owner_scoped or privileged:
                    violations.append(f"mallory: {method} {template} answered {status}")
            if status == 401:
                violations.append(f"mallory's valid key refused on {method} {template}")
        static_same = True
        for template in sorted(STATIC_DOCS):
            _, anonymous = await _call(http, url, None, "GET", template)
            _, keyed = await _call(http, url, OWNER_KEY, "GET", template)
            static_same &= anonymous == keyed
        controls = {
            "owner run": (await _call(http, url, OWNER_KEY, "GET", f"/v1/runs/{RUN}"))[0],
            "owner graph": (await _call(http, url, OWNER_KEY, "GET", f"/v1/apps/{APP}/graph"))[0],
            "admin metrics": (await _call(http, url, ADMIN_KEY, "GET", "/metrics"))[0],
            "admin reload": (await _call(http, url, ADMIN_KEY, "POST", "/v1/admin/reload"))[0],
            "owner release": (
                await _call(http, url, OWNER_KEY, "POST", f"/v1/leases/{lease_id}/release")
            )[0],
        }
    controls_ok = all(s == 200 for s in controls.values())
    return {
        "name": "security_exposure_audit" + ("_metrics_public" if metrics_public else ""),
        "passed": not violations and static_same and controls_ok,
        "routes": len(routes),
        "cells": cells,
        "answered_2xx": answered_2xx,
        "violations": violations,
        "static_documents_identical": static_same,
        "controls": controls,
    }


def _rotation_toml(*keys: tuple[str, str]) -> str:
    tables = [_key_table(k, t) for k, t in keys]
    tables.append(_key_table(ADMIN_KEY, "ops", 'role = "admin"\n'))
    backends = "[backends.gpu]\nmax_inflight = 1\n[backends.cpu]\nmax_inflight = 1\n"
    return backends + "\n".join(tables)


async def _acquire(
    http: aiohttp.ClientSession, url: str, key: str, backend: str = "gpu"
) -> tuple[int, Any]:
    return await _call(http, url, key, "POST", f"/v1/backends/{backend}/acquire", {})


async def _waiting(http: aiohttp.ClientSession, url: str, key: str, backend: str) -> int:
    _, body = await _call(http, url, key, "GET", "/v1/backends")
    return int(next(b["waiting"] for b in body["backends"] if b["name"] == backend))


async def _until(check: Any, timeout_s: float = 20.0) -> bool:
    """Poll ``await check()`` until true (False after ``timeout_s``: the caller reports it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.01)
    return False


async def scenario_rotation(tmp: Path, *, n_load: int = 8, tokens: int = 60) -> dict[str, Any]:
    """Remove a key under load through POST /v1/admin/reload; see what each client gets.

    Old key: a gateway stream in flight finishes whole, its next call gets 401, its waiting
    acquire ends with 401 ``key_revoked``, its held lease stays (released by the tenant's other
    key). The waiters around it keep their order; ``n_load`` clients with kept keys see no
    error while the keys change.
    """
    old, keep, beta = "key-acme-old-4d2", "key-acme-keep-8b1", "key-beta-77c0"
    path = tmp / "rotation.toml"
    path.write_text(_rotation_toml((old, "acme"), (keep, "acme"), (beta, "beta")))
    config = replace(load_config(path), port=0, store_url=f"sqlite:///{tmp}/rotation.db")
    sim = SimEngineConfig(min_output_tokens=tokens, max_output_tokens=tokens, step_base_s=0.02)
    out: dict[str, Any] = {"name": "security_key_rotation"}
    load_status: dict[int, int] = {}
    stop = asyncio.Event()
    async with with_engine(config, sim) as (_, url, _e), aiohttp.ClientSession() as http:

        async def load(i: int) -> None:
            key = keep if i % 2 else beta
            n = 0
            while not stop.is_set():
                n += 1
                status, _ = await _call(http, url, key, "POST", "/v1/runs", {"app": "l"})
                load_status[status] = load_status.get(status, 0) + 1
                status, _ = await _call(http, url, key, "GET", "/v1/backends")
                load_status[status] = load_status.get(status, 0) + 1

        loaders = [asyncio.create_task(load(i)) for i in range(n_load)]
        held_status, held = await _acquire(http, url, old, "cpu")  # a lease of the old key
        _, holder = await _acquire(http, url, keep)
        waiters = []
        for i, key in enumerate((keep, old, keep)):  # W1, W2 (old key), W3, in this order
            waiters.append(asyncio.create_task(_acquire(http, url, key)))
            await _until(lambda n=i + 1: _is(_waiting(http, url, keep, "gpu"), n))
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=old, max_retries=0)
        stream = await client.chat.completions.create(
            model="sim-model", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks_before = chunks_after = 0
        finish = None
        chunks = aiter(stream)  # one iterator, read on both sides of the reload
        async for chunk in chunks:
            chunks_before += 1
            if chunk.choices and chunk.choices[0].delta.content:
                break
        path.write_text(_rotation_toml((keep, "acme"), (beta, "beta")))
        status, report = await _call(http, url, ADMIN_KEY, "POST", "/v1/admin/reload")
        out["reload_status"], out["reload"] = status, report
        async for chunk in chunks:
            chunks_after += 1
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        w2_status, w2_body = await waiters[1]
        out["old_key_waiter"] = [w2_status, w2_body.get("error", {}).get("code")]
        try:
            await client.chat.completions.create(
                model="sim-model", messages=[{"role": "user", "content": "again"}]
            )
            out["old_key_next_call"] = 200
        except openai.APIStatusError as exc:
            out["old_key_next_call"] = exc.status_code
        await client.close()
        out["old_key_next_acquire"] = (await _acquire(http, url, old, "cpu"))[0]
        waiting_after = await _waiting(http, url, keep, "gpu")
        # the held lease of the removed key is still there; the tenant's other key releases it
        release_old = held.get("lease_id", "?") if held_status == 200 else "?"
        out["old_lease_released_by_kept_key"] = (
            await _call(http, url, keep, "POST", f"/v1/leases/{release_old}/release")
        )[0]
        await _call(http, url, keep, "POST", f"/v1/leases/{holder['lease_id']}/release")
        w1_status, w1 = await waiters[0]
        w3_waited_for_w1 = not waiters[2].done()
        await _call(http, url, keep, "POST", f"/v1/leases/{w1['lease_id']}/release")
        w3_status, w3 = await waiters[2]
        await _call(http, url, keep, "POST", f"/v1/leases/{w3['lease_id']}/release")
        stop.set()
        await asyncio.gather(*loaders)
    out.update(
        chunks_before_reload=chunks_before,
        chunks_after_reload=chunks_after,
        stream_finish_reason=finish,
        waiting_after_reload=waiting_after,
        kept_waiters=[w1_status, w3_status],
        w3_waited_for_w1=w3_waited_for_w1,
        load_requests=sum(load_status.values()),
        load_statuses={str(k): v for k, v in sorted(load_status.items())},
    )
    out["passed"] = (
        status == 200
        and report.get("removed") == 1
        and report.get("waits_ended") == 1
        and chunks_after > 0
        and finish is not None
        and out["old_key_waiter"] == [401, "key_revoked"]
        and out["old_key_next_call"] == 401
        and out["old_key_next_acquire"] == 401
        and out["old_lease_released_by_kept_key"] == 200
        and waiting_after == 2
        and [w1_status, w3_status] == [200, 200]
        and w3_waited_for_w1
        and set(load_status) <= {200, 201}
    )
    return out


async def _is(value: Any, want: int) -> bool:
    return bool(await value == want)


def _serve_exit(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run(
        [str(HERMES), "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        check=False,
    )


async def scenario_protected_mode(tmp: Path) -> dict[str, Any]:
    """`hermes serve` on 0.0.0.0: refused without keys, started with keys or the override."""
    refused = _serve_exit("--host", "0.0.0.0", "--store", "memory://")
    message = refused.stderr
    out: dict[str, Any] = {
        "name": "security_protected_mode",
        "refused_exit_code": refused.returncode,
        "refusal_names_both_ways_out": "[[api_keys]]" in message
        and "--insecure-no-auth" in message,
    }
    log_path = tmp / "insecure.log"
    proc = ServerProcess(
        "--host", "0.0.0.0", "--store", "memory://", "--insecure-no-auth", log_path=log_path
    )
    try:
        async with aiohttp.ClientSession() as http:
            _, health = await _call(http, proc.url, None, "GET", "/healthz")
            _, page = await _call(http, proc.url, None, "GET", "/ui")
            out["override_healthz_auth"] = health.get("auth")
            out["override_ui_banner"] = 'id="insecure"' in str(page)
            out["override_backends_open"] = (
                await _call(http, proc.url, None, "GET", "/v1/backends")
            )[0]
    finally:
        proc.stop()
    logged = log_path.read_text()
    out["override_logged"] = "WARNING" in logged and "INSECURE" in logged
    keyed = ServerProcess("--host", "0.0.0.0", "--store", "memory://", "--api-key", "k-1=acme")
    try:
        async with aiohttp.ClientSession() as http:
            out["keyed_no_key"] = (await _call(http, keyed.url, None, "GET", "/v1/backends"))[0]
            out["keyed_metrics_no_key"] = (await _call(http, keyed.url, None, "GET", "/metrics"))[0]
            out["keyed_with_key"] = (await _call(http, keyed.url, "k-1", "GET", "/v1/backends"))[0]
    finally:
        keyed.stop()
    out["passed"] = (
        out["refused_exit_code"] == 2
        and out["refusal_names_both_ways_out"]
        and out["override_healthz_auth"] == "insecure_no_auth"
        and out["override_ui_banner"]
        and out["override_backends_open"] == 200
        and out["override_logged"]
        and (out["keyed_no_key"], out["keyed_metrics_no_key"], out["keyed_with_key"])
        == (401, 401, 200)
    )
    return out


async def scenario_sighup(tmp: Path) -> dict[str, Any]:
    """`kill -HUP` a `hermes serve` child: the new file's keys in force, a bad file refused."""
    path, log_path = tmp / "hup.toml", tmp / "hup.log"
    path.write_text(_key_table("k-old", "acme"))
    proc = ServerProcess("--config", str(path), "--store", "memory://", log_path=log_path)
    out: dict[str, Any] = {"name": "security_sighup_reload"}
    try:
        async with aiohttp.ClientSession() as http:
            url = proc.url

            async def status(key: str) -> int:
                return (await _call(http, url, key, "GET", "/v1/backends"))[0]

            out["before"] = [await status("k-old"), await status("k-new")]
            path.write_text(_key_table("k-new", "acme"))
            proc.proc.send_signal(signal.SIGHUP)
            out["swapped"] = await _until(lambda: _is(status("k-old"), 401))
            out["after"] = [await status("k-old"), await status("k-new")]
            path.write_text("[server]\nport = 'not a port'\n")
            proc.proc.send_signal(signal.SIGHUP)
            out["bad_file_logged"] = await _until(
                lambda: _logged(log_path, "reload refused"), timeout_s=20.0
            )
            out["after_bad_file"] = [await status("k-old"), await status("k-new")]
    finally:
        proc.stop()
    out["passed"] = (
        out["before"] == [200, 401]
        and out["swapped"]
        and out["after"] == [401, 200]
        and out["bad_file_logged"]
        and out["after_bad_file"] == [401, 200]
    )
    return out


async def _logged(path: Path, needle: str) -> bool:
    return path.exists() and needle in path.read_text()
