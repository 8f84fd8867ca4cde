"""Real servers for the reliability scenarios: in-process, in a thread, as a `hermes serve` child,
plus a real ``redis-server`` and the simulated engine. No mocks."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from hermes_sdk.server import ServerConfig, create_app
from hermes_sdk.server.upstreams import UpstreamConfig
from hermes_sdk.sim.engine import SimEngineConfig, serve_sim_engine

HERMES = Path(sys.executable).with_name("hermes")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
_URL = re.compile(r"listening on (http://[\d.]+:\d+)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def running(config: ServerConfig) -> AsyncIterator[tuple[web.Application, str]]:
    """``create_app(config)`` on a free loopback port of this event loop; yields (app, url)."""
    app = create_app(config)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield app, f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def with_engine(
    config: ServerConfig, sim: SimEngineConfig | None = None, **upstream: object
) -> AsyncIterator[tuple[web.Application, str, str]]:
    """A sim engine plus a scheduler whose gateway forwards to it: (app, url, engine base URL)."""
    async with serve_sim_engine(sim or SimEngineConfig()) as engine_url:
        up = UpstreamConfig(name="sim", url=engine_url, models=("sim-model",), **upstream)  # type: ignore[arg-type]
        async with running(replace(config, upstreams=(up,))) as (app, url):
            yield app, url, engine_url


class ThreadedServer:
    """A scheduler app on its own event loop thread (for synchronous hypothesis tests).

    With ``engine`` set, a sim engine runs on the same loop and the gateway forwards to it.
    """

    def __init__(self, config: ServerConfig, engine: SimEngineConfig | None = None) -> None:
        self._engine = engine
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.url = ""
        self.app: web.Application | None = None
        self._thread = threading.Thread(target=self._main, args=(config,), daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("threaded server did not start")

    def _main(self, config: ServerConfig) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve(config))

    async def _serve(self, config: ServerConfig) -> None:
        self._stop = asyncio.Event()
        if self._engine is not None:
            async with with_engine(config, self._engine) as (app, url, _):
                self.app, self.url = app, url
                self._ready.set()
                await self._stop.wait()
            return
        async with running(config) as (app, url):
            self.app, self.url = app, url
            self._ready.set()
            await self._stop.wait()

    def close(self) -> None:
        """Stop the server and join its thread."""
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


class ServerProcess:
    """A ``hermes serve`` child process; ``url`` is known once it listens."""

    def __init__(self, *args: str, port: int = 0, log_path: Path | None = None) -> None:
        env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}
        self.log_path = log_path
        self._log = open(log_path, "w") if log_path is not None else None  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(HERMES), "serve", "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.url = self._wait_listening(30.0)
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_listening(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        seen: list[str] = []
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if self._log is not None:
                self._log.write(line)
            match = _URL.search(line)
            if match:
                return match.group(1)
        self.proc.kill()
        raise RuntimeError(f"hermes serve did not start: {''.join(seen)}")

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self._log is not None:
                self._log.write(line)
                self._log.flush()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def peak_rss_kib(self) -> int:
        """VmHWM of the process (peak resident set, KiB), 0 if it is gone."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        match = re.search(r"VmHWM:\s+(\d+) kB", text)
        return int(match.group(1)) if match else 0

    def kill(self) -> None:
        """SIGKILL: nothing flushed; only what was acknowledged may survive."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None


class RedisProcess:
    """A real ``redis-server`` on a free port (AOF, fsync always), restartable on the same port."""

    def __init__(self, workdir: Path, *, persist: bool = True) -> None:
        self.port = free_port()
        self.persist = persist
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server and wait until it answers."""
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persist else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """SIGKILL the server (a crash: only what the AOF holds survives)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
