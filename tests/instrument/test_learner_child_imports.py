"""The learner process imports only what it runs: the store, the graphs, numpy.

The real child is started by a real ``learner="process"`` runtime through a wrapper interpreter
that runs Python with ``-X importtime`` (every module the child imports, logged to a file); it
stores and learns runs, and its import log must not hold the public API's packages (the client,
the server, the simulator, the CLI, the decorators, the wire codec) or their dependencies.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

import hermes_sdk.instrument as hi
from hermes_sdk.instrument import runtime as rt
from hermes_sdk.instrument.learner_spawn import LEARNER_PYTHON_ENV
from tests.instrument.test_learner import produce

NOT_IN_CHILD = (
    "hermes_sdk.client",
    "hermes_sdk.server",
    "hermes_sdk.sim",
    "hermes_sdk.cli",
    "hermes_sdk.wire",
    "hermes_sdk.integrations",
    "hermes_sdk.instrument.runtime",
    "hermes_sdk.instrument.decorators",
    "hermes_sdk.instrument.handles",
    "hermes_sdk.instrument.scope",
    "hermes_sdk.instrument.recorder",
    "hermes_sdk.instrument.learner_process",
    "aiohttp",
    "rich",
    "msgspec",
    "openai",
    "httpx",
    "http",
    "email",
    "ssl",
    "redis",
)
"""Module roots the child must not import (a ``sqlite://`` or ``memory://`` store)."""
IN_CHILD = (
    "numpy",
    "sqlite3",
    "hermes_sdk.graph.registry",
    "hermes_sdk.store.sqlite",
    "hermes_sdk.instrument.learn_batch",
    "hermes_sdk.instrument.learner_child",
)


def imported_modules(log: Path) -> set[str]:
    """Names in a ``-X importtime`` log (``import time: self | cumulative | name``)."""
    names = set()
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name)
    return names


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_the_learner_process_imports_only_what_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    log = tmp_path / "imports.log"
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -X importtime "$@" 2>>{log}\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(LEARNER_PYTHON_ENV, str(wrapper))
    url = f"sqlite:///{tmp_path}/p.db" if store == "sqlite" else "memory://"
    hi.configure(store=url, learner="process")
    produce(40, seed=2)
    assert hi.flush(60)
    process = rt.current_runtime().process
    assert process is not None and process.active and process.stats().started
    assert hi.stats().runs_completed == 40  # the lean child stored and learned every run
    pid = process.stats().child_pid
    assert pid is not None and os.path.exists(f"/proc/{pid}")  # the wrapper exec'd the child
    names = imported_modules(log)
    for name in IN_CHILD:
        assert name in names, name
    banned = sorted(
        n for n in names for root in NOT_IN_CHILD if n == root or n.startswith(root + ".")
    )
    assert not banned, banned
    hi.configure()  # ends the child before the wrapper's log goes away
