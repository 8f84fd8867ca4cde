"""Backend slots shared by scheduler replicas on one Redis: a sorted set of leases per backend.

Each member is a lease id scored by its expiry (unix seconds); taking a slot drops expired
members and adds one only while fewer than ``max_inflight`` remain, atomically (Lua). A replica
that dies without releasing loses its slots when their leases expire.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import redis

log = logging.getLogger("hermes_sdk.server")

_TAKE: Final = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class RedisSlotLedger:
    """:class:`~hermes_sdk.server.admission.SlotLedger` on Redis (``redis://host:port/db``).

    If Redis cannot be reached, slots are granted on local capacity alone (logged once).
    """

    def __init__(self, url: str, *, prefix: str = "hermes", timeout_s: float = 2.0) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._take = self._redis.register_script(_TAKE)
        self._prefix = prefix
        self._failing = False

    def _key(self, backend: str) -> str:
        return f"{self._prefix}:slots:{backend}"

    def try_take(self, backend: str, member: str, max_inflight: int, lease_s: float) -> bool:
        """Take a shared slot for ``lease_s`` seconds if one is free."""
        now = time.time()
        try:
            taken = self._take(
                keys=[self._key(backend)],
                args=[now, max_inflight, now + lease_s, member, int(lease_s) + 60],
            )
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("shared slot ledger unavailable (%s); using local capacity", exc)
                self._failing = True
            return True
        self._failing = False
        return bool(taken)

    def give_back(self, backend: str, member: str) -> bool:
        """Release a shared slot; False if it was not held (best effort on errors)."""
        try:
            return bool(self._redis.zrem(self._key(backend), member))
        except redis.RedisError:
            return False

    def extend(self, backend: str, member: str, lease_s: float) -> bool:
        """Move a held slot's expiry to ``lease_s`` from now; False if it is not held."""
        now = time.time()
        key = self._key(backend)
        try:
            score = self._redis.zscore(key, member)
            if score is None or float(score) <= now:
                return False
            self._redis.zadd(key, {member: now + lease_s}, xx=True)
        except redis.RedisError:
            return False
        return True

    def expiry(self, backend: str, member: str) -> float | None:
        """Unix time the slot expires, None if not held; raises redis errors."""
        score = self._redis.zscore(self._key(backend), member)
        return None if score is None else float(score)

    def held(self, backend: str) -> int:
        """Shared slots currently held across replicas (expired ones excluded)."""
        return int(self._redis.zcount(self._key(backend), time.time(), "+inf"))

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()
