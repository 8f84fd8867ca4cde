"""`hermes serve --loop`: uvloop when installed (auto), asyncio's loop on request, a clear error
for uvloop when it is missing; the served API is the same on both loops (a real ``hermes serve``
process each: a grant handed to a waiting acquire, a release, a deeply nested body answered 400)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from hermes_sdk.errors import ConfigError
from hermes_sdk.server import event_loop
from hermes_sdk.server.event_loop import loop_factory, resolve_loop, run_on, running_loop_name

HERMES = str(Path(sys.executable).with_name("hermes"))
_URL = re.compile(r"listening on (http://[\d.]+:\d+) \(.*loop (\w+)\)")


def test_names_resolve() -> None:
    assert resolve_loop("asyncio") == "asyncio"
    assert loop_factory("asyncio") is None
    assert resolve_loop("uvloop") == "uvloop"  # the dev extra installs it
    assert resolve_loop("auto") == "uvloop"
    with pytest.raises(ConfigError, match="unknown event loop"):
        resolve_loop("trio")


def test_without_uvloop_auto_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_loop, "uvloop_available", lambda: False)
    assert resolve_loop("auto") == "asyncio"
    with pytest.raises(ConfigError, match="hermes-sdk\\[fast\\]"):
        resolve_loop("uvloop")

    async def never() -> None:  # pragma: no cover - not run: the loop is refused first
        raise AssertionError

    with pytest.raises(ConfigError):
        run_on("uvloop", never())


@pytest.mark.parametrize(("name", "kind"), [("asyncio", "asyncio"), ("uvloop", "uvloop")])
def test_run_on_runs_that_loop(name: str, kind: str) -> None:
    async def which() -> str:
        await asyncio.sleep(0)
        return running_loop_name()

    assert run_on(name, which()) == kind


@pytest.fixture(params=["asyncio", "uvloop", "auto"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str]]:
    """A real ``hermes serve --loop NAME`` (one backend, one slot): (name, url, loop named at
    startup)."""
    name: str = request.param
    cmd = [HERMES, "serve", "--port", "0", "--store", "memory://", "--backend", "gpu=1"]
    proc = subprocess.Popen(
        [*cmd, "--loop", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        deadline = time.monotonic() + 60
        match = None
        while match is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            match = _URL.search(line)
        assert match is not None, "hermes serve did not print its URL"
        yield name, match.group(1), match.group(2)
    finally:
        proc.terminate()
        proc.wait(20)


def test_serve_on_each_loop(served: tuple[str, str, str]) -> None:
    name, url, started = served
    assert started == ("asyncio" if name == "asyncio" else "uvloop")

    async def drive() -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            events = [{"type": "run_start", "run_id": r, "app": "a"} for r in ("r1", "r2")] + [
                {"type": "unit_start", "run_id": r, "unit_id": "0", "node": "n"}
                for r in ("r1", "r2")
            ]
            async with http.post(url + "/v1/events", json={"events": events}) as resp:
                assert resp.status == 200
                assert (await resp.json())["accepted"] == 4
            acquire = url + "/v1/backends/gpu/acquire"
            async with http.post(acquire, json={"run_id": "r1", "timeout_s": 5}) as resp:
                assert resp.status == 200
                first = await resp.json()
            waiting = asyncio.ensure_future(
                http.post(acquire, json={"run_id": "r2", "timeout_s": 20})
            )
            await asyncio.sleep(0.2)
            assert not waiting.done()  # the one slot is held
            release = url + f"/v1/leases/{first['lease_id']}/release"
            async with http.post(release) as resp:
                assert resp.status == 200
            async with await waiting as resp:
                assert resp.status == 200
                second = await resp.json()
            assert second["lease_id"] != first["lease_id"]
            nested = b'{"a":' + b"[" * 5000
            async with http.post(
                url + "/v1/events", data=nested, headers={"Content-Type": "application/json"}
            ) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["code"] == "invalid_json"

    asyncio.run(drive())
