"""Subprocess pool prewarm adapter: a backend is a local process with a real start-up time.

Each backend has a :class:`ProcessSpec`: the command to run and a readiness probe (a TCP port
accepting connections, or an HTTP URL answering < 500). ``prewarm`` starts the process in the
background and probes until ready; ``acquire`` is what a stage calls before using the backend:
it returns at once if the process is ready, else starts it (if needed) and waits, returning the
start-up seconds it waited (the cold start the stage saw). ``release`` stops the process: SIGTERM,
then SIGKILL after ``stop_timeout_s``. Observed start-up seconds are reported to ``on_ready``
(e.g. the planner ledger's ``ready``) so the planner learns the cold start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from hermes_sdk.errors import ConfigError

log = logging.getLogger("hermes_sdk.prewarm.subprocess")


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """How to start one backend process and tell when it is ready (seconds)."""

    argv: tuple[str, ...]
    ready_tcp: tuple[str, int] | None = None
    ready_url: str | None = None
    ready_timeout_s: float = 60.0
    probe_interval_s: float = 0.02
    stop_timeout_s: float = 5.0
    env: dict[str, str] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not self.argv:
            raise ConfigError("ProcessSpec.argv must not be empty")
        if (self.ready_tcp is None) == (self.ready_url is None):
            raise ConfigError("ProcessSpec needs exactly one of ready_tcp or ready_url")


@dataclass(slots=True, eq=False)
class _Instance:
    proc: asyncio.subprocess.Process
    started_s: float
    ready: asyncio.Event
    probe: asyncio.Task[None] | None = None
    failed: bool = False


class SubprocessPoolAdapter:
    """One local process per backend, started on prewarm or on demand, stopped on release."""

    def __init__(
        self,
        specs: dict[str, ProcessSpec],
        *,
        on_ready: Callable[[str, float], None] | None = None,
    ) -> None:
        self.specs = dict(specs)
        self.on_ready = on_ready
        """Called with (backend, start-up seconds) when a process becomes ready."""
        self._instances: dict[str, _Instance] = {}

    def __repr__(self) -> str:
        return f"SubprocessPoolAdapter({sorted(self.specs)})"

    def pid(self, backend: str) -> int | None:
        """Process id of the backend's running process, if any."""
        inst = self._instances.get(backend)
        return inst.proc.pid if inst is not None else None

    def is_ready(self, backend: str) -> bool:
        """True when the backend's process is up and passed its probe."""
        inst = self._instances.get(backend)
        return inst is not None and inst.ready.is_set() and inst.proc.returncode is None

    async def _start(self, backend: str) -> _Instance | None:
        inst = self._instances.get(backend)
        if inst is not None and inst.proc.returncode is None and not inst.failed:
            return inst
        spec = self.specs.get(backend)
        if spec is None:
            return None
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=spec.env,
            start_new_session=True,
        )
        inst = _Instance(proc, time.monotonic(), asyncio.Event())
        inst.probe = asyncio.get_running_loop().create_task(self._probe(backend, spec, inst))
        self._instances[backend] = inst
        return inst

    async def _probe(self, backend: str, spec: ProcessSpec, inst: _Instance) -> None:
        deadline_s = inst.started_s + spec.ready_timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
            while time.monotonic() < deadline_s and inst.proc.returncode is None:
                if await _probe_once(spec, session):
                    inst.ready.set()
                    startup_s = time.monotonic() - inst.started_s
                    if self.on_ready is not None:
                        self.on_ready(backend, startup_s)
                    return
                await asyncio.sleep(spec.probe_interval_s)
        inst.failed = True
        inst.ready.set()  # wake waiters; acquire() sees the failure
        log.warning("backend %s did not become ready (exit code %s)", backend, inst.proc.returncode)

    async def prewarm(
        self, backend: str, *, reason: str = "", eta_s: float | None = None, key: str = ""
    ) -> None:
        """Start the backend's process (no-op if running or unknown); returns without waiting."""
        try:
            await self._start(backend)
        except OSError:
            log.exception("could not start backend %s", backend)

    async def acquire(self, backend: str) -> float:
        """Make sure the backend is ready; returns the seconds waited for its start-up.

        Raises ``ConfigError`` for an unknown backend and ``RuntimeError`` if it fails to start.
        """
        if backend not in self.specs:
            raise ConfigError(f"no process configured for backend {backend!r}")
        if self.is_ready(backend):
            return 0.0
        t0 = time.monotonic()
        inst = await self._start(backend)
        assert inst is not None
        await inst.ready.wait()
        if inst.failed or inst.proc.returncode is not None:
            raise RuntimeError(f"backend {backend!r} failed to start")
        return time.monotonic() - t0

    async def release(self, backend: str, *, key: str = "") -> None:
        """Stop the backend's process: SIGTERM, SIGKILL after ``stop_timeout_s``."""
        inst = self._instances.pop(backend, None)
        if inst is None:
            return
        if inst.probe is not None:
            inst.probe.cancel()
        await _stop(inst.proc, self.specs[backend].stop_timeout_s)

    async def aclose(self) -> None:
        """Stop every process."""
        for backend in list(self._instances):
            await self.release(backend)


async def _probe_once(spec: ProcessSpec, session: aiohttp.ClientSession) -> bool:
    try:
        if spec.ready_tcp is not None:
            _, writer = await asyncio.open_connection(*spec.ready_tcp)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        assert spec.ready_url is not None
        async with session.get(spec.ready_url) as resp:
            return resp.status < 500
    except (OSError, aiohttp.ClientError, TimeoutError):
        return False


async def _stop(proc: asyncio.subprocess.Process, stop_timeout_s: float) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), stop_timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
