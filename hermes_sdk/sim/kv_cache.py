"""A fixed-capacity prefix KV cache with LRU eviction and optional per-entry retention.

Used by the simulated engine (``hermes sim-engine``, keyed by prompt text) and by the
discrete-event simulator's LLM backends (keyed by run), so the prefill a retention policy saves
is measurable. Capacity is in tokens. An entry stored with ``retain_s > 0`` is pinned until then
and an ordinary LRU entry after; with ``retain_s == 0`` (the caller says the prefix will not be
reused) it is the first to go. Eviction order, until the new entry fits: unwanted entries least
recently used first, then unhinted entries and expired pins LRU, then pinned entries, earliest
pin end first, but only to make room for another pinned entry: an entry that is not pinned is
not stored when only pinned ones could make room for it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    tokens: int
    pin_until_s: float
    """Retention end (seconds); ``-inf``: never pinned (plain LRU); ``nan``: not wanted."""
    text: str | None = None


@dataclass(frozen=True, slots=True)
class KVCacheStats:
    """Counters of one cache: prompt tokens looked up, reused from cache, evictions."""

    lookups: int
    hits: int
    prompt_tokens: int
    saved_tokens: int
    evictions: int
    evicted_pinned: int

    @property
    def prefill_tokens(self) -> int:
        """Prompt tokens that had to be computed."""
        return self.prompt_tokens - self.saved_tokens


class PrefixKVCache:
    """``capacity_tokens`` of cached prefixes, one entry per key (a run, or a prompt text)."""

    def __init__(self, capacity_tokens: int) -> None:
        if capacity_tokens < 0:
            raise ValueError(f"capacity_tokens must be >= 0, got {capacity_tokens}")
        self.capacity_tokens = capacity_tokens
        self.used_tokens = 0
        """Tokens held by cached prefixes."""
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._lookups = self._hits = self._prompt = self._saved = 0
        self._evictions = self._evicted_pinned = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def stats(self) -> KVCacheStats:
        """The counters so far."""
        return KVCacheStats(
            self._lookups,
            self._hits,
            self._prompt,
            self._saved,
            self._evictions,
            self._evicted_pinned,
        )

    def lookup(self, key: str, prompt_tokens: int) -> int:
        """Tokens of a ``prompt_tokens``-long prompt reusable from ``key``'s entry (touches it)."""
        self._lookups += 1
        self._prompt += prompt_tokens
        entry = self._entries.get(key)
        if entry is None:
            return 0
        self._entries.move_to_end(key)
        saved = min(entry.tokens, prompt_tokens)
        self._hits += int(saved > 0)
        self._saved += saved
        return saved

    def lookup_text(self, text: str, prompt_tokens: int) -> int:
        """Tokens of prompt ``text`` (``prompt_tokens`` long) reusable from the entry whose
        stored text is its longest prefix (touches that entry); 0 on a miss."""
        self._lookups += 1
        self._prompt += prompt_tokens
        found, saved = None, 0
        for key, entry in self._entries.items():
            if entry.text is not None and entry.tokens > saved and text.startswith(entry.text):
                found, saved = key, min(entry.tokens, prompt_tokens)
        if found is not None:
            self._entries.move_to_end(found)
            self._hits += int(saved > 0)
            self._saved += saved
        return saved

    def store(
        self,
        key: str,
        tokens: int,
        now_s: float,
        retain_s: float | None = None,
        *,
        text: str | None = None,
    ) -> bool:
        """Cache ``tokens`` of ``key``'s prefix at ``now_s``, pinned ``retain_s`` seconds
        (None: no hint, plain LRU; 0: not wanted). False if it cannot fit (larger than the
        cache, or only pinned entries could make room and it is not pinned itself)."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.used_tokens -= old.tokens
        if tokens <= 0 or tokens > self.capacity_tokens:
            return False
        if retain_s is None:
            pin = -math.inf
        elif retain_s > 0:
            pin = now_s + retain_s
        else:
            pin = math.nan
        pinned = pin > now_s  # only a pinned entry may push out another pinned one
        while self.used_tokens + tokens > self.capacity_tokens:
            if not self._evict(now_s, allow_pinned=pinned):
                return False
        self._entries[key] = _Entry(tokens, pin, text)
        self.used_tokens += tokens
        return True

    def drop(self, key: str) -> None:
        """Forget ``key``'s entry (no-op if absent)."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.used_tokens -= old.tokens

    def _evict(self, now_s: float, *, allow_pinned: bool) -> bool:
        """Evict one entry in the order above; False if only pinned ones are left and
        ``allow_pinned`` is not set."""
        victim: str | None = None
        best: tuple[int, float] = (3, math.inf)
        for key, entry in self._entries.items():  # LRU order: the first of a class wins ties
            pin = entry.pin_until_s
            if math.isnan(pin):
                victim = key  # unwanted: the least recently used of them goes
                break
            rank = (1, 0.0) if pin <= now_s else (2, pin)  # an expired pin is plain LRU again
            if rank < best:
                best, victim = rank, key
        if victim is None or (best[0] == 2 and not allow_pinned):
            return False
        entry = self._entries.pop(victim)
        self.used_tokens -= entry.tokens
        self._evictions += 1
        if entry.pin_until_s > now_s:
            self._evicted_pinned += 1
        return True
