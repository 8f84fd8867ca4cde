"""Mutated and random bodies never make the server answer 5xx."""

from __future__ import annotations

import json
import random
from typing import Any

import aiohttp

from hermes_sdk.server import BackendConfig

from .conftest import StartServer

VALID: list[dict[str, Any]] = [
    {"type": "run_start", "run_id": "r", "app": "qa", "deadline_s": 5, "ts": 1.0},
    {
        "type": "unit_start",
        "run_id": "r",
        "unit_id": "u",
        "node": "n",
        "kind": "llm",
        "backend": "gpu",
        "input_tokens": 5,
        "parent_id": "p",
        "ts": 1.0,
    },
    {
        "type": "unit_end",
        "run_id": "r",
        "unit_id": "u",
        "service_s": 1.0,
        "input_tokens": 1,
        "output_tokens": 2,
        "failed": False,
        "ts": 2.0,
    },
    {
        "type": "run_end",
        "run_id": "r",
        "failed": False,
        "path": {
            "app": "qa",
            "tenant": "x",
            "started_at": 0,
            "deadline_s": None,
            "stages": [
                {
                    "node": "n",
                    "kind": "llm",
                    "backend": "gpu",
                    "latency_s": 1.0,
                    "calls": [{"service_s": 1.0, "input_tokens": 3, "cold_start_s": 0.1}],
                }
            ],
        },
    },
]
ODD: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1e308,
    -1e-9,
    2**63,
    "",
    "\x00",
    "x" * 300,
    "é",
    [],
    {},
    [1],
    {"a": 1},
    float("nan"),
    float("inf"),
]


def _mutate(value: Any, rng: random.Random, depth: int = 0) -> Any:
    if depth > 6 or rng.random() < 0.15:
        return rng.choice(ODD)
    if isinstance(value, dict):
        out = dict(value)
        if out and rng.random() < 0.5:
            key = rng.choice(list(out))
            out[key] = _mutate(out[key], rng, depth + 1)
        if out and rng.random() < 0.2:
            out.pop(rng.choice(list(out)))
        return out
    if isinstance(value, list):
        return [_mutate(v, rng, depth + 1) if rng.random() < 0.5 else v for v in value]
    return value


async def test_mutated_bodies_never_5xx(serve: StartServer) -> None:
    server = await serve(backends={"gpu": BackendConfig(4)})
    rng = random.Random(7)
    targets = [
        "/v1/events",
        "/v1/runs",
        "/v1/runs/r/end",
        "/v1/backends/gpu/acquire",
    ]
    async with aiohttp.ClientSession() as http:
        for i in range(400):
            path = targets[i % len(targets)]
            if path == "/v1/events":
                body: Any = {"events": [_mutate(rng.choice(VALID), rng) for _ in range(3)]}
                body = _mutate(body, rng) if rng.random() < 0.2 else body
            elif path == "/v1/runs/r/end":
                body = _mutate({"failed": False, "path": VALID[3]["path"]}, rng)
            else:
                body = _mutate(
                    {"app": "qa", "run_id": "r", "deadline_s": 1, "timeout_s": 0.01}, rng
                )
            data = json.dumps(body).encode()
            async with http.post(server.url + path, data=data) as resp:
                text = await resp.text()
                assert resp.status < 500, (path, body, text)
                if resp.status >= 400:
                    assert resp.content_type == "application/json"
            if path == "/v1/backends/gpu/acquire" and resp.status == 200:
                release = f"{server.url}/v1/leases/{json.loads(text)['lease_id']}/release"
                async with http.post(release) as resp:
                    assert resp.status == 200
        # The server is still healthy and consistent afterwards.
        async with http.get(server.url + "/healthz") as resp:
            assert resp.status == 200
