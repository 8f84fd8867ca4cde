"""RedisStore.append_paths sends a batch's MULTI/RPUSH/EXEC pipeline as one buffer: redis-py
would send it in ~6,000-byte pieces, one ``sendall`` (one GIL release) each."""

from __future__ import annotations

import socket
from typing import Any

import redis

from hermes_sdk.graph.records import Call, RunPath, Stage
from hermes_sdk.store.redis import RedisStore


def _path(i: int) -> RunPath:
    stages = tuple(
        Stage("think", (Call(0.001 * (k + 1), input_tokens=300 + k, output_tokens=40 + k),), "llm")
        for k in range(12)
    )
    return RunPath(f"app{i % 5}", stages, run_id=f"r{i}")


def test_a_batch_is_sent_as_one_buffer(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    store = RedisStore(redis_url)
    batch = [_path(i) for i in range(2_345)]  # several RPUSHes, ~2 MB
    conn: Any = store._redis().connection_pool.get_connection()
    sent: list[int] = []
    real: socket.socket = conn._sock

    class CountingSocket:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def sendall(self, data: bytes) -> None:
            sent.append(len(data))
            real.sendall(data)

    conn._sock = CountingSocket()
    store._redis().connection_pool.release(conn)
    store.append_paths(batch)
    assert len(sent) == 1 and sent[0] > 1_000_000
    conn._sock = real
    assert list(store.load_paths()) == batch
    store.close()
