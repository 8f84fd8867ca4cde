"""Hostile input: absurd token counts, 10^6-node paths, deep fan-out, control characters in
names, graph JSON with cycles and NaN. Each is refused with a 4xx JSON error (HTTP) or a
HermesError (library), and nothing already learned is lost: the graph JSON is byte-identical
before and after."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from hermes_sdk.errors import HermesError
from hermes_sdk.graph import GraphRegistry, PDGraph
from hermes_sdk.graph.records import Call, RunPath, Stage, path_from_dict
from hermes_sdk.server import BackendConfig, ServerConfig

from .harness import running

APP = "limits-app"


def _stage(
    node: str, *, calls: int = 1, tokens: object = 10, service_s: object = 0.5
) -> dict[str, Any]:
    call = {"service_s": service_s, "input_tokens": tokens, "output_tokens": 3}
    return {"node": node, "kind": "llm", "calls": [call] * calls}


def _raw(stage: str) -> str:
    return '{"app": "' + APP + '", "stages": [' + stage + "]}"


def _hostile_paths(huge_n: int = 1_000_000) -> dict[str, Any]:
    """name -> path dict (or raw body text) that must be refused."""
    return {
        "tokens_1e15": {"app": APP, "stages": [_stage("plan", tokens=10**15)]},
        "tokens_negative": {"app": APP, "stages": [_stage("plan", tokens=-5)]},
        "tokens_float_inf": {"app": APP, "stages": [_stage("plan", tokens=1e308)]},
        "service_nan": _raw('{"node": "plan", "kind": "llm", "calls": [{"service_s": NaN}]}'),
        "service_infinity": _raw(
            '{"node": "plan", "kind": "llm", "calls": [{"service_s": Infinity}]}'
        ),
        "service_1e12_s": {"app": APP, "stages": [_stage("plan", service_s=1e12)]},
        "nodes_huge": {"app": APP, "stages": [_stage(f"n{i}") for i in range(huge_n)]},
        "fan_out_huge_calls": {"app": APP, "stages": [_stage("plan", calls=huge_n)]},
        "name_nul": {"app": APP, "stages": [_stage("pl\x00an")]},
        "name_escape": {"app": APP, "stages": [_stage("plan\x1b[31m")]},
        "name_newline": {"app": APP, "stages": [_stage("plan\nEND")]},
        "name_surrogate": _raw('{"node": "\\ud800", "kind": "llm", "calls": [{"service_s": 1}]}'),
        "name_300_chars": {"app": APP, "stages": [_stage("x" * 300)]},
        "app_control": {"app": "bad\x07app", "stages": [_stage("plan")]},
        "reserved_end_node": {"app": APP, "stages": [_stage("END")]},
    }


async def scenario_input_limits(tmp: Path, *, huge_n: int = 1_000_000) -> dict[str, Any]:
    """Send every hostile path through ``POST /v1/events`` and the library; compare graphs.

    ``huge_n``: nodes of the long path and calls of the wide stage (the limit is 10^5).
    """
    cfg = ServerConfig(
        port=0,
        store_url=f"sqlite:///{tmp}/limits.db",
        backends={"gpu": BackendConfig()},
        max_body_bytes=64 * 1024 * 1024,  # let the 10^6-node bodies reach the validation
    )
    answers: dict[str, str] = {}
    bad: list[str] = []
    unicode_ok = False
    async with running(cfg) as (_, url), aiohttp.ClientSession() as http:

        async def post(body: str) -> tuple[int, Any]:
            headers = {"Content-Type": "application/json"}
            async with http.post(url + "/v1/events", data=body.encode(), headers=headers) as r:
                return r.status, await r.json(content_type=None)

        def event(path: Any) -> str:
            text = path if isinstance(path, str) else json.dumps(path)
            return '{"events": [{"type": "run_end", "run_id": "x", "path": ' + text + "}]}"

        for _ in range(5):  # something learned first
            status, _ = await post(event({"app": APP, "stages": [_stage("plan"), _stage("act")]}))
            assert status == 200, status
        uni = {"app": APP, "stages": [_stage("r\u00e9sum\u00e9-\u4e2d\u6587-\U0001f680")]}
        unicode_ok = (await post(event(uni)))[0] == 200
        async with http.get(f"{url}/v1/apps/{APP}/graph") as r:
            before = await r.text()
        t0 = time.perf_counter()
        for name, path in _hostile_paths(huge_n).items():
            status, data = await post(event(path))
            code = data.get("error", {}).get("code") if isinstance(data, dict) else None
            answers[name] = f"{status} {code}"
            if not (400 <= status < 500 and isinstance(code, str)):
                bad.append(f"{name}: {status} {data!r:.200}")
        http_s = time.perf_counter() - t0
        # an unknown field type in a whole batch, and a batch of 10^5 events
        status, _ = await post('{"events": ' + json.dumps([{"type": "unit_end"}] * 100_000) + "}")
        answers["batch_1e5_bad_events"] = str(status)
        if not 400 <= status < 500:
            bad.append(f"batch_1e5_bad_events: {status}")
        async with http.get(f"{url}/v1/apps/{APP}/graph") as r:
            after = await r.text()
    lib = _library_checks(huge_n)
    return {
        "name": "input_limits",
        "passed": not bad and before == after and unicode_ok and lib["passed"],
        "http_answers": answers,
        "refused_not_4xx": bad,
        "graph_json_identical": before == after,
        "unicode_names_accepted": unicode_ok,
        "http_total_s": round(http_s, 2),
        "huge_n": huge_n,
        "library": lib,
    }


def _library_checks(huge_n: int) -> dict[str, Any]:
    """The same through GraphRegistry/PDGraph directly, plus graph JSON with NaN and cycles."""
    reg = GraphRegistry()
    for _ in range(5):
        reg.observe(RunPath(APP, (Stage("plan", (Call(0.5, 10, 3),)), Stage("act", (Call(0.5),)))))
    before = reg.graph(APP).to_json()
    refused: dict[str, str] = {}
    accepted: list[str] = []
    for name, raw in _hostile_paths(huge_n).items():
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
            reg.observe(path_from_dict(data))
            accepted.append(name)
        except (HermesError, ValueError) as exc:  # GraphError is a ValueError and a HermesError
            refused[name] = type(exc).__name__
    builders: list[tuple[str, Callable[[], RunPath]]] = [
        (
            "direct_huge_stages",
            lambda: RunPath(APP, tuple(Stage(f"n{i}", (Call(1.0),)) for i in range(huge_n))),
        ),
        ("direct_nan_service", lambda: RunPath(APP, (Stage("plan", (Call(float("nan")),)),))),
    ]
    for name, build in builders:
        try:
            reg.observe(build())
            accepted.append(name)
        except (HermesError, ValueError) as exc:
            refused[name] = type(exc).__name__
    after = reg.graph(APP).to_json()
    # graph JSON with NaN, and a cyclic graph (a loop plan -> act -> plan ...) round-trips
    doc = json.loads(before)
    nan_text = before.replace('"runs": 5', '"runs": NaN', 1)
    json_errors = {}
    for name, text in (
        ("nan_runs", nan_text),
        ("not_json", before[: len(before) // 2]),
        ("wrong_shape", json.dumps({"app": APP, "nodes": 5})),
        ("list", json.dumps([doc])),
    ):
        try:
            PDGraph.from_json(text)
            json_errors[name] = "accepted"
        except HermesError as exc:
            json_errors[name] = type(exc).__name__
        except Exception as exc:
            json_errors[name] = "UNEXPECTED " + type(exc).__name__
    loop = PDGraph("loop", max_visit=8)
    for _ in range(3):
        loop.observe(RunPath("loop", tuple(Stage(n, (Call(0.1),)) for n in ["plan", "act"] * 50)))
    cyclic = PDGraph.from_json(loop.to_json())
    cyclic_ok = cyclic.to_json() == loop.to_json()
    reg.close()
    return {
        "passed": not accepted
        and before == after
        and cyclic_ok
        and all(
            v not in ("accepted",) and not v.startswith("UNEXPECTED") for v in json_errors.values()
        ),
        "refused": refused,
        "accepted_hostile": accepted,
        "graph_json_identical": before == after,
        "bad_graph_json": json_errors,
        "cyclic_graph_round_trips": cyclic_ok,
    }
