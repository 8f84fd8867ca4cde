"""Child servers of the demo (sim engines, scheduler): started, probed, always cleaned up.

Each child runs ``python -m hermes_sdk ...`` in its own process group, so stopping it also stops
anything it spawned. :class:`ChildProcesses` is a context manager; leaving it (normally, on an
exception or on Ctrl-C) terminates every child, then kills what did not exit within a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChildProcesses:
    """Owns the demo's child processes; stops all of them on exit."""

    def __init__(self, log_dir: Path, *, grace_s: float = 3.0) -> None:
        self._log_dir = log_dir
        self._grace_s = grace_s
        self._children: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> list[int]:
        """Process ids of every child started so far."""
        return [p.pid for p in self._children]

    def start(self, name: str, args: list[str], ready_url: str, *, timeout_s: float = 30.0) -> int:
        """Start ``hermes <args>`` and wait until ``ready_url`` answers 200; returns its pid."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log = (self._log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hermes_sdk", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._children.append(proc)
        with (self._log_dir / "pids").open("a") as pids:  # so anyone can check they are gone
            pids.write(f"{proc.pid} {name}\n")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {log.name}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(ready_url, timeout=1.0) as resp,
            ):
                if resp.status == 200:
                    return proc.pid
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not become ready at {ready_url} within {timeout_s} s")

    def stop(self, pid: int) -> None:
        """Stop one child (and its process group)."""
        for proc in self._children:
            if proc.pid == pid:
                self._terminate([proc])

    def close(self) -> None:
        """Stop every child; kill those that ignore SIGTERM for ``grace_s``."""
        self._terminate(self._children)

    def _terminate(self, procs: list[subprocess.Popen[bytes]]) -> None:
        alive = [p for p in procs if p.poll() is None]
        for proc in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._grace_s
        for proc in alive:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def __enter__(self) -> ChildProcesses:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
