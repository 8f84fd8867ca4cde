"""Profiling wrapper for ``bench_server_live``: runs ``hermes serve`` with every event-loop
callback timed, and every garbage collection's young-generation size recorded.

Run by ``bench_server_live.py`` when ``HERMES_LIVE_TURNS=PATH`` is set (not the shipped path:
each callback pays two ``perf_counter`` calls). Usage: ``python benchmarks/live_turns.py PATH
[=MODULE:NAME=VALUE] serve ...`` (the optional setting as in ``live_variant.py``). On exit
writes JSON to ``PATH``: per callback name (the coroutine's qualname for a task step, else the
callback's) the number of loop turns, their total and max milliseconds and a histogram; for
each collection generation, the tracked objects it traversed (``len(gc.get_objects(g))``
summed over the collected generations, at its start) and its duration. SIGUSR1 clears what was
recorded so far (the benchmark sends it as its first window opens, so the setup's turns are
left out).
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import gc
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

BOUNDS_MS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


class Turns:
    """Loop-turn durations per callback name."""

    def __init__(self) -> None:
        self.by_name: dict[str, list[float]] = {}
        self.hist: dict[str, list[int]] = {}

    def observe(self, name: str, ms: float) -> None:
        row = self.by_name.get(name)
        if row is None:
            row = self.by_name[name] = [0.0, 0.0, 0.0]
            self.hist[name] = [0] * (len(BOUNDS_MS) + 1)
        row[0] += 1
        row[1] += ms
        row[2] = max(row[2], ms)
        self.hist[name][bisect.bisect_left(BOUNDS_MS, ms)] += 1


def _name(handle: asyncio.Handle) -> str:
    cb = handle._callback  # type: ignore[attr-defined]
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return "task:" + getattr(coro, "__qualname__", type(coro).__name__)
    return getattr(cb, "__qualname__", type(cb).__name__)


def _timed_functions() -> list[tuple[Any, str]]:
    from hermes_sdk.server import admission, control, scheduler

    return [
        (scheduler.Scheduler, "_apply_state"),
        (scheduler.Scheduler, "release"),
        (admission.AdmissionQueue, "rerank"),
        (admission.AdmissionQueue, "_dispatch"),
        (control, "decode_batch"),
    ]


def _time_function(owner: Any, attr: str, into: Turns) -> None:
    original = getattr(owner, attr)
    name = f"{getattr(owner, '__name__', owner)}.{attr}"

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.observe(name, (time.perf_counter() - t0) * 1e3)

    setattr(owner, attr, timed)


def main() -> None:
    out = Path(sys.argv[1])
    turns = Turns()
    collections: list[list[float]] = []  # [generation, objects, ms]
    started = [0.0, 0.0]

    original = asyncio.Handle._run

    def timed_run(self: asyncio.Handle) -> None:
        t0 = time.perf_counter()
        original(self)
        turns.observe(_name(self), (time.perf_counter() - t0) * 1e3)

    asyncio.Handle._run = timed_run  # type: ignore[method-assign]

    timed = Turns()
    for owner, attr in _timed_functions():
        _time_function(owner, attr, timed)
    collected = [0, 0, 0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collected[info["generation"]] += info["collected"]
        if phase == "start":
            g = info["generation"]
            started[1] = float(sum(len(gc.get_objects(k)) for k in range(g + 1)))
            started[0] = time.perf_counter()
        else:
            ms = (time.perf_counter() - started[0]) * 1e3
            collections.append([float(info["generation"]), started[1], ms])

    gc.callbacks.append(on_gc)

    def reset(_signum: int, _frame: object) -> None:
        """SIGUSR1 (sent by the benchmark as its first window opens): forget the setup's."""
        turns.by_name.clear()
        turns.hist.clear()
        timed.by_name.clear()
        timed.hist.clear()
        collections.clear()
        collected[:] = [0, 0, 0]

    signal.signal(signal.SIGUSR1, reset)

    def count(_signum: int, _frame: object) -> None:
        """SIGUSR2: print the tracked and frozen object counts (objects per waiting run)."""
        objects = gc.get_objects()
        types: dict[str, int] = {}
        for obj in objects:
            name = type(obj).__module__ + "." + type(obj).__qualname__
            types[name] = types.get(name, 0) + 1
        top = sorted(types.items(), key=lambda kv: -kv[1])[:25]
        print(f"live_turns: tracked {len(objects)} frozen {gc.get_freeze_count()}", file=sys.stderr)
        print("live_types: " + json.dumps(top), file=sys.stderr)

    signal.signal(signal.SIGUSR2, count)

    def dump() -> None:
        gc.callbacks.remove(on_gc)
        gens: dict[str, Any] = {}
        for g in range(3):
            rows = [c for c in collections if c[0] == g]
            objs = sorted(c[1] for c in rows)
            ms = sorted(c[2] for c in rows)
            gens[str(g)] = {
                "count": len(rows),
                "objects_p50": objs[len(objs) // 2] if objs else None,
                "objects_max": objs[-1] if objs else None,
                "ms_p50": ms[len(ms) // 2] if ms else None,
                "ms_max": ms[-1] if ms else None,
                "collected": collected[g],
            }
        top = sorted(turns.by_name.items(), key=lambda kv: -kv[1][1])[:40]
        out.write_text(
            json.dumps(
                {
                    "bounds_ms": BOUNDS_MS,
                    "callbacks": {
                        name: {
                            "turns": int(n),
                            "total_ms": total,
                            "max_ms": mx,
                            "hist": turns.hist[name],
                        }
                        for name, (n, total, mx) in top
                    },
                    "gc": gens,
                    "functions": {
                        name: {
                            "calls": int(n),
                            "total_ms": total,
                            "max_ms": mx,
                            "hist": timed.hist[name],
                        }
                        for name, (n, total, mx) in timed.by_name.items()
                    },
                },
                indent=1,
            )
        )

    atexit.register(dump)
    args = sys.argv[2:]
    if args and args[0].startswith("="):  # a bench mode's constant (live_variant.py)
        sys.path.insert(0, str(Path(__file__).parent))
        from live_variant import apply

        apply(args.pop(0)[1:])
    if "--loop" not in args:  # only asyncio's loop runs its callbacks through Handle._run
        args += ["--loop", "asyncio"]
    sys.argv = ["hermes", *args]
    from hermes_sdk.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
