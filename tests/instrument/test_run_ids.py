"""Run ids: uuid4-shaped, unique across threads and forked children, and no system call per run
(a per-run ``os.urandom`` released the GIL and starved the thread learner, issue 29)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable

import pytest

import hermes_sdk.instrument as hi
from hermes_sdk.instrument import run_ids

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_ids_are_32_hex_digits_and_unique_across_threads() -> None:
    got: list[list[str]] = [[] for _ in range(8)]

    def make(out: list[str]) -> None:
        for _ in range(5_000):
            out.append(run_ids.new_run_id())

    threads = [threading.Thread(target=make, args=(out,)) for out in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for out in got for i in out]
    assert all(HEX32.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids) == 40_000


def test_a_run_costs_no_urandom_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real: Callable[[int], bytes] = os.urandom

    def counting(n: int) -> bytes:
        calls.append(n)
        return real(n)

    @hi.tool
    def step(i: int) -> int:
        return i

    monkeypatch.setattr(os, "urandom", counting)
    seen = set()
    for i in range(200):
        with hi.run("ids") as run:
            step(i)
            seen.add(run.run_id)
    assert calls == []  # uuid.uuid4() read os.urandom(16) at every run
    assert len(seen) == 200 and all(HEX32.fullmatch(i) for i in seen)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_draws_its_own_prefix() -> None:
    parent = [run_ids.new_run_id() for _ in range(3)]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        try:
            os.write(write_end, ",".join(run_ids.new_run_id() for _ in range(3)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        child = f.read().decode().split(",")
    os.waitpid(pid, 0)
    after = run_ids.new_run_id()
    assert len(child) == 3 and all(HEX32.fullmatch(i) for i in child)
    assert {i[:16] for i in child} != {parent[0][:16]}  # a fresh prefix, not the parent's
    assert not set(child) & {*parent, after}
    assert after[:16] == parent[0][:16]  # the parent keeps its own
