"""Redis store (``redis://host:port/db``): shared state for several scheduler replicas.

Paths are ``RPUSH``ed as JSON to one list ``<prefix>:paths`` (append order is global), key/value
documents live in one hash per namespace ``<prefix>:kv:<namespace>``. An append is acknowledged
by Redis before ``append_path`` returns; how durable that is depends on the server's persistence
settings (``appendonly yes`` + ``appendfsync always`` for the strongest guarantee).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import redis

from hermes_sdk.errors import StoreError
from hermes_sdk.graph.records import RunPath
from hermes_sdk.store.base import decode_path, decode_value, encode_path, encode_value

log = logging.getLogger("hermes_sdk.store")

_BATCH = 1000


def _one_buffer(base: type[Any]) -> type[Any]:
    """``base`` (the pool's connection class) packing a pipeline into one buffer: redis-py
    splits it into ~6,000-byte pieces and calls ``sendall`` per piece, and each call releases
    the GIL, which a thread must then wait up to the 5 ms switch interval to get back from a
    CPU-bound app thread (a 500-run batch of the soak: 187 pieces, ~800 KB)."""

    def pack_commands(self: Any, commands: Any) -> list[bytes]:
        return [b"".join(base.pack_commands(self, commands))]

    return type(f"OneBuffer{base.__name__}", (base,), {"pack_commands": pack_commands})


class RedisStore:
    """Store on a Redis server; thread-safe (redis-py pools connections)."""

    def __init__(self, url: str, *, prefix: str = "hermes", timeout_s: float = 5.0) -> None:
        self.url = url
        self.prefix = prefix
        self.corrupt_rows = 0
        try:
            self._client: redis.Redis | None = redis.Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
            pool = self._client.connection_pool
            pool.connection_class = _one_buffer(pool.connection_class)
            self._client.ping()
        except (redis.RedisError, ValueError) as exc:
            raise StoreError(f"cannot open Redis store {url!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r})"

    def _redis(self) -> redis.Redis:
        if self._client is None:
            raise StoreError("store is closed")
        return self._client

    @property
    def _paths_key(self) -> str:
        return f"{self.prefix}:paths"

    def append_path(self, path: RunPath) -> None:
        """RPUSH one path (acknowledged by the server on return)."""
        text = encode_path(path)
        try:
            self._redis().rpush(self._paths_key, text)
        except redis.RedisError as exc:
            raise StoreError(f"cannot append path: {exc}") from exc

    def append_paths(self, paths: Sequence[RunPath]) -> None:
        """RPUSH several paths in one MULTI/EXEC pipeline (one round trip, all or none;
        acknowledged on return), at most ``_BATCH`` values per RPUSH."""
        texts = [encode_path(p) for p in paths]
        if not texts:
            return
        try:
            pipe = self._redis().pipeline(transaction=True)
            for i in range(0, len(texts), _BATCH):
                pipe.rpush(self._paths_key, *texts[i : i + _BATCH])
            pipe.execute()
        except redis.RedisError as exc:
            raise StoreError(f"cannot append paths: {exc}") from exc

    def paths_since(self, cursor: int) -> tuple[int, list[RunPath]]:
        """Paths stored after the first ``cursor`` rows, and the new cursor (rows seen so far).

        Lets a scheduler replica pick up what other replicas appended without rereading the log.
        A log shorter than ``cursor`` was lost (Redis restarted without persistence or failed
        over to an empty replica): everything in it is new, so it is read from the start.
        """
        try:
            pipe = self._redis().pipeline(transaction=True)
            pipe.llen(self._paths_key)
            pipe.lrange(self._paths_key, cursor, -1)
            length, rows = pipe.execute()
            if length < cursor:
                log.warning(
                    "redis path log %s has %d rows, fewer than the %d already read: it was "
                    "lost or truncated; reading it again from the start",
                    self._paths_key,
                    length,
                    cursor,
                )
                cursor = 0
                rows = self._redis().lrange(self._paths_key, 0, -1)
        except redis.RedisError as exc:
            raise StoreError(f"cannot read paths: {exc}") from exc
        out: list[RunPath] = []
        for i, raw in enumerate(rows):
            path = decode_path(raw, f"redis {self._paths_key}[{cursor + i}]")
            if path is None:
                self.corrupt_rows += 1
            else:
                out.append(path)
        return cursor + len(rows), out

    def append_raw(self, text: str | bytes) -> None:
        """RPUSH a raw row as-is (tests use it to simulate corruption)."""
        try:
            self._redis().rpush(self._paths_key, text)
        except redis.RedisError as exc:
            raise StoreError(f"cannot append row: {exc}") from exc

    def load_paths(self) -> Iterator[RunPath]:
        """Every stored path in append order, read in batches; corrupt rows skipped and counted."""
        start = 0
        while True:
            try:
                rows: list[bytes] = self._redis().lrange(  # type: ignore[assignment]
                    self._paths_key, start, start + _BATCH - 1
                )
            except redis.RedisError as exc:
                raise StoreError(f"cannot read paths: {exc}") from exc
            for i, raw in enumerate(rows):
                path = decode_path(raw, f"redis {self._paths_key}[{start + i}]")
                if path is None:
                    self.corrupt_rows += 1
                else:
                    yield path
            if len(rows) < _BATCH:
                return
            start += _BATCH

    def put_json(self, namespace: str, key: str, value: dict[str, Any]) -> None:
        """HSET a JSON document."""
        text = encode_value(namespace, key, value)
        try:
            self._redis().hset(f"{self.prefix}:kv:{namespace}", key, text)
        except redis.RedisError as exc:
            raise StoreError(f"cannot write {namespace}/{key}: {exc}") from exc

    def get_json(self, namespace: str, key: str) -> dict[str, Any] | None:
        """HGET a JSON document, or None."""
        try:
            raw = self._redis().hget(f"{self.prefix}:kv:{namespace}", key)
        except redis.RedisError as exc:
            raise StoreError(f"cannot read {namespace}/{key}: {exc}") from exc
        return None if raw is None else decode_value(raw, f"{namespace}/{key}")

    def list_keys(self, namespace: str) -> list[str]:
        """Sorted keys in ``namespace``."""
        try:
            keys: list[bytes] = self._redis().hkeys(  # type: ignore[assignment]
                f"{self.prefix}:kv:{namespace}"
            )
        except redis.RedisError as exc:
            raise StoreError(f"cannot list {namespace}: {exc}") from exc
        return sorted(k.decode("utf-8", errors="replace") for k in keys)

    def close(self) -> None:
        """Close the connection pool (idempotent)."""
        if self._client is not None:
            self._client.close()
            self._client = None
