"""Deeply nested JSON (``{"a":`` then 5000 ``[``) to every endpoint that reads a JSON body is a
4xx with the JSON error body, never a 500 (the decoder's RecursionError used to escape)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from hermes_sdk.server import BackendConfig, ServerConfig
from hermes_sdk.sim.engine import SimEngineConfig

from .fuzz import DEEP_JSON, GATEWAY_OPERATIONS, Case, Operation, openapi_operations, problem, send
from .harness import ThreadedServer

KEY = "deep-json-key-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    db = tmp_path_factory.mktemp("deep") / "hermes.db"
    config = ServerConfig(
        port=0, store_url=f"sqlite:///{db}", backends={"gpu": BackendConfig()}
    ).with_api_keys({KEY: "tenant-a"})
    srv = ThreadedServer(config, engine=SimEngineConfig(step_base_s=0.0005))
    yield srv
    srv.close()


def _concrete(path: str) -> str:
    """A path template with every ``{param}`` filled (a run id, a backend, a lease)."""
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + "gpu" + path[end + 1 :]
    return path


OPERATIONS = [op for op in [*openapi_operations(), *GATEWAY_OPERATIONS] if op.body is not None]


def test_the_named_endpoints_take_a_body() -> None:
    paths = {op.path for op in OPERATIONS}
    assert {"/v1/events", "/v1/runs", "/v1/runs/{run_id}/end", "/v1/chat/completions"} <= paths


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
def test_deep_json_is_a_coded_4xx(server: ThreadedServer, op: Operation) -> None:
    method, path = op.method, _concrete(op.path)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    status, ctype, body = send(server.url, Case(method, path, DEEP_JSON, headers))
    assert 400 <= status < 500, (status, body[:200])
    assert problem(status, ctype, body) is None
    err = json.loads(body)["error"]
    assert err["code"] in {"invalid_json", "invalid_request", "not_found", "unauthorized"}


def test_the_guard_decodes_normal_bodies() -> None:
    from hermes_sdk.server.middlewares import loads_json

    assert loads_json(b'{"a": [[1]]}') == {"a": [[1]]}
    nested = "[" * 200 + "]" * 200
    assert loads_json(nested) == json.loads(nested)
    with pytest.raises(json.JSONDecodeError, match="nesting too deep"):
        loads_json(DEEP_JSON + b"]" * 5000 + b"}")
