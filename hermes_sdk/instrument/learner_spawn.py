"""Starting the learner process: ``python -m hermes_sdk.instrument.learner_child IN_FD OUT_FD``.

A fresh interpreter through ``subprocess`` (the ``spawn`` semantics, never a fork of a threaded
app; not ``multiprocessing``, whose spawn re-imports the app's ``__main__`` and terminates daemon
children in its own exit hook). Runs go to the child through a pipe widened to
:data:`PIPE_BYTES`; the child answers through one end of a socket pair (read with
``MSG_WAITALL``: a frame in one ``recv`` per part). The store URL travels in the child's
environment (:data:`CHILD_STORE_ENV`), never on its command line, which any local user can read
(a ``redis://`` URL may carry a password).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import Final

LEARNER_PYTHON_ENV: Final = "HERMES_LEARNER_PYTHON"
"""Environment variable: the Python that runs the child (default ``sys.executable``)."""
CHILD_MODULE: Final = "hermes_sdk.instrument.learner_child"
CHILD_STORE_ENV: Final = "HERMES_LEARNER_CHILD_STORE"
"""Environment variable carrying the store URL to the learner process (internal)."""
PIPE_BYTES: Final = 1 << 20
"""Kernel buffer asked for the pipe to the child (Linux; default 64 KiB): batches sent while
the child learns wait there, so it merges them into one transaction. Bytes in it are outside the
queue's bound (at most this much)."""


def spawn_child(
    store_url: str, env_overrides: Mapping[str, str]
) -> tuple[subprocess.Popen[bytes], int, socket.socket]:
    """Start the child: ``(process, write end of the pipe to it, socket it answers on)``.
    ``env_overrides`` are set in its environment (the scheduler URL is removed from it)."""
    to_child_r, to_child_w = os.pipe()
    from_child, child_end = socket.socketpair()
    from_child_w = child_end.fileno()
    python = os.environ.get(LEARNER_PYTHON_ENV, "").strip() or sys.executable
    env = {**os.environ, **env_overrides, CHILD_STORE_ENV: store_url}
    env.pop("HERMES_SCHEDULER_URL", None)
    try:
        proc = subprocess.Popen(
            [python, "-m", CHILD_MODULE, str(to_child_r), str(from_child_w)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(to_child_r, from_child_w),
            env=env,
        )
    except BaseException:
        for fd in (to_child_r, to_child_w):
            os.close(fd)
        from_child.close()
        raise
    finally:
        child_end.close()
    os.close(to_child_r)
    _widen_pipe(to_child_w)
    return proc, to_child_w, from_child


def _widen_pipe(fd: int) -> None:
    import fcntl  # POSIX only, like the pipes themselves

    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is None:
        return
    with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size: keep the default
        fcntl.fcntl(fd, setpipe, PIPE_BYTES)
