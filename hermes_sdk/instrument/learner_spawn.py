"""Starting the learner process: ``python -c CHILD_BOOT IN_FD OUT_FD``.

A fresh interpreter through ``subprocess`` (the ``spawn`` semantics, never a fork of a threaded
app; not ``multiprocessing``, whose spawn re-imports the app's ``__main__`` and terminates daemon
children in its own exit hook). Runs go to the child through a pipe widened to
:data:`PIPE_BYTES`; the child answers through one end of a socket pair (read with
``MSG_WAITALL``: a frame in one ``recv`` per part). The store URL travels in the child's
environment (:data:`CHILD_STORE_ENV`), never on its command line, which any local user can read
(a ``redis://`` URL may carry a password).

The child imports only what it runs (:data:`CHILD_BOOT`): ``python -m
hermes_sdk.instrument.learner_child`` would first run ``hermes_sdk/__init__.py`` and
``hermes_sdk/instrument/__init__.py``, which import the whole public API (the client, msgspec,
http, email, the decorators): ~9 MiB of a second interpreter's resident memory it never uses.
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
CHILD_BOOT: Final = (
    "import importlib.util as u, sys\n"
    "for n in ('hermes_sdk', 'hermes_sdk.instrument'):\n"
    "    m = sys.modules[n] = u.module_from_spec(u.find_spec(n))\n"
    "    p, _, a = n.rpartition('.')\n"
    "    if p: setattr(sys.modules[p], a, m)\n"
    f"from {CHILD_MODULE} import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
"""The child's ``-c`` program: the two packages on the way to :data:`CHILD_MODULE` are put in
``sys.modules`` as found, their ``__init__`` not run (so not their imports); every module below
them imports as usual."""
CHILD_STORE_ENV: Final = "HERMES_LEARNER_CHILD_STORE"
"""Environment variable carrying the store URL to the learner process (internal)."""
CHILD_MALLOC_ENV: Final = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
"""Set in the child's environment unless the app's has them: glibc's malloc serves every block
of 128 KiB or more with its own ``mmap`` and unmaps it when freed. By default it raises that
threshold to the largest block freed so far (up to 32 MiB), so the child's frames and batch
lists (~0.3 MB each) came from its heap and left it fragmented: the child fed 80,000 runs
faster than it learns grew 21.7-21.9 MiB with it, 22.9-24.4 without. Other C libraries ignore
the variable."""
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
    env = {**CHILD_MALLOC_ENV, **os.environ, **env_overrides, CHILD_STORE_ENV: store_url}
    env.pop("HERMES_SCHEDULER_URL", None)
    try:
        proc = subprocess.Popen(
            [python, "-c", CHILD_BOOT, str(to_child_r), str(from_child_w)],
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
