"""A fixed-capacity prefix KV cache with LRU eviction and optional per-entry retention.

Used by the simulated engine (``hermes sim-engine``, keyed by prompt text) and by the
discrete-event simulator's LLM backends (keyed by run), so the prefill a retention policy saves
is measurable. Capacity is in tokens. An entry is stored with one of these hints:

- none: plain LRU;
- ``retain_s > 0``: pinned until then, an ordinary LRU entry after; ``retain_s == 0``: the
  caller says the prefix will not be reused, it is the first to go;
- ``law`` (a :class:`~hermes_sdk.prewarm.reuse_law.ReuseLaw` of the seconds to its next reuse):
  valued at its reuse density at its current age (reused tokens per held token-second); once
  reused the law is spent (the call that read it will store a longer context under the same
  key when its stage ends): while the engine still has queued calls that will read it, the
  entry is held at the density the engine gives (``hold_density``: the rate, per second, at
  which that stage's calls have been reading it), plain LRU after.

Eviction order, until the new entry fits: unwanted entries (``retain_s == 0``, or a law with
density 0 at its age) least recently used first, then unhinted entries and expired pins LRU,
then valued entries lowest density first (in a cache holding valued entries, an unhinted one
is valued at the density measured on unhinted entries, :meth:`PrefixKVCache.plain_density`,
the class estimate of LHD, once there is one), then pins earliest end first. A new entry pushes
out only entries ranked below it: an unhinted or unwanted one only the first two groups, a
valued one also valued entries of lower density, a pinned one also valued entries and other
pins. When that cannot make room the new entry is not stored and
nothing is evicted.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from hermes_sdk.prewarm.reuse_law import ReuseLaw


@dataclass(slots=True)
class _Entry:
    tokens: int
    pin_until_s: float
    """Retention end (seconds); ``-inf``: never pinned (plain LRU); ``nan``: not wanted."""
    text: str | None = None
    law: ReuseLaw | None = None
    """Law of the seconds from ``stored_s`` to the next reuse (value eviction), if hinted."""
    stored_s: float = 0.0
    held: float = 0.0
    """Density (1/s) of a reused entry that queued calls will still read; 0: not held."""
    plain: bool = False
    """Stored without any hint."""


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
        self._valued = False
        """Whether any entry came with a reuse law (then unhinted entries are valued too)."""
        self._plain_read_tokens = 0
        self._plain_token_s = 0.0
        """Tokens read from, and token-seconds held by, unhinted entries that left."""

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

    def lookup(self, key: str, prompt_tokens: int, *, hold_density: float = 0.0) -> int:
        """Tokens of a ``prompt_tokens``-long prompt reusable from ``key``'s entry (touches it);
        ``hold_density`` > 0: calls still queued will read the same entry, at about that many
        per second (a valued entry is held at that density for them)."""
        self._lookups += 1
        self._prompt += prompt_tokens
        entry = self._entries.get(key)
        if entry is None:
            return 0
        self._entries.move_to_end(key)
        saved = min(entry.tokens, prompt_tokens)
        if entry.plain:
            self._plain_read_tokens += saved
        if saved > 0 and (entry.law is not None or entry.held):
            entry.law, entry.held = None, hold_density  # spent: held, then plain LRU
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
            self._entries[found].law = None
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
        law: ReuseLaw | None = None,
    ) -> bool:
        """Cache ``tokens`` of ``key``'s prefix at ``now_s``, pinned ``retain_s`` seconds
        (None: no hint, plain LRU; 0: not wanted) or valued by ``law`` (which then overrides
        ``retain_s``). False if it cannot fit (larger than the cache, or only entries ranked
        at or above it could make room)."""
        old = self._entries.pop(key, None)
        if old is not None:
            self._leaves(old, now_s)
        if tokens <= 0 or tokens > self.capacity_tokens:
            return False
        self._valued = self._valued or law is not None
        if law is not None or retain_s is None:
            pin = -math.inf
        elif retain_s > 0:
            pin = now_s + retain_s
        else:
            pin = math.nan
        entry = _Entry(tokens, pin, text, law, now_s, plain=law is None and retain_s is None)
        if self.used_tokens + tokens > self.capacity_tokens:
            victims = self._victims(entry, now_s, self.used_tokens + tokens - self.capacity_tokens)
            if victims is None:
                return False
            for victim in victims:
                self._evict(victim, now_s)
        self._entries[key] = entry
        self.used_tokens += tokens
        return True

    def drop(self, key: str) -> None:
        """Forget ``key``'s entry (no-op if absent)."""
        old = self._entries.pop(key, None)
        if old is not None:
            self.used_tokens -= old.tokens

    def _victims(self, new: _Entry, now_s: float, need_tokens: int) -> list[str] | None:
        """Keys to evict, in order, freeing ``need_tokens`` for ``new``; None if the entries
        ranked below ``new`` cannot free that much."""
        plain = self.plain_density()
        limit = _rank(new, now_s, plain)
        ranked = sorted(  # stable: LRU order breaks ties within a group
            ((_rank(e, now_s, plain), k, e.tokens) for k, e in self._entries.items()),
            key=lambda r: r[0],
        )
        out: list[str] = []
        freed = 0
        for rank, key, tokens in ranked:
            if not _may_push_out(limit, rank):
                break
            out.append(key)
            freed += tokens
            if freed >= need_tokens:
                return out
        return None

    def plain_density(self) -> float | None:
        """Reuse density (1/s) of unhinted entries in a cache that also holds valued ones:
        tokens read from them per token-second they were held, measured on those that left
        (None before any valued entry, or any read or departure of an unhinted one)."""
        if not self._valued or self._plain_read_tokens <= 0 or self._plain_token_s <= 0:
            return None
        return self._plain_read_tokens / self._plain_token_s

    def _leaves(self, entry: _Entry, now_s: float) -> None:
        self.used_tokens -= entry.tokens
        if entry.plain:
            self._plain_token_s += entry.tokens * max(now_s - entry.stored_s, 0.0)

    def _evict(self, key: str, now_s: float) -> None:
        entry = self._entries.pop(key)
        self._leaves(entry, now_s)
        self._evictions += 1
        if entry.pin_until_s > now_s:
            self._evicted_pinned += 1


_UNWANTED, _LRU, _VALUED, _PINNED = range(4)


def _rank(entry: _Entry, now_s: float, plain_density: float | None) -> tuple[int, float]:
    """(group, order within it) of the eviction order above; lower goes first."""
    if entry.plain and plain_density is not None:
        return (_VALUED, plain_density)
    if entry.held > 0:
        return (_VALUED, entry.held)
    if entry.law is not None:
        density = entry.law.density(now_s - entry.stored_s)
        return (_VALUED, density) if density > 0 else (_UNWANTED, 0.0)
    pin = entry.pin_until_s
    if math.isnan(pin):
        return (_UNWANTED, 0.0)
    return (_LRU, 0.0) if pin <= now_s else (_PINNED, pin)


def _may_push_out(new: tuple[int, float], old: tuple[int, float]) -> bool:
    """Whether an entry ranked ``new`` may evict one ranked ``old``."""
    if old[0] <= _LRU:
        return True
    if old[0] == _VALUED:
        return new[0] == _PINNED or (new[0] == _VALUED and old[1] <= new[1])
    return old[0] == _PINNED and new[0] == _PINNED
