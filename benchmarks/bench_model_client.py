"""Per-call cost of ``hermes.wrap`` on a model client's ``create``, next to the decorator and an
OpenTelemetry span around the same call (imported by ``bench_instrument.py``; not a script).

The SDK's HTTP round trip is replaced by a stand-in ``create`` that returns a real
``openai.types.chat.ChatCompletion`` (with ``usage``) at once, so what is timed is the
instrumentation, not the network; the wrapper is the one ``hermes.wrap`` installs
(:func:`hermes_sdk.instrument.model_calls.sync_call`). Runs have ``CALLS_PER_RUN`` calls (a
fresh run every few calls, as an app's run has) of an app whose graph was learned first, so the
rank in every hint comes from a learned PDGraph. Variants, all per call:

- ``bare``: the stand-in ``create`` (baseline);
- ``@hermes.llm``: the decorator around ``create`` inside a run (unit + usage, no hints);
- ``@hermes.llm + openai_kwargs()``: the decorator, with hints attached by hand as the README
  showed before ``wrap`` (the same work ``wrap`` does);
- ``hermes.wrap``: the wrapped ``create`` inside a run (unit + usage + hints attached);
- ``hermes.wrap, rank stubbed``: the same with the rank lookup
  (:func:`~hermes_sdk.instrument.start_hints.start_answer`: the run's position and the cached
  state answer's validity check) returning a fixed answer (the wrapper's own cost: unit, hint
  headers and body from the answer, usage);
- ``hermes.wrap outside run``: the wrapped ``create`` with no run (pass-through);
- ``otel span``: ``tracer.start_as_current_span`` around ``create`` (SDK, no-op exporter).

The rank cost (``hermes.wrap`` minus its rank-stubbed variant) tells the wrapper's own cost
from its rank lookup. ``current_hints()`` / ``openai_kwargs()`` in a decorated function look the
rank up from scratch at the time they are called (the unit has run for a while by then).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from time import perf_counter_ns
from typing import Any
from unittest.mock import patch

import numpy as np
from openai.types.chat import ChatCompletion

import hermes_sdk as hermes
from hermes_sdk.instrument import model_calls
from hermes_sdk.instrument._context import CURRENT_RUN
from hermes_sdk.instrument.model_calls import WrapSettings, WrapState, sync_call
from hermes_sdk.instrument.model_clients import OPENAI_ENDPOINTS
from hermes_sdk.instrument.start_hints import start_answer

APP = "bench-wrap"
STUBBED = "hermes.wrap, rank stubbed"
CALLS_PER_RUN = 4
LEARNED_RUNS = 50
TARGET_RATIO = 2.0
"""Target: wrap overhead p50 <= this many times the decorator's (``@hermes.llm``)."""
MSGS = [{"role": "user", "content": "hi"}]
_COMPLETION = ChatCompletion.model_validate(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "four"},
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
)


def create(**kwargs: Any) -> ChatCompletion:
    """Stand-in for ``client.chat.completions.create``: accepts the call, returns a completion."""
    return _COMPLETION


def _timed(call: Callable[[], object]) -> Callable[[], int]:
    def once() -> int:
        t0 = perf_counter_ns()
        call()
        return perf_counter_ns() - t0

    return once


def _samples(n: int, once: Callable[[], int], in_runs: bool) -> np.ndarray:
    out = np.empty(n, dtype=np.int64)
    token = None
    for i in range(n):
        if in_runs and i % CALLS_PER_RUN == 0:
            if token is not None:
                CURRENT_RUN.reset(token)
            token = CURRENT_RUN.set(hermes.start_run(APP))
        out[i] = once()
    if token is not None:
        CURRENT_RUN.reset(token)
    return out


def measure_model_client(n: int, tracer: Any, rounds: int) -> dict[str, dict[str, float]]:
    """Per-call quantiles (ns) of each variant, interleaved in ``rounds`` rounds."""
    hermes.configure(store="memory://")
    state = WrapState(WrapSettings("vllm", 64, None, None, True))
    wrapped = sync_call(create, OPENAI_ENDPOINTS[0], state)
    decorated = hermes.llm(name="m")(create)

    def by_hand() -> object:
        return decorated(model="m", messages=MSGS, **hermes.openai_kwargs())

    for _ in range(LEARNED_RUNS):  # the app's graph: runs of CALLS_PER_RUN calls
        with hermes.run(APP):
            for _ in range(CALLS_PER_RUN):
                wrapped(model="m", messages=MSGS)
    hermes.flush(30)

    def span() -> object:
        with tracer.start_as_current_span("create"):
            return create(model="m", messages=MSGS)

    probe = hermes.start_run(APP)  # the answer of a run's first call, looked up once (not ended)
    fixed = start_answer(probe, probe.open_unit("m", "llm", None, None))
    assert fixed is not None

    def stubbed_rank() -> AbstractContextManager[object]:
        return patch.object(model_calls, "start_answer", lambda run, unit: fixed)

    def call_wrapped() -> object:
        return wrapped(model="m", messages=MSGS)

    variants: dict[str, tuple[Callable[[], object], bool, Callable[[], Any]]] = {
        "bare": (lambda: create(model="m", messages=MSGS), False, nullcontext),
        "@hermes.llm": (lambda: decorated(model="m", messages=MSGS), True, nullcontext),
        "@hermes.llm + openai_kwargs()": (by_hand, True, nullcontext),
        "hermes.wrap": (call_wrapped, True, nullcontext),
        STUBBED: (call_wrapped, True, stubbed_rank),
        "hermes.wrap outside run": (call_wrapped, False, nullcontext),
        "otel span": (span, False, nullcontext),
    }
    chunk = max(n // rounds, 1)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in variants}
    for call, in_runs, context in variants.values():  # warm-up
        with context():
            _samples(min(chunk, 2000), _timed(call), in_runs)
    for _ in range(rounds):
        gc.collect()
        for name, (call, in_runs, context) in variants.items():
            with context():
                parts[name].append(_samples(chunk, _timed(call), in_runs))
    out: dict[str, dict[str, float]] = {}
    for name, chunks in parts.items():
        values = np.concatenate(chunks)
        out[name] = {
            "p50_ns": float(np.percentile(values, 50)),
            "p99_ns": float(np.percentile(values, 99)),
            "mean_ns": float(values.mean()),
        }
    return out


def wrap_ratio(
    per_call: dict[str, dict[str, float]], against: str, *, variant: str = "hermes.wrap"
) -> float:
    """``variant``'s overhead p50 over ``against``'s overhead p50 (both minus bare)."""
    bare = per_call["bare"]["p50_ns"]
    wrap = per_call[variant]["p50_ns"] - bare
    other = per_call[against]["p50_ns"] - bare
    return wrap / other if other > 0 else float("inf")


def rank_cost_ns(per_call: dict[str, dict[str, float]]) -> float:
    """p50 cost of ranking one call (``hermes.wrap`` minus ``hermes.wrap`` with the rank lookup
    stubbed): the run's position and the cached answer's validity check."""
    return per_call["hermes.wrap"]["p50_ns"] - per_call[STUBBED]["p50_ns"]
