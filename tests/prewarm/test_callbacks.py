"""Client callbacks: planner signals reach hermes.on_prewarm(backend, fn) through the adapter."""

from __future__ import annotations

import asyncio
import threading

import hermes_sdk as hermes
from hermes_sdk.instrument.prewarm_hooks import PrewarmNotice, remove_prewarm
from hermes_sdk.prewarm.callbacks import CallbackAdapter


async def _settle(seen: list[object], n: int) -> None:
    for _ in range(500):
        if len(seen) >= n:
            return
        await asyncio.sleep(0.01)


async def test_signals_reach_registered_callbacks_off_the_caller_thread() -> None:
    seen: list[tuple[str, str, float | None, bool]] = []
    main = threading.get_ident()

    def pool(notice: PrewarmNotice) -> None:
        seen.append((notice.backend, notice.action, notice.eta_s, threading.get_ident() == main))

    def anything(notice: PrewarmNotice) -> None:
        seen.append(("*" + notice.backend, notice.action, notice.eta_s, False))

    hermes.on_prewarm("pool", pool, releases=True)
    hermes.on_prewarm("*", anything)
    adapter = CallbackAdapter()
    try:
        await adapter.prewarm("pool", reason="P=0.7", eta_s=1.5)
        await adapter.release("pool")
        await adapter.prewarm("other")
        await _settle(seen, adapter.dispatched)
        assert adapter.dispatched == 4
        assert sorted(seen) == sorted(
            [
                ("pool", "prewarm", 1.5, False),  # never on the caller's thread
                ("pool", "release", None, False),
                ("*pool", "prewarm", 1.5, False),  # "*" gets prewarms only (no releases=True)
                ("*other", "prewarm", None, False),
            ]
        )
    finally:
        remove_prewarm("pool", pool)
        remove_prewarm("*", anything)
