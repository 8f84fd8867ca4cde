"""Property-based fuzzing of every control endpoint (docs/openapi.json) and the gateway.

Zero 5xx, zero crashes, every error a JSON body with a stable ``code``; afterwards the server
still answers and holds no leaked slot beyond what fuzzed acquires legitimately own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from hermes_sdk.server import BackendConfig, ServerConfig
from hermes_sdk.sim.engine import SimEngineConfig

from .fuzz import GATEWAY_OPERATIONS, Case, cases, openapi_operations, problem, send
from .harness import ThreadedServer

KEY = "fuzz-key-0123456789"
FUZZ_EXAMPLES = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    db = tmp_path_factory.mktemp("fuzz") / "hermes.db"
    config = ServerConfig(
        port=0,
        store_url=f"sqlite:///{db}",
        backends={"gpu": BackendConfig(max_inflight=100_000, lease_s=5.0), "r1": BackendConfig()},
        acquire_timeout_s=0.3,
    ).with_api_keys({KEY: "fuzzer"})
    srv = ThreadedServer(
        config, engine=SimEngineConfig(step_base_s=0.0005, min_output_tokens=1, max_output_tokens=4)
    )
    yield srv
    srv.close()


def check(server: ThreadedServer, case: Case) -> None:
    status, ctype, body = send(server.url, case)
    why = problem(status, ctype, body)
    assert why is None, f"{case.method} {case.path} body={case.body!r}: {why}"


def test_every_documented_operation_is_fuzzed() -> None:
    ops = {(o.method, o.path) for o in openapi_operations()}
    assert ("POST", "/v1/events") in ops and ("POST", "/v1/backends/{name}/acquire") in ops
    assert len(ops) >= 14


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases(openapi_operations(), KEY))
def test_control_api_never_5xx_and_errors_are_coded(server: ThreadedServer, case: Case) -> None:
    check(server, case)


@settings(
    max_examples=FUZZ_EXAMPLES // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases(GATEWAY_OPERATIONS, KEY))
def test_gateway_never_5xx_and_errors_are_coded(server: ThreadedServer, case: Case) -> None:
    check(server, case)


def test_server_is_healthy_after_fuzzing(server: ThreadedServer) -> None:
    status, _, body = send(server.url, Case("GET", "/healthz", None, {}))
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body = send(
        server.url, Case("GET", "/v1/backends", None, {"Authorization": f"Bearer {KEY}"})
    )
    backends = {b["name"]: b for b in json.loads(body)["backends"]}
    assert backends["gpu"]["waiting"] == 0 and backends["sim"]["waiting"] == 0
    assert backends["sim"]["inflight"] == 0  # every forwarded call gave its slot back
