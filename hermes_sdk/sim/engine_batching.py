"""The simulated engine's batching core: its configuration, the request record and the time model.

:class:`BatchingEngine` keeps a waiting heap (FCFS, or by ``priority`` with optional vLLM-style
preemption) and a bounded running batch, and steps them on one asyncio task: every step decodes
one token for each running request and takes ``step_base_s + step_per_request_s * batch +
prefill_per_token_s * new prompt tokens`` seconds, after an optional cold start following idle.
It knows nothing of HTTP; :mod:`hermes_sdk.sim.engine` serves it as an OpenAI-compatible API.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SimEngineConfig:
    """Knobs of the simulated engine; all durations in seconds.

    ``priority_scheduling`` orders the waiting queue by the request ``priority`` (lower first, as
    vLLM with ``--scheduling-policy priority``; ``higher_priority_first`` flips it, as SGLang's
    default). Without it the queue is FCFS and ``priority`` is only recorded. The engine starts
    cold; with ``cold_start_s > 0`` work arriving after ``keep_alive_s`` of idle waits that long.
    """

    model: str = "sim-model"
    step_base_s: float = 0.002
    step_per_request_s: float = 0.0001
    prefill_per_token_s: float = 0.00001
    max_batch: int = 64
    priority_scheduling: bool = False
    higher_priority_first: bool = False
    preempt: bool = True
    strict_priority: bool = False
    """Like vLLM, answer 400 to a nonzero ``priority`` when priority scheduling is off."""
    cold_start_s: float = 0.0
    keep_alive_s: float = 60.0
    seed: int = 0
    min_output_tokens: int = 8
    max_output_tokens: int = 64
    embedding_dim: int = 16
    max_records: int = 100_000
    kv_cache_tokens: int = 0
    """Prefix KV cache capacity in tokens (0: none). A prompt that starts with an earlier
    request's prompt + answer reuses its tokens (no prefill for them); entries are evicted LRU,
    and a request's ``X-Hermes-Retain-S`` pins its entry that many seconds (0: drop it first)."""

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.min_output_tokens < 1:
            raise ValueError("max_batch and min_output_tokens must be >= 1")
        if self.kv_cache_tokens < 0:
            raise ValueError("kv_cache_tokens must be >= 0")
        if self.max_output_tokens < self.min_output_tokens:
            raise ValueError("max_output_tokens must be >= min_output_tokens")
        for name in ("step_base_s", "step_per_request_s", "prefill_per_token_s", "cold_start_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def count_tokens(text: str) -> int:
    """Deterministic stand-in tokenizer: each whitespace word is ceil(len / 4) tokens (>= 1)."""
    return sum(max(1, math.ceil(len(word) / 4)) for word in text.split())


@dataclass(slots=True, eq=False)
class SimRequest:
    """One generation request inside the engine (mutable: the batching loop advances it)."""

    request_id: str
    endpoint: str
    priority: int
    seq: int
    prompt_tokens: int
    target_tokens: int
    arrival_s: float
    hermes_headers: dict[str, str] = field(default_factory=dict)
    cached_tokens: int = 0
    """Prompt tokens reused from the prefix KV cache (not prefilled)."""
    generated_tokens: int = 0
    start_s: float | None = None
    first_token_s: float | None = None
    finish_s: float | None = None
    cold_start_s: float = 0.0
    preemptions: int = 0
    aborted: bool = False
    tokens: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)

    def record(self) -> dict[str, object]:
        """JSON form for ``GET /debug/requests`` (times are ``time.monotonic`` seconds)."""
        return {
            "id": self.request_id,
            "endpoint": self.endpoint,
            "priority": self.priority,
            "seq": self.seq,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.generated_tokens,
            "arrival_s": self.arrival_s,
            "start_s": self.start_s,
            "first_token_s": self.first_token_s,
            "finish_s": self.finish_s,
            "cold_start_s": self.cold_start_s,
            "preemptions": self.preemptions,
            "aborted": self.aborted,
            "headers": self.hermes_headers,
        }


class BatchingEngine:
    """The continuous-batching core: a waiting heap, a running batch and one stepping task."""

    def __init__(self, config: SimEngineConfig) -> None:
        self.config = config
        self.records: deque[SimRequest] = deque(maxlen=config.max_records)
        self._waiting: list[tuple[int, int, SimRequest]] = []
        self._running: list[SimRequest] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._last_busy_s: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the stepping task on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="sim-engine")

    async def stop(self) -> None:
        """Cancel the stepping task and wait for it."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def next_seq(self) -> int:
        """Arrival sequence number (FCFS tie-break)."""
        return next(self._seq)

    def submit(self, req: SimRequest) -> None:
        """Queue a request; its tokens arrive on ``req.tokens`` (``None`` marks the end)."""
        self.records.append(req)
        heapq.heappush(self._waiting, (self._key(req.priority), req.seq, req))
        self._wake.set()

    def abort(self, req: SimRequest) -> None:
        """Drop a request (client went away); the loop frees its batch slot on the next step."""
        if req.finish_s is None:
            req.aborted = True
            req.finish_s = time.monotonic()

    async def cold_start_wait(self) -> float:
        """Sleep ``cold_start_s`` if the engine has been idle past keep-alive; seconds waited."""
        cfg = self.config
        now = time.monotonic()
        cold = self._last_busy_s is None or now - self._last_busy_s > cfg.keep_alive_s
        if cfg.cold_start_s <= 0 or not cold:
            return 0.0
        await asyncio.sleep(cfg.cold_start_s)
        self._last_busy_s = time.monotonic()
        return cfg.cold_start_s

    def _key(self, priority: int) -> int:
        if not self.config.priority_scheduling:
            return 0
        return -priority if self.config.higher_priority_first else priority

    def _admit(self, now: float) -> int:
        """Move waiting requests into the batch; returns the prompt tokens to prefill."""
        prefill_tokens = 0
        while self._waiting and len(self._running) < self.config.max_batch:
            _, _, req = heapq.heappop(self._waiting)
            if req.aborted:
                continue
            if req.start_s is None:
                req.start_s = now
                prefill_tokens += req.prompt_tokens - req.cached_tokens
            else:  # resumed after preemption: its KV was freed
                prefill_tokens += req.prompt_tokens + req.generated_tokens
            self._running.append(req)
        if self.config.priority_scheduling and self.config.preempt:
            prefill_tokens += self._preempt(now)
        return prefill_tokens

    def _preempt(self, now: float) -> int:
        """vLLM-style: swap the worst running request for a strictly better waiting one."""
        prefill_tokens = 0
        while self._waiting and self._running:
            best_key, _, best = self._waiting[0]
            worst = max(self._running, key=lambda r: (self._key(r.priority), r.seq))
            if best.aborted:
                heapq.heappop(self._waiting)
                continue
            if best_key >= self._key(worst.priority):
                break
            heapq.heappop(self._waiting)
            self._running.remove(worst)
            worst.preemptions += 1
            heapq.heappush(self._waiting, (self._key(worst.priority), worst.seq, worst))
            if best.start_s is None:
                best.start_s = now
                prefill_tokens += best.prompt_tokens - best.cached_tokens
            else:
                prefill_tokens += best.prompt_tokens + best.generated_tokens
            self._running.append(best)
        return prefill_tokens

    async def _loop(self) -> None:
        cfg = self.config
        while True:
            self._running = [r for r in self._running if not r.aborted]
            if not self._running and not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                waited = await self.cold_start_wait()
                for _, _, req in self._waiting:
                    req.cold_start_s = waited
                continue
            prefill_tokens = self._admit(time.monotonic())
            batch = len(self._running)
            step_s = (
                cfg.step_base_s
                + cfg.step_per_request_s * batch
                + cfg.prefill_per_token_s * prefill_tokens
            )
            await asyncio.sleep(step_s)
            now = time.monotonic()
            self._last_busy_s = now
            still_running = []
            for req in self._running:
                if req.aborted:
                    continue
                req.generated_tokens += 1
                if req.first_token_s is None:
                    req.first_token_s = now
                req.tokens.put_nowait(req.generated_tokens)
                if req.generated_tokens >= req.target_tokens:
                    req.finish_s = now
                    req.tokens.put_nowait(None)
                else:
                    still_running.append(req)
            self._running = still_running
