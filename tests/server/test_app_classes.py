"""Per-app-class completion times, read from a live server that runs went through on loopback.

The server runs on a fake clock (``create_app(..., clock=)``), so every run's completion time is
known to the test: the answers are compared with the same numbers computed here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import aiohttp
import numpy as np
import pytest

from hermes_sdk.server import ServerConfig, create_app
from hermes_sdk.server.app_classes import MAX_WINDOW_S
from hermes_sdk.server.completions import RUNS_PER_CLASS, CompletionLog, per_app
from hermes_sdk.server.config import ApiKey, hash_api_key
from hermes_sdk.wire.app_classes import AppClassStats
from tests.ui.feed import T0, Clock, LoopbackServer, serve_app

ACME: Final = "key-acme-app-classes"
RIVAL: Final = "key-rival-app-classes"
ADMIN: Final = "key-admin-app-classes"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server(tmp_path: Path, clock: Clock) -> AsyncIterator[LoopbackServer]:
    config = ServerConfig(port=0, store_url=f"sqlite:///{tmp_path}/classes.db")
    config = config.with_api_keys({ACME: "acme", RIVAL: "rival"})
    admin = ApiKey(hash_api_key(ADMIN, config.key_salt), "ops", admin=True)
    srv = await serve_app(
        create_app(replace(config, api_keys=(*config.api_keys, admin)), clock=clock)
    )
    try:
        yield srv
    finally:
        await srv.close()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _events(
    http: aiohttp.ClientSession, server: LoopbackServer, key: str, events: list[dict[str, Any]]
) -> None:
    async with http.post(
        f"{server.url}/v1/events", json={"events": events}, headers=_auth(key)
    ) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["rejected"] == 0


async def _get(
    http: aiohttp.ClientSession, server: LoopbackServer, path: str, key: str, status: int = 200
) -> dict[str, Any]:
    async with http.get(f"{server.url}{path}", headers=_auth(key)) as r:
        assert r.status == status, await r.text()
        assert r.content_type == "application/json"
        body: dict[str, Any] = await r.json()
        return body


def _start(run_id: str, app: str) -> dict[str, Any]:
    return {"type": "run_start", "run_id": run_id, "app": app}


def _end(run_id: str, *, failed: bool = False) -> dict[str, Any]:
    return {"type": "run_end", "run_id": run_id, "failed": failed}


def _expected(app: str, times: list[float], failed: int = 0) -> dict[str, Any]:
    took = np.asarray(times)
    return {
        "app": app,
        "runs": len(times),
        "failed": failed,
        "mean_s": float(np.mean(took)),
        "p95_s": float(np.percentile(took, 95)),
        "max_s": float(np.max(took)),
    }


async def _drive(http: aiohttp.ClientSession, server: LoopbackServer, clock: Clock) -> None:
    """acme: five rag runs started together and ended 1, 2, 3, 4 and 10 s later, one failed rag
    run, one code run paused 50 s (not counted), one code run ended while paused (abandoned, not
    counted) and one code run through the control API; rival: two rag runs."""
    await _events(http, server, ACME, [_start(f"rag-{i}", "rag") for i in range(6)])
    await _events(http, server, RIVAL, [_start("rag-0", "rag"), _start("rag-1", "rag")])
    await _events(http, server, ACME, [_start("code-0", "code"), _start("code-gone", "code")])
    for i, at in enumerate((1.0, 2.0, 3.0, 4.0)):
        clock.now_s = T0 + at
        await _events(http, server, ACME, [_end(f"rag-{i}")])
    await _events(http, server, ACME, [_end("rag-5", failed=True)])  # at T0 + 4
    await _events(http, server, ACME, [{"type": "run_pause", "run_id": "code-0"}])
    await _events(http, server, ACME, [{"type": "run_pause", "run_id": "code-gone"}])
    clock.now_s = T0 + 6.0
    await _events(http, server, RIVAL, [_end("rag-0")])
    clock.now_s = T0 + 10.0
    await _events(http, server, ACME, [_end("rag-4")])
    await _events(http, server, ACME, [_end("code-gone")])  # abandoned while paused
    clock.now_s = T0 + 54.0  # code-0 paused 50 s: it has been active 4 s
    await _events(http, server, ACME, [_start("code-0", "code")])
    clock.now_s = T0 + 57.0
    await _events(http, server, ACME, [_end("code-0")])  # 4 + 3 = 7 s active
    async with http.post(f"{server.url}/v1/runs", json={"app": "code"}, headers=_auth(ACME)) as r:
        run_id = (await r.json())["run_id"]
    clock.now_s = T0 + 62.5
    async with http.post(f"{server.url}/v1/runs/{run_id}/end", headers=_auth(ACME)) as r:
        assert r.status == 200, await r.text()
    clock.now_s = T0 + 80.0
    await _events(http, server, RIVAL, [_end("rag-1")])


async def test_each_apps_count_mean_and_p95_are_those_of_the_runs_driven(
    server: LoopbackServer, http: aiohttp.ClientSession, clock: Clock
) -> None:
    await _drive(http, server, clock)
    acme = await _get(http, server, "/v1/ui/app_classes", ACME)
    assert acme["tenant"] == "acme" and acme["tenants"] is None
    assert acme["now_s"] == T0 + 80.0 and acme["window_s"] is None
    assert acme["runs_kept"] == RUNS_PER_CLASS and acme["policy"] == "gittins+fair"
    assert acme["classes"] == [
        _expected("code", [7.0, 5.5]),
        _expected("rag", [1.0, 2.0, 3.0, 4.0, 10.0], failed=1),
    ]
    rag = acme["classes"][1]  # the numbers, by hand: 20 / 5; index 0.95 * 4 = 3.8 -> 4 + 0.8 * 6
    assert rag["mean_s"] == 4.0 and rag["p95_s"] == pytest.approx(8.8) and rag["max_s"] == 10.0
    rival = await _get(http, server, "/v1/ui/app_classes", RIVAL)
    assert rival["classes"] == [_expected("rag", [6.0, 80.0])]
    # only the runs that ended in the last 20 s (at T0 + 62.5 and T0 + 80)
    recent = await _get(http, server, "/v1/ui/app_classes?window_s=20", ACME)
    assert recent["window_s"] == 20.0 and recent["classes"] == [_expected("code", [5.5])]
    assert (await _get(http, server, "/v1/ui/app_classes?window_s=5", ACME))["classes"] == []
    # admin: every tenant's runs of an app pooled, and each tenant's own
    admin = await _get(http, server, "/v1/admin/app_classes", ADMIN)
    assert admin["tenant"] is None
    assert admin["classes"] == [
        _expected("code", [7.0, 5.5]),
        _expected("rag", [1.0, 2.0, 3.0, 4.0, 10.0, 6.0, 80.0], failed=1),
    ]
    assert admin["tenants"] == {"acme": acme["classes"], "rival": rival["classes"]}
    windowed = await _get(http, server, "/v1/admin/app_classes?window_s=20", ADMIN)
    assert windowed["classes"] == [_expected("code", [5.5]), _expected("rag", [80.0])]
    assert windowed["tenants"] == {  # a tenant with no run ended in the window is left out
        "acme": [_expected("code", [5.5])],
        "rival": [_expected("rag", [80.0])],
    }
    await _get(http, server, "/v1/admin/app_classes", ACME, status=403)


async def test_each_app_keeps_a_fixed_window_of_its_latest_runs(
    server: LoopbackServer, http: aiohttp.ClientSession, clock: Clock
) -> None:
    n = RUNS_PER_CLASS + 100
    await _events(http, server, ACME, [_start(f"r{i}", "rag") for i in range(n)])
    for batch in range(n // 100):  # 100 runs end each second: 1 s, 2 s, ... 6 s
        clock.now_s = T0 + batch + 1
        await _events(
            http, server, ACME, [_end(f"r{i}") for i in range(batch * 100, (batch + 1) * 100)]
        )
    body = await _get(http, server, "/v1/ui/app_classes", ACME)
    kept = [float(t) for t in range(2, n // 100 + 1) for _ in range(100)]  # the first 100 gone
    assert body["classes"] == [_expected("rag", kept)]
    assert body["classes"][0]["runs"] == RUNS_PER_CLASS


@pytest.mark.parametrize(
    "query",
    ["window_s=abc", "window_s=", "window_s=0", "window_s=-3", "window_s=nan", "window_s=inf",
     f"window_s={MAX_WINDOW_S * 2}", "window_s=1&window_s=2"],
)  # fmt: skip
async def test_a_malformed_window_is_a_400_with_the_json_error(
    server: LoopbackServer, http: aiohttp.ClientSession, query: str
) -> None:
    for path, key in (("/v1/ui/app_classes", ACME), ("/v1/admin/app_classes", ADMIN)):
        body = await _get(http, server, f"{path}?{query}", key, status=400)
        assert body["error"]["code"] == "invalid_request"
        assert body["error"]["message"].startswith("window_s: ")


async def test_the_endpoints_need_a_key(
    server: LoopbackServer, http: aiohttp.ClientSession
) -> None:
    for path in ("/v1/ui/app_classes", "/v1/admin/app_classes"):
        async with http.get(f"{server.url}{path}") as r:
            assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"


def test_the_log_keeps_at_most_max_classes_dropping_the_least_recently_ended() -> None:
    log = CompletionLog(runs_per_class=3, max_classes=2)

    def stats(tenant: str, cutoff_s: float | None = None) -> list[AppClassStats]:
        return per_app(log.window(cutoff_s, tenant))

    log.record("t", "a", 1.0, 1.0, False)
    log.record("t", "b", 2.0, 2.0, False)
    log.record("t", "a", 3.0, 3.0, False)  # a ended last: b is the least recently ended
    log.record("u", "c", 4.0, 4.0, True)
    assert [s.app for s in stats("t")] == ["a"] and log.dropped_classes == 1
    assert stats("u")[0].failed == 1 and stats("u")[0].mean_s is None
    for i in range(5):  # a's ring holds its last 3 runs
        log.record("t", "a", 10.0 + i, 10.0 + i, False)
    a = stats("t")[0]
    assert (a.runs, a.mean_s, a.max_s) == (3, 13.0, 14.0)
    assert stats("t", cutoff_s=14.0)[0].runs == 1
    assert stats("t", cutoff_s=14.5) == []
