"""Client-side prewarm callbacks: subscribed per backend, run off the caller's thread, fail-open."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import pytest

import hermes_sdk as hermes
from hermes_sdk.instrument import PrewarmNotice, dispatch_prewarm, remove_prewarm
from hermes_sdk.instrument.prewarm_hooks import clear_prewarm_callbacks


@dataclass(frozen=True)
class Notice:
    action: Literal["prewarm", "release"]
    backend: str
    eta_s: float | None = None


@pytest.fixture(autouse=True)
def no_callbacks() -> Iterator[None]:
    clear_prewarm_callbacks()
    yield
    clear_prewarm_callbacks()


def test_callbacks_run_for_their_backend_on_another_thread() -> None:
    got: list[tuple[str, str, float | None]] = []
    done = threading.Event()
    caller = threading.get_ident()

    @hermes.on_prewarm("sql-db")
    def warm(notice: PrewarmNotice) -> None:
        assert threading.get_ident() != caller
        got.append((notice.action, notice.backend, notice.eta_s))
        done.set()

    assert dispatch_prewarm(Notice("prewarm", "other")) == 0
    assert dispatch_prewarm(Notice("release", "sql-db")) == 0  # releases not asked for
    assert dispatch_prewarm(Notice("prewarm", "sql-db", 1.5)) == 1
    assert done.wait(10)
    assert got == [("prewarm", "sql-db", 1.5)]
    assert remove_prewarm("sql-db", warm) and dispatch_prewarm(Notice("prewarm", "sql-db")) == 0


def test_wildcard_and_releases_and_failing_callback() -> None:
    seen: list[str] = []
    both_ran = threading.Barrier(3, timeout=10)
    released = threading.Event()

    def boom(notice: PrewarmNotice) -> None:
        both_ran.wait()
        raise RuntimeError("callback bug")

    def track(notice: PrewarmNotice) -> None:
        seen.append(f"{notice.action}:{notice.backend}")
        if notice.action == "prewarm":
            both_ran.wait()
        else:
            released.set()

    hermes.on_prewarm("*", track, releases=True)
    hermes.on_prewarm("gpu", boom)
    assert dispatch_prewarm(Notice("prewarm", "gpu")) == 2  # the failing one does not raise here
    both_ran.wait()
    assert dispatch_prewarm(Notice("release", "gpu")) == 1
    assert released.wait(10)
    assert seen == ["prewarm:gpu", "release:gpu"]


def test_invalid_backend_name_is_rejected() -> None:
    with pytest.raises(hermes.GraphError):
        hermes.on_prewarm("", lambda n: None)
