"""The prefix KV cache: LRU, retention pins, reuse-density values, unwanted entries first,
prefix lookup by text."""

from __future__ import annotations

import math

from hermes_sdk.prewarm.reuse_law import ReuseLaw
from hermes_sdk.sim.kv_cache import PrefixKVCache


def test_lru_evicts_least_recently_used() -> None:
    cache = PrefixKVCache(300)
    for key in ("a", "b", "c"):
        assert cache.store(key, 100, 0.0)
    assert cache.lookup("a", 150) == 100  # touches a: b is now the least recent
    cache.store("d", 100, 1.0)
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert cache.used_tokens == 300
    stats = cache.stats()
    assert stats.saved_tokens == 100 and stats.prompt_tokens == 150 and stats.evictions == 1


def test_pinned_entries_go_last_and_unwanted_first() -> None:
    cache = PrefixKVCache(300)
    cache.store("pinned", 100, 0.0, retain_s=10.0)
    cache.store("plain", 100, 0.0)
    cache.store("unwanted", 100, 0.0, retain_s=0.0)
    cache.store("x", 100, 1.0)
    assert "unwanted" not in cache  # explicit 0 goes first, though most recent
    cache.store("y", 100, 2.0)
    assert "plain" not in cache and "pinned" in cache  # then plain LRU, pins last
    cache.store("z", 100, 3.0)
    assert "pinned" in cache  # still pinned; the oldest plain one went
    cache.store("w", 100, 20.0)  # the pin has expired: plain LRU again, and the oldest
    assert "pinned" not in cache


def test_pins_are_evicted_earliest_end_first_when_nothing_else_is_left() -> None:
    cache = PrefixKVCache(200)
    cache.store("long", 100, 0.0, retain_s=100.0)
    cache.store("short", 100, 0.0, retain_s=5.0)
    cache.store("new", 100, 1.0, retain_s=50.0)
    assert "short" not in cache and "long" in cache
    assert cache.stats().evicted_pinned == 1


def test_too_big_is_not_stored_and_text_lookup_finds_the_longest_prefix() -> None:
    cache = PrefixKVCache(100)
    assert not cache.store("huge", 101, 0.0)
    cache.store("k1", 10, 0.0, text="user: hi")
    cache.store("k2", 30, 0.0, text="user: hi\nassistant: hello")
    assert cache.lookup_text("user: hi\nassistant: hello\nuser: more", 40) == 30
    assert cache.lookup_text("user: bye", 5) == 0
    assert cache.lookup_text("user: hi there", 12) == 10


def test_an_expired_pin_is_plain_lru_not_unwanted() -> None:
    cache = PrefixKVCache(200)
    cache.store("was_pinned", 100, 0.0, retain_s=1.0)
    cache.store("plain", 100, 0.5)
    cache.lookup("was_pinned", 10)  # most recently used now
    cache.store("new", 100, 5.0)  # the pin expired at 1.0: LRU decides, "plain" is older
    assert "was_pinned" in cache and "plain" not in cache


def test_valued_entries_go_lowest_density_first_and_a_worse_newcomer_is_refused() -> None:
    soon = ReuseLaw.from_samples([2.0] * 10)  # back in 2 s for sure: 0.5 per second
    late = ReuseLaw.from_samples([20.0] * 5 + [math.inf] * 5)  # p 0.5 after 20 s: 0.025/s
    cache = PrefixKVCache(300)
    cache.store("soon", 100, 0.0, law=soon)
    cache.store("late", 100, 0.0, law=late)
    cache.store("plain", 100, 0.0)
    cache.store("new", 100, 1.0, law=soon)
    assert "plain" not in cache  # unhinted goes before any valued entry
    cache.store("newer", 100, 1.0, law=soon)
    assert "late" not in cache and all(k in cache for k in ("soon", "new", "newer"))
    # a newcomer worth less than every entry it would push out is not stored, nothing goes
    assert not cache.store("worse", 100, 1.0, law=late)
    assert len(cache) == 3 and cache.stats().evictions == 2
    # an unhinted newcomer cannot push out valued entries either
    assert not cache.store("unhinted", 100, 1.0)


def test_a_valued_entry_past_every_return_is_unwanted_and_a_read_spends_its_law() -> None:
    cache = PrefixKVCache(200)
    cache.store("overdue", 100, 0.0, law=ReuseLaw.from_samples([3.0] * 4))
    cache.store("plain", 100, 0.0)
    cache.store("new", 100, 5.0)  # at age 5 nobody returns: "overdue" goes before LRU "plain"
    assert "overdue" not in cache and "plain" in cache
    cache = PrefixKVCache(200)
    cache.store("read", 100, 0.0, law=ReuseLaw.from_samples([1.0] * 4))
    cache.store("waiting", 100, 0.0, law=ReuseLaw.from_samples([30.0] * 4))
    assert cache.lookup("read", 150) == 100  # read once: plain LRU now, goes first
    cache.store("x", 100, 1.0, law=ReuseLaw.from_samples([30.0] * 4))
    assert "read" not in cache and "waiting" in cache

    # held for queued readers at a density above the newcomer's (10/s): it stays
    cache = PrefixKVCache(100)
    cache.store("wide", 100, 0.0, law=ReuseLaw.from_samples([0.5] * 4))
    assert cache.lookup("wide", 100, hold_density=50.0) == 100
    assert not cache.store("y", 100, 0.1, law=ReuseLaw.from_samples([0.1] * 4))
    assert "wide" in cache
    cache.lookup("wide", 100)  # the last queued reader: plain LRU now
    assert cache.store("y", 100, 0.2, law=ReuseLaw.from_samples([0.1] * 4))
    assert "wide" not in cache


def test_unhinted_entries_beside_valued_ones_are_valued_at_their_measured_density() -> None:
    cache = PrefixKVCache(200)
    assert cache.plain_density() is None  # no valued entry yet: plain LRU
    cache.store("plain", 100, 0.0)
    assert cache.lookup("plain", 100) == 100
    cache.store("plain", 100, 10.0)  # left after 10 s, read once: 100 tokens / 1000 token-s
    assert cache.plain_density() is None
    cache.store("valued", 100, 10.0, law=ReuseLaw.from_samples([1.0] * 4))  # 1 per second
    assert cache.plain_density() == 0.1
    # an unhinted newcomer (0.1/s) cannot push out the valued entry (1/s) but may an older
    # unhinted one (equal density: LRU among them)
    assert not cache.store("other", 150, 10.5)
    assert cache.store("newer", 100, 10.5) and "plain" not in cache and "valued" in cache
