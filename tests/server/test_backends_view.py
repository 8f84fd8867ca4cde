"""`GET /v1/backends` and the `hermes serve` start-up lines say which backends are gateway
upstreams and which are admission backends (real server on loopback, real `hermes serve`)."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from hermes_sdk.server import ServerConfig
from hermes_sdk.server.config import BackendConfig
from hermes_sdk.server.upstreams import parse_upstream_flag
from tests.reliability.harness import ServerProcess, running

SMALL = "small=http://127.0.0.1:9/v1,engine=vllm,max_inflight=16"
BIG = "big=http://127.0.0.1:9,engine=sglang,max_inflight=8,models=llama-70b"


def _config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(
        store_url=f"sqlite:///{tmp_path}/h.db",
        upstreams=(parse_upstream_flag(SMALL), parse_upstream_flag(BIG)),
        backends={"gpu": BackendConfig(max_inflight=4)},
    )


async def test_backends_say_what_they_are(tmp_path: Path) -> None:
    async with (
        running(_config(tmp_path)) as (_, url),
        aiohttp.ClientSession() as http,
        http.get(f"{url}/v1/backends") as resp,
    ):
        body = await resp.json()
    rows = {b["name"]: b for b in body["backends"]}
    assert rows["gpu"] == {
        "name": "gpu",
        "kind": "admission",
        "max_inflight": 4,
        "inflight": 0,
        "waiting": 0,
        "lease_s": rows["gpu"]["lease_s"],
    }
    assert {k: rows["small"][k] for k in ("kind", "url", "engine", "models", "max_inflight")} == {
        "kind": "upstream",
        "url": "http://127.0.0.1:9/v1",
        "engine": "vllm",
        "models": None,  # learned from the upstream's /v1/models
        "max_inflight": 16,
    }
    assert rows["big"]["models"] == ["llama-70b"] and rows["big"]["engine"] == "sglang"
    assert rows["big"]["url"] == "http://127.0.0.1:9/v1"


def test_serve_start_up_names_upstreams_and_admission_backends(tmp_path: Path) -> None:
    server = ServerProcess(
        "--store", f"sqlite:///{tmp_path}/h.db", "--upstream", SMALL, "--upstream", BIG,
        log_path=tmp_path / "serve.log",
    )  # fmt: skip
    try:
        log = tmp_path / "serve.log"
        for _ in range(600):  # the harness writes the child's output to the log as it comes
            lines = [ln.strip() for ln in log.read_text().splitlines()[1:3]]
            if len(lines) == 2:
                break
            time.sleep(0.05)
    finally:
        server.stop()
    assert lines[0] == (
        f"gateway: apps use base_url {server.url}/v1; 2 upstreams: "
        "small (vllm at http://127.0.0.1:9/v1, max_inflight 16, models from its /v1/models); "
        "big (sglang at http://127.0.0.1:9/v1, max_inflight 8, models llama-70b)"
    )
    assert lines[1] == "admission backends: none (add --backend NAME=MAX_INFLIGHT)"
