"""Protected mode, key roles and expiry, /metrics exposure, reload of keys and rate limits.

Real servers on loopback (the ``serve`` fixture) and real hermes.toml files; the refusal of
`hermes serve` itself is tested on the real command in tests/reliability/test_exposure.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from hermes_sdk.cli import app as cli_app
from hermes_sdk.errors import ConfigError
from hermes_sdk.server import ServerConfig, load_config
from hermes_sdk.server.auth import Keyring
from hermes_sdk.server.config import ApiKey, hash_api_key
from hermes_sdk.server.exposure import (
    check_protected_mode,
    insecure_mode,
    is_loopback,
    metrics_public,
)

from .conftest import Server, start_server


def _toml(keys: list[dict[str, object]], server: str = "") -> str:
    out = [f"[server]\nstore = 'memory://'\n{server}\n[backends.gpu]\nmax_inflight = 1\n"]
    for k in keys:
        out.append("[[api_keys]]\n" + "".join(f"{n} = {_v(v)}\n" for n, v in k.items()))
    return "\n".join(out)


def _v(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower()


async def _start(path: Path, text: str, **changes: object) -> Server:
    path.write_text(text)
    return await start_server(replace(load_config(path), port=0, **changes))  # type: ignore[arg-type]


async def _get(
    http: aiohttp.ClientSession, url: str, key: str | None, method: str = "GET"
) -> tuple[int, dict[str, object] | str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with http.request(method, url, headers=headers) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.8.7", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.1.2.3", False),
        ("192.168.0.10", False),
        ("no-such-host.invalid", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_protected_mode_refuses_an_exposed_bind_without_keys() -> None:
    exposed = ServerConfig(host="0.0.0.0")
    with pytest.raises(ConfigError) as err:
        check_protected_mode(exposed)
    message = str(err.value)
    assert "[[api_keys]]" in message and "--insecure-no-auth" in message
    assert "0.0.0.0" in message
    check_protected_mode(ServerConfig())  # loopback without keys: fine
    check_protected_mode(exposed.with_api_keys({"k": "acme"}))  # exposed with keys: fine
    assert not insecure_mode(exposed)


def test_insecure_override_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    cfg = ServerConfig(host="0.0.0.0", insecure_no_auth=True)
    with caplog.at_level("WARNING", logger="hermes_sdk.server"):
        check_protected_mode(cfg)
    assert insecure_mode(cfg)
    assert any("INSECURE" in r.message and r.levelname == "WARNING" for r in caplog.records)
    # the override is no-op on loopback or with keys: nothing to warn about
    assert not insecure_mode(ServerConfig(insecure_no_auth=True))


def test_metrics_public_by_default_only_on_loopback() -> None:
    assert metrics_public(ServerConfig())
    assert not metrics_public(ServerConfig(host="0.0.0.0"))
    assert metrics_public(ServerConfig(host="0.0.0.0", metrics_public=True))
    assert not metrics_public(ServerConfig(metrics_public=False))


def test_api_key_entries_parse_role_and_not_after(tmp_path: Path) -> None:
    digest = hash_api_key("k2")
    (tmp_path / "h.toml").write_text(
        _toml(
            [
                {"tenant": "acme", "key": "k1", "role": "admin"},
                {"tenant": "acme", "key_sha256": digest.upper()},
            ]
        )
        + "[[api_keys]]\ntenant = 'bravo'\nkey = 'k3'\nnot_after = 2030-01-02T03:04:05+01:00\n"
        + "[[api_keys]]\ntenant = 'bravo'\nkey = 'k4'\nnot_after = 1700000000\n"
    )
    cfg = load_config(tmp_path / "h.toml")
    a, b, c, d = cfg.api_keys
    assert (a.tenant, a.admin, a.not_after, a.from_file) == ("acme", True, None, True)
    assert (b.key_sha256, b.admin) == (digest, False)
    want = dt.datetime(2030, 1, 2, 2, 4, 5, tzinfo=dt.UTC).timestamp()
    assert c.not_after == want
    assert d.not_after == 1_700_000_000.0
    assert cfg.config_file == str((tmp_path / "h.toml").resolve())
    assert "k1" not in repr(cfg.api_keys)


@pytest.mark.parametrize(
    "entry",
    [
        "tenant = 'a'\nkey = 'k'\nrole = 'root'",
        "tenant = 'a'\nkey = 'k'\nnot_after = 2030-01-01T00:00:00",  # no offset
        "tenant = 'a'\nkey = 'k'\nnot_after = 2030-01-01",
        "tenant = 'a'\nkey = 'k'\nkey_sha256 = '" + "0" * 64 + "'",
        "tenant = 'a'\nkey_sha256 = 'abc'",
        "tenant = 'a'\nkey = 'k'\nadmin = true",
    ],
)
def test_bad_api_key_entries_are_config_errors(tmp_path: Path, entry: str) -> None:
    (tmp_path / "bad.toml").write_text(f"[[api_keys]]\n{entry}\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path / "bad.toml")


def test_keyring_expiry_follows_its_clock() -> None:
    now = [1000.0]
    ring = Keyring(
        [ApiKey(hash_api_key("k"), "acme", not_after=1010.0)], "hermes-sdk", clock=lambda: now[0]
    )
    assert ring.tenant_of("k") == "acme"
    now[0] = 1010.0
    assert ring.tenant_of("k") is None
    lookup = ring.lookup("k")
    assert lookup is not None and lookup.expired(now[0])
    assert not ring.valid(hash_api_key("k"))


def test_keys_new_prints_a_key_and_the_line_that_accepts_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app, ["keys", "new", "--tenant", "acme", "--admin", "--not-after", "2031-05-06"]
    )
    assert result.exit_code == 0, result.output
    key = re.search(r"^(hk_[A-Za-z0-9_-]{43})$", result.stdout, re.M)
    assert key is not None
    table = result.stdout[result.stdout.index("[[api_keys]]") :]
    assert key.group(1) not in table
    (tmp_path / "h.toml").write_text(table)
    cfg = load_config(tmp_path / "h.toml")
    ring = Keyring(cfg.api_keys, cfg.key_salt)
    assert ring.tenant_of(key.group(1)) == "acme"
    assert cfg.api_keys[0].admin
    assert cfg.api_keys[0].not_after == dt.datetime(2031, 5, 6, tzinfo=dt.UTC).timestamp()
    again = CliRunner().invoke(cli_app, ["keys", "new", "--tenant", "acme"])
    assert key.group(1) not in again.stdout  # fresh each time


def test_keys_new_uses_the_config_salt(tmp_path: Path) -> None:
    (tmp_path / "h.toml").write_text("[server]\nkey_salt = 'pepper'\n")
    result = CliRunner().invoke(
        cli_app, ["keys", "new", "--tenant", "t", "--config", str(tmp_path / "h.toml")]
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.splitlines()[0]
    assert hash_api_key(key, "pepper") in result.stdout
    bad = CliRunner().invoke(cli_app, ["keys", "new", "--tenant", "t", "--not-after", "soon"])
    assert bad.exit_code == 2


async def test_expired_key_is_refused_and_admin_role_is_enforced(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    past, future = time.time() - 60, time.time() + 3600
    text = _toml(
        [
            {"tenant": "acme", "key": "live", "not_after": future},
            {"tenant": "acme", "key": "stale", "not_after": past},
            {"tenant": "ops", "key": "boss", "role": "admin"},
        ],
        server="metrics_public = false",
    )
    server = await _start(tmp_path / "h.toml", text)
    try:
        url = server.url
        assert (await _get(http, f"{url}/v1/backends", "live"))[0] == 200
        status, body = await _get(http, f"{url}/v1/backends", "stale")
        assert status == 401 and isinstance(body, dict)
        assert body["error"] == {"code": "key_expired", "message": body["error"]["message"]}  # type: ignore[index]
        # /metrics not public: 401 without a key, 403 for a tenant key, 200 for an admin key
        assert (await _get(http, f"{url}/metrics", None))[0] == 401
        assert (await _get(http, f"{url}/metrics", "live"))[0] == 403
        status, text_ = await _get(http, f"{url}/metrics", "boss")
        assert status == 200 and "hermes_queue_depth" in str(text_)
        assert (await _get(http, f"{url}/v1/admin/reload", "live", "POST"))[0] == 403
        assert (await _get(http, f"{url}/healthz", None))[1]["auth"] == "api_keys"  # type: ignore[index]
    finally:
        await server.runner.cleanup()


async def test_reload_swaps_keys_and_rate_limits(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    path = tmp_path / "h.toml"
    admin = {"tenant": "ops", "key": "boss", "role": "admin"}
    server = await _start(path, _toml([admin, {"tenant": "acme", "key": "old"}]))
    try:
        url = server.url
        assert (await _get(http, f"{url}/v1/backends", "old"))[0] == 200
        assert (await _get(http, f"{url}/v1/backends", "new"))[0] == 401
        path.write_text(
            _toml(
                [admin, {"tenant": "acme", "key": "new"}],
                server="rate_limit_rps = 0.001\nrate_limit_burst = 3",
            )
        )
        status, report = await _get(http, f"{url}/v1/admin/reload", "boss", "POST")
        assert status == 200 and isinstance(report, dict)
        assert (report["keys"], report["added"], report["removed"]) == (2, 1, 1)
        assert (report["rate_limit_rps"], report["rate_limit_burst"]) == (0.001, 3)
        assert report["restart_required"] == []
        assert (await _get(http, f"{url}/v1/backends", "old"))[0] == 401
        statuses = [(await _get(http, f"{url}/v1/backends", "new"))[0] for _ in range(4)]
        assert statuses == [200, 200, 200, 429]  # the new burst of 3, then limited
        # rate limit removed again, and a setting that needs a restart is reported
        path.write_text(_toml([admin, {"tenant": "acme", "key": "new"}]).replace("= 1", "= 2"))
        status, report = await _get(http, f"{url}/v1/admin/reload", "boss", "POST")
        assert status == 200 and isinstance(report, dict)
        assert report["rate_limit_rps"] is None and report["restart_required"] == ["backends"]
        assert (await _get(http, f"{url}/v1/backends", "new"))[0] == 200
    finally:
        await server.runner.cleanup()


@pytest.mark.parametrize(
    ("new_text", "why"),
    [
        ("[server]\nport = 'x'\n", "config_error"),
        ("not toml [", "config_error"),
        ("[server]\nkey_salt = 'other'\n[[api_keys]]\ntenant = 'ops'\nkey = 'boss'\n", "salt"),
        ("[server]\nstore = 'memory://'\n", "every API key"),
    ],
)
async def test_a_refused_reload_changes_nothing(
    tmp_path: Path, http: aiohttp.ClientSession, new_text: str, why: str
) -> None:
    path = tmp_path / "h.toml"
    server = await _start(
        path,
        _toml([{"tenant": "ops", "key": "boss", "role": "admin"}, {"tenant": "a", "key": "k"}]),
    )
    try:
        path.write_text(new_text)
        status, body = await _get(http, f"{server.url}/v1/admin/reload", "boss", "POST")
        assert status == 400 and why in str(body)
        assert (await _get(http, f"{server.url}/v1/backends", "k"))[0] == 200
        assert (await _get(http, f"{server.url}/v1/backends", "boss"))[0] == 200
    finally:
        await server.runner.cleanup()


async def test_reload_without_a_config_file_and_in_open_mode(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    keyed = await start_server(
        ServerConfig(port=0, store_url="memory://").with_api_keys({"boss": "ops"})
    )
    try:
        # keys given programmatically carry no role: admin routes are forbidden
        assert (await _get(http, f"{keyed.url}/v1/admin/reload", "boss", "POST"))[0] == 403
    finally:
        await keyed.runner.cleanup()
    bare = await start_server(ServerConfig(port=0, store_url="memory://"))
    try:
        status, body = await _get(http, f"{bare.url}/v1/admin/reload", None, "POST")
        assert status == 409 and "no_config_file" in str(body)
    finally:
        await bare.runner.cleanup()
    # open mode read from a file: a loopback client may reload, and keys can be added
    path = tmp_path / "open.toml"
    server = await _start(path, _toml([]))
    try:
        assert (await _get(http, f"{server.url}/v1/backends", None))[0] == 200
        path.write_text(_toml([{"tenant": "ops", "key": "boss", "role": "admin"}]))
        status, report = await _get(http, f"{server.url}/v1/admin/reload", None, "POST")
        assert status == 200 and isinstance(report, dict) and report["added"] == 1
        assert (await _get(http, f"{server.url}/v1/backends", None))[0] == 401
        assert (await _get(http, f"{server.url}/v1/backends", "boss"))[0] == 200
    finally:
        await server.runner.cleanup()


async def test_insecure_mode_shows_on_healthz_and_ui(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # the app is told it was configured for 0.0.0.0 (the test still listens on loopback)
    server = await start_server(
        ServerConfig(port=0, store_url="memory://", host="0.0.0.0", insecure_no_auth=True)
    )
    plain = await start_server(ServerConfig(port=0, store_url="memory://"))
    try:
        status, health = await _get(http, f"{server.url}/healthz", None)
        assert status == 200 and isinstance(health, dict)
        assert health["auth"] == "insecure_no_auth" and "--insecure-no-auth" in str(health)
        status, page = await _get(http, f"{server.url}/ui", None)
        assert status == 200 and 'id="insecure"' in str(page)
        assert "--insecure-no-auth" in str(page)
        assert (await _get(http, f"{plain.url}/healthz", None))[1]["auth"] == "none"  # type: ignore[index]
        assert 'id="insecure"' not in str((await _get(http, f"{plain.url}/ui", None))[1])
    finally:
        await server.runner.cleanup()
        await plain.runner.cleanup()


async def test_a_waiting_acquire_ends_when_its_key_expires(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """Expiry needs no reload: the waiter of the expiring key leaves; the others keep order."""
    text = _toml(
        [
            {"tenant": "acme", "key": "steady"},
            {"tenant": "acme", "key": "brief", "not_after": time.time() + 2.0},
        ],
        server="acquire_timeout_s = 10",
    )
    server = await _start(tmp_path / "h.toml", text)
    url = f"{server.url}/v1/backends/gpu/acquire"

    async def acquire(key: str) -> tuple[int, dict[str, object]]:
        async with http.post(url, json={}, headers={"Authorization": f"Bearer {key}"}) as r:
            return r.status, await r.json()

    async def waiting() -> int:
        _, body = await _get(http, f"{server.url}/v1/backends", "steady")
        return int(body["backends"][0]["waiting"])  # type: ignore[index]

    async def until_waiting(n: int, task: asyncio.Task[object] | None = None) -> None:
        while await waiting() < n and not (task is not None and task.done()):
            await asyncio.sleep(0.01)

    try:
        status, holder = await acquire("steady")
        assert status == 200
        w1 = asyncio.create_task(acquire("steady"))
        await until_waiting(1)
        w2 = asyncio.create_task(acquire("brief"))
        await until_waiting(2, w2)  # type: ignore[arg-type]
        w3 = asyncio.create_task(acquire("steady"))
        await until_waiting(3 if not w2.done() else 2)
        status, body = await w2
        assert (status, body["error"]["code"]) == (401, "key_expired")  # type: ignore[index]
        assert await waiting() == 2
        release = f"{server.url}/v1/leases/{holder['lease_id']}/release"
        assert (await _get(http, release, "steady", "POST"))[0] == 200
        status, first = await w1
        assert status == 200 and not w3.done()
        release = f"{server.url}/v1/leases/{first['lease_id']}/release"
        assert (await _get(http, release, "steady", "POST"))[0] == 200
        assert (await w3)[0] == 200
    finally:
        await server.runner.cleanup()
