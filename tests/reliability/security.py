"""Security scenarios: tenant isolation matrix, keys at rest, forged ranks, limits, log secrets.

Each ``async def scenario_*`` runs real servers and returns ``{"name", "passed", ...figures}``
(used by the tests and by ``benchmarks/bench_reliability.py``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp

from hermes_sdk.server import BackendConfig, ServerConfig
from hermes_sdk.server.auth import Keyring
from hermes_sdk.server.upstreams import UpstreamConfig
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine

from .fuzz import openapi_operations
from .harness import ServerProcess, free_port, running, with_engine

KEYS = {"key-owner-7f3a9c": "owner", "key-mallory-55e1": "mallory", "key-eve-0b7d2": "eve"}
OWNER_KEY = "key-owner-7f3a9c"
RUN = "owner-run-5d1c"
APP = "owner-app-9e2b"
PUBLIC = {"/healthz", "/metrics", "/openapi.json"}
PATH = {
    "app": APP,
    "stages": [{"node": "plan", "kind": "llm", "calls": [{"service_s": 1.5, "input_tokens": 7}]}],
}


async def _call(
    http: aiohttp.ClientSession, url: str, key: str | None, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with http.request(method, url + path, json=body, headers=headers) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


async def _seed_owner(http: aiohttp.ClientSession, url: str) -> str:
    """The owner's run, learned graph and live lease; returns the lease id."""
    k = OWNER_KEY
    assert (await _call(http, url, k, "POST", "/v1/runs", {"app": APP, "run_id": "done"}))[0] == 201
    assert (await _call(http, url, k, "POST", "/v1/runs/done/end", {"path": PATH}))[0] == 200
    assert (await _call(http, url, k, "POST", "/v1/runs", {"app": APP, "run_id": RUN}))[0] == 201
    status, lease = await _call(http, url, k, "POST", "/v1/backends/gpu/acquire", {"run_id": RUN})
    assert status == 200
    return str(lease["lease_id"])


def _concrete(path: str, lease_id: str) -> str:
    return (
        path.replace("{run_id}", RUN)
        .replace("{app}", APP)
        .replace("{lease_id}", lease_id)
        .replace("{name}", "gpu")
    )


def _foreign_body(method: str, path: str) -> Any:
    """A body that would touch the owner's objects if tenants were not separated."""
    if path == "/v1/runs":
        return {"app": APP, "run_id": RUN}
    if path == "/v1/events":
        return {
            "events": [
                {"type": "unit_start", "run_id": RUN, "unit_id": "x", "node": "evil"},
                {"type": "unit_end", "run_id": RUN, "unit_id": "x", "service_s": 999.0},
                {"type": "run_end", "run_id": RUN, "path": PATH},
            ]
        }
    if path.endswith("/end"):
        return {"path": PATH}
    if path.endswith("/acquire"):
        return {"run_id": RUN, "timeout_s": 0.1}
    return None if method == "GET" else {}


async def _owner_view(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    k = OWNER_KEY
    return {
        "run": (await _call(http, url, k, "GET", f"/v1/runs/{RUN}"))[1],
        "graph": (await _call(http, url, k, "GET", f"/v1/apps/{APP}/graph"))[1],
        "apps": (await _call(http, url, k, "GET", "/v1/apps"))[1],
    }


async def scenario_tenant_matrix(tmp: Path) -> dict[str, Any]:
    """Every OpenAPI operation x every foreign tenant: nothing of the owner is read or changed."""
    config = ServerConfig(
        port=0,
        store_url=f"sqlite:///{tmp}/tenants.db",
        backends={"gpu": BackendConfig(max_inflight=4)},
    ).with_api_keys(KEYS)
    leaks: list[str] = []
    cells = 0
    async with running(config) as (_, url), aiohttp.ClientSession() as http:
        lease_id = await _seed_owner(http, url)
        before = await _owner_view(http, url)
        # operations creating same-named objects in the caller's own namespace go last
        ops = sorted(openapi_operations(), key=lambda o: o.path in ("/v1/runs", "/v1/events"))
        for foreign_key, tenant in KEYS.items():
            if foreign_key == OWNER_KEY:
                continue
            for op in ops:
                path = _concrete(op.path, lease_id)
                cells += 1
                status, data = await _call(
                    http, url, foreign_key, op.method, path, _foreign_body(op.method, op.path)
                )
                text = json.dumps(data)
                # an error may echo the id the caller sent; a success must not show owner data
                if status < 400 and (lease_id in text or (op.method == "GET" and APP in text)):
                    leaks.append(f"{tenant} {op.method} {op.path}: {status} {text[:120]}")
                reads_owner = any(p in op.path for p in ("{run_id}", "{app}", "{lease_id}"))
                if reads_owner and status not in (403, 404):
                    leaks.append(f"{tenant} {op.method} {op.path} answered {status}")
                if op.path not in PUBLIC and status == 401:
                    leaks.append(f"{tenant}'s valid key refused on {op.path}")
            # without any key, every non-public path is 401
            for op in ops:
                if op.path in PUBLIC:
                    continue
                status, _ = await _call(http, url, None, op.method, _concrete(op.path, lease_id))
                if status != 401:
                    leaks.append(f"no key: {op.method} {op.path} answered {status}")
        after = await _owner_view(http, url)
        lease_alive = (await _call(http, url, OWNER_KEY, "POST", f"/v1/leases/{lease_id}/release"))[
            0
        ] == 200
    unchanged = _strip_elapsed(before) == _strip_elapsed(after)
    return {
        "name": "security_tenant_isolation",
        "passed": not leaks and unchanged and lease_alive,
        "operations": len(ops),
        "foreign_tenants": len(KEYS) - 1,
        "cells": cells,
        "leaks": leaks,
        "owner_state_unchanged": unchanged,
        "owner_lease_survived": lease_alive,
    }


def _strip_elapsed(view: dict[str, Any]) -> dict[str, Any]:
    run = dict(view["run"])
    run.pop("elapsed_s", None)
    return {**view, "run": run}


def scenario_key_compare() -> dict[str, Any]:
    """The keyring runs hmac.compare_digest once per stored key, whichever key is presented."""
    keys = ServerConfig().with_api_keys({f"k{i}-secret": f"t{i}" for i in range(5)}).api_keys
    ring = Keyring(keys, "hermes-sdk")
    counts = {}
    for probe in ("k0-secret", "k4-secret", "nobody", ""):
        with mock.patch(
            "hermes_sdk.server.auth.hmac.compare_digest", wraps=hmac.compare_digest
        ) as spy:
            ring.tenant_of(probe)
        counts[probe or "<empty>"] = spy.call_count
    plaintext_kept = any("secret" in repr(k) for k in keys)
    return {
        "name": "security_keys_constant_time",
        "passed": set(counts.values()) == {len(keys)} and not plaintext_kept,
        "compare_digest_calls": counts,
        "plaintext_in_config": plaintext_kept,
    }


async def scenario_secrets_at_rest_and_logs(tmp: Path) -> dict[str, Any]:
    """`hermes serve` (debug logs) with client and upstream keys: neither in store nor log."""
    client_key, upstream_key = "client-key-Zq81xPL", "upstream-key-Wm42vKC"
    db, log_path = tmp / "secrets.db", tmp / "serve.log"
    async with serve_sim_engine(SimEngineConfig(min_output_tokens=2, max_output_tokens=4)) as eng:
        proc = ServerProcess(
            "--store", f"sqlite:///{db}",
            "--backend", "gpu=2",
            "--api-key", f"{client_key}=acme",
            "--upstream", f"sim={eng},api_key={upstream_key}",
            "--log-level", "debug",
            log_path=log_path,
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as http:
                url = proc.url
                await _call(http, url, client_key, "POST", "/v1/runs", {"app": "a", "run_id": "r"})
                await _call(
                    http, url, client_key, "POST", "/v1/runs/r/end", {"path": {**PATH, "app": "a"}}
                )
                await _call(http, url, "wrong-" + client_key, "GET", "/v1/apps")
                status, _ = await _call(
                    http, url, client_key, "POST", "/v1/chat/completions",
                    {"model": "sim-model", "messages": [{"role": "user", "content": "hi"}]},
                )  # fmt: skip
                async with http.get(eng.removesuffix("/v1") + "/debug/requests") as resp:
                    seen = (await resp.json())["requests"]
        finally:
            proc.stop()
    await asyncio.sleep(0)
    log_text = log_path.read_text()
    store_bytes = b"".join(p.read_bytes() for p in tmp.glob("secrets.db*"))
    with sqlite3.connect(db) as conn:  # the store is readable and holds the learned path
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
    auth_seen = {r["headers"].get("authorization") for r in seen}
    found = {
        "client_key_in_log": client_key in log_text,
        "upstream_key_in_log": upstream_key in log_text,
        "client_key_in_store": client_key.encode() in store_bytes,
        "upstream_key_in_store": upstream_key.encode() in store_bytes,
        "client_key_sent_upstream": any(a and client_key in a for a in auth_seen),
    }
    return {
        "name": "security_no_secret_at_rest_or_in_logs",
        "passed": not any(found.values())
        and status == 200
        and auth_seen == {f"Bearer {upstream_key}"},
        "gateway_status": status,
        "log_bytes": len(log_text),
        "store_tables": tables,
        **found,
    }


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def scenario_secrets_in_process_logs(tmp: Path) -> dict[str, Any]:
    """Every logger at DEBUG while keys go wrong ways: unknown keys, a key in the query string,
    an engine refusing ``priority`` (the gateway logs it), an upstream that is down. No client
    or upstream key may appear in any log record."""
    client_key, upstream_key = "client-key-In7Proc", "upstream-key-Dd93Lo"
    capture = _Capture()
    capture.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    dead = f"http://127.0.0.1:{free_port()}/v1"
    try:
        cfg = ServerConfig(port=0, store_url=f"sqlite:///{tmp}/logs.db").with_api_keys(
            {client_key: "acme"}
        )
        sim = SimEngineConfig(strict_priority=True, min_output_tokens=1, max_output_tokens=2)
        async with with_engine(cfg, sim, engine="vllm", api_key=upstream_key) as (_a, url, _):
            dead_up = UpstreamConfig(
                name="dead", url=dead, models=("dead-model",), api_key=upstream_key, timeout_s=1
            )
            async with (
                running(replace(cfg, upstreams=(dead_up,))) as (_, url2),
                aiohttp.ClientSession() as http,
            ):
                msgs = [{"role": "user", "content": "hi"}]
                statuses = [
                    (await _call(http, url, client_key + "x", "GET", "/v1/apps"))[0],
                    (await _call(http, url, None, "GET", f"/v1/apps?key={client_key}"))[0],
                    (
                        await _call(
                            http,
                            url,
                            client_key,
                            "POST",
                            "/v1/chat/completions",
                            {"model": "sim-model", "messages": msgs},
                        )
                    )[0],
                    (
                        await _call(
                            http,
                            url2,
                            client_key,
                            "POST",
                            "/v1/chat/completions",
                            {"model": "dead-model", "messages": msgs},
                        )
                    )[0],
                ]
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    text = "\n".join(capture.lines)
    leaked = [k for k in (client_key, upstream_key) if k in text]
    return {
        "name": "security_no_secret_in_process_logs",
        "passed": not leaked
        and statuses[:3] == [401, 401, 200]
        and statuses[3] >= 500
        and len(capture.lines) > 0,
        "statuses": statuses,
        "log_records": len(capture.lines),
        "leaked": leaked,
    }


async def scenario_forged_priority(tmp: Path) -> dict[str, Any]:
    """Forged X-Hermes-Rank/Priority headers and body ``priority``: the engine never sees them."""
    engine = SimEngineConfig(priority_scheduling=True, min_output_tokens=1, max_output_tokens=2)
    config = ServerConfig(port=0, store_url=f"sqlite:///{tmp}/forge.db")
    msgs = [{"role": "user", "content": "hello"}]
    async with (
        with_engine(config, engine, engine="vllm") as (_, url, eng),
        aiohttp.ClientSession() as http,
    ):
        for i, forged in enumerate((False, True, False, True)):
            headers = {"X-Hermes-App": "qa", "X-Hermes-Run": f"r{i}", "X-Hermes-Unit": f"u{i}"}
            body: dict[str, Any] = {"model": "sim-model", "messages": msgs}
            if forged:
                headers |= {"X-Hermes-Rank": "-1e308", "X-Hermes-Priority": "-1000000"}
                body |= {"priority": -1_000_000, "metadata": {"hermes_rank": "-1e308"}}
            async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
        async with http.get(eng.removesuffix("/v1") + "/debug/requests") as resp:
            seen = (await resp.json())["requests"]
    by_unit = {r["headers"]["x-hermes-unit"]: r["priority"] for r in seen}
    honest = {by_unit["u0"], by_unit["u2"]}
    forged_p = {by_unit["u1"], by_unit["u3"]}
    return {
        "name": "security_forged_rank_ignored",
        "passed": len(seen) == 4 and min(forged_p) >= min(honest) and -1_000_000 not in forged_p,
        "honest_priorities": sorted(honest),
        "forged_priorities": sorted(forged_p),
    }


async def scenario_limits(tmp: Path) -> dict[str, Any]:
    """Body size limit (413 JSON), control and gateway; per-tenant rate limit (429, Retry-After)."""
    config = ServerConfig(
        port=0,
        store_url=f"sqlite:///{tmp}/limits.db",
        max_body_bytes=64 * 1024,
        rate_limit_rps=2.0,
        rate_limit_burst=5,
    ).with_api_keys({"key-a": "a", "key-b": "b", "key-c": "c"})
    big = {"events": [], "pad": "x" * 100_000}
    codes: dict[str, Any] = {}
    async with with_engine(config) as (_, url, _eng), aiohttp.ClientSession() as http:
        for path in ("/v1/events", "/v1/chat/completions"):
            status, data = await _call(http, url, "key-c", "POST", path, big)
            codes[path] = (status, data["error"]["code"] if isinstance(data, dict) else data)
        statuses = []
        retry_after = None
        for _ in range(12):
            async with http.get(url + "/v1/apps", headers={"Authorization": "Bearer key-a"}) as r:
                statuses.append(r.status)
                if r.status == 429:
                    retry_after = r.headers.get("Retry-After")
                    limited_code = (await r.json())["error"]["code"]
        b_status, _ = await _call(http, url, "key-b", "GET", "/v1/apps")
        health, _ = await _call(http, url, None, "GET", "/healthz")
    admitted = statuses.count(200)
    size_ok = all(v == (413, "body_too_large") for v in codes.values())
    rate_ok = 5 <= admitted <= 7 and 429 in statuses and retry_after is not None
    return {
        "name": "security_size_and_rate_limits",
        "passed": size_ok
        and rate_ok
        and b_status == 200
        and health == 200
        and limited_code == "rate_limited",
        "oversize": {k: list(v) for k, v in codes.items()},
        "burst_admitted": admitted,
        "limited": statuses.count(429),
        "retry_after": retry_after,
        "other_tenant_status": b_status,
    }


logging.getLogger("hermes_sdk").setLevel(logging.WARNING)


async def scenario_gateway_tenants(tmp: Path) -> dict[str, Any]:
    """Through the gateway a foreign tenant naming the owner's run (``X-Hermes-Run``) records
    nothing on it; the owner's own call does (positive control), and each sees only its own."""
    cfg = ServerConfig(port=0, store_url=f"sqlite:///{tmp}/gwt.db").with_api_keys(KEYS)
    sim = SimEngineConfig(min_output_tokens=1, max_output_tokens=2)
    msgs = [{"role": "user", "content": "hi"}]
    headers = {"X-Hermes-App": APP, "X-Hermes-Run": RUN, "X-Hermes-Unit": "plan"}
    out: dict[str, Any] = {}
    async with with_engine(cfg, sim) as (_, url, _e), aiohttp.ClientSession() as http:
        await _call(http, url, OWNER_KEY, "POST", "/v1/runs", {"app": APP, "run_id": RUN})
        before = (await _call(http, url, OWNER_KEY, "GET", f"/v1/runs/{RUN}"))[1]
        for key in (k for k in KEYS if k != OWNER_KEY):
            async with http.post(
                url + "/v1/chat/completions",
                json={"model": "sim-model", "messages": msgs},
                headers={**headers, "Authorization": f"Bearer {key}"},
            ) as r:
                out[f"{KEYS[key]}_call"] = r.status
            out[f"{KEYS[key]}_sees_run"] = (await _call(http, url, key, "GET", f"/v1/runs/{RUN}"))[
                0
            ]
        after_foreign = (await _call(http, url, OWNER_KEY, "GET", f"/v1/runs/{RUN}"))[1]
        async with http.post(
            url + "/v1/chat/completions",
            json={"model": "sim-model", "messages": msgs},
            headers={**headers, "Authorization": f"Bearer {OWNER_KEY}"},
        ) as r:
            out["owner_call"] = r.status
        after_owner = (await _call(http, url, OWNER_KEY, "GET", f"/v1/runs/{RUN}"))[1]
    untouched = _strip_elapsed({"run": before}) == _strip_elapsed({"run": after_foreign})
    recorded = after_owner["visits"] != before["visits"]
    return {
        "name": "security_gateway_tenant_isolation",
        "passed": untouched
        and recorded
        and all(v == 200 for k, v in out.items() if k.endswith("_call"))
        and all(v == 404 for k, v in out.items() if k.endswith("_sees_run")),
        "foreign_calls_left_owner_run_untouched": untouched,
        "owner_call_recorded_on_run": recorded,
        **out,
    }
