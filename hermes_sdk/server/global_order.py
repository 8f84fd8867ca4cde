"""One admission order across scheduler replicas on one Redis (the replica protocol).

Per backend ``b`` Redis holds, next to the slot ledger ``{p}:slots:{b}`` (see
:mod:`hermes_sdk.server.ledger`):

- ``{p}:wait:{b}:{tenant}`` -- a sorted set of the tenant's waiters, scored by the rank (or the
  deadline policies' time-invariant order key) the replica holding the waiter computed; members
  are ``<seq>|<replica>|<waiter id>`` with a cluster-wide zero-padded ``seq`` (``{p}:seq``), so
  equal ranks are served in arrival order;
- ``{p}:waitt:{b}`` -- the tenants with waiters; ``{p}:vtc:{b}`` -- fair sharing's virtual
  counters (weighted service seconds) per tenant, when fair sharing is on;
- ``{p}:replica:{id}`` -- a replica's heartbeat (expires after ``heartbeat_s``) and
  ``{p}:grants:{id}`` -- the pub/sub channel its grants are announced on.

Whoever frees a slot, enqueues, or notices a lease expired runs the same Lua grant loop: while
fewer than ``max_inflight`` slots are held, pop the cluster's best waiter (the best-ranked
waiter of the tenant with the smallest counter under fair sharing), add ``<tenant>/<waiter id>``
to the ledger and PUBLISH the waiter id to its replica -- one atomic step, so a slot is never
over-admitted and a waiter never granted twice. A waiter whose replica's heartbeat is gone, or
whose replica no longer listens on its channel (PUBLISH reached nobody), is dropped instead of
granted (its client's long-poll died with the replica and is retried elsewhere); a live replica
whose waiter was dropped puts it back at its old place (:meth:`GlobalOrder.check`). The lease
id of a granted waiter is its waiter id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Final, Protocol

import redis
import redis.asyncio as aioredis

from hermes_sdk.server.global_order_scripts import ABANDON, ENQUEUE, POKE, RELEASE

log = logging.getLogger("hermes_sdk.server")

HEARTBEAT_S: Final = 3.0
"""A replica whose heartbeat is older than this is dead: its waiters are dropped, not granted."""


class GrantSink(Protocol):
    """A queue holding waiters this replica announced (see :meth:`GlobalOrder.watch`)."""

    def on_grant(self, waiter_id: str) -> None:
        """The cluster granted this waiter a slot (its lease id is the waiter id)."""
        ...


class GlobalOrder:
    """This replica's end of the cluster-wide waiting order (one per scheduler).

    Synchronous calls run one Lua script each (one round trip); grants for this replica's
    waiters arrive on its pub/sub channel and are handed to the queue that announced the waiter.
    Redis errors propagate: the queue falls back to local admission (as the ledger does).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "hermes",
        fair: bool = False,
        heartbeat_s: float = HEARTBEAT_S,
        timeout_s: float = 2.0,
    ) -> None:
        self.replica_id = secrets.token_hex(6)
        self.prefix = prefix
        self.fair = fair
        self.heartbeat_s = heartbeat_s
        self._url = url
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._poke = self._redis.register_script(POKE)
        self._enqueue = self._redis.register_script(ENQUEUE)
        self._release = self._redis.register_script(RELEASE)
        self._abandon = self._redis.register_script(ABANDON)
        self._sinks: dict[str, GrantSink] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Event | None = None
        self.grants_delivered = 0
        """Grants this replica received on its channel for waiters it still held."""

    # --- keys ------------------------------------------------------------------------------

    def _channel(self, replica_id: str) -> str:
        return f"{self.prefix}:grants:{replica_id}"

    def _heartbeat_key(self, replica_id: str) -> str:
        return f"{self.prefix}:replica:{replica_id}"

    def _wait_key(self, backend: str, tenant: str) -> str:
        return f"{self.prefix}:wait:{backend}:{tenant}"

    def _run(
        self,
        script: Callable[..., object],
        backend: str,
        max_inflight: int,
        lease_s: float,
        *extra: object,
    ) -> list[str]:
        keys = [f"{self.prefix}:slots:{backend}", f"{self.prefix}:waitt:{backend}"]
        args: list[object] = [
            f"{self.prefix}:wait:{backend}:",
            f"{self.prefix}:vtc:{backend}",
            time.time(),
            max_inflight,
            lease_s,
            f"{self.prefix}:replica:",
            f"{self.prefix}:grants:",
            1 if self.fair else 0,
            int(lease_s) + 60,
            *extra,
        ]
        result = script(keys=keys, args=args)
        assert isinstance(result, list)
        return [r.decode() if isinstance(r, bytes) else str(r) for r in result]

    # --- protocol --------------------------------------------------------------------------

    def enqueue(
        self,
        backend: str,
        max_inflight: int,
        lease_s: float,
        *,
        tenant: str,
        waiter_id: str,
        rank: float | None,
    ) -> tuple[str | None, list[str]]:
        """Take a free slot (nobody waiting) or join the order; returns (member, granted).

        ``member`` is None when the slot was taken at once (lease id = ``waiter_id``), else the
        waiter's member in the order; ``granted`` are waiter ids the join's grant loop granted.
        With ``rank`` None nothing joins: ``member`` is ``"?"`` when the request has to wait
        (call again with its rank), so a free slot is taken without ranking anything.
        """
        out = self._run(
            self._enqueue,
            backend,
            max_inflight,
            lease_s,
            tenant,
            "" if rank is None else rank,
            self.replica_id,
            waiter_id,
            int(self.heartbeat_s * 1000),
            f"{self.prefix}:seq",
        )
        return (out[0] or None), out[1:]

    def release(
        self,
        backend: str,
        max_inflight: int,
        lease_s: float,
        *,
        member: str,
        tenant: str,
        charge_s: float = 0.0,
    ) -> tuple[bool, list[str]]:
        """Free a slot (charging ``charge_s`` weighted seconds to ``tenant``) and grant the
        cluster's best waiters; returns (was held, granted waiter ids)."""
        out = self._run(
            self._release, backend, max_inflight, lease_s, member, tenant, max(0.0, charge_s)
        )
        return out[0] == "1", out[1:]

    def abandon(
        self,
        backend: str,
        max_inflight: int,
        lease_s: float,
        *,
        tenant: str,
        member: str,
        waiter_id: str,
    ) -> tuple[str, list[str]]:
        """Withdraw a waiter: ``waiting`` (removed), ``granted`` (its grant was in flight: the
        slot is freed and granted on) or ``gone`` (dropped as dead); plus granted waiter ids."""
        out = self._run(
            self._abandon,
            backend,
            max_inflight,
            lease_s,
            tenant,
            member,
            f"{tenant}/{waiter_id}",
        )
        return out[0], out[1:]

    def poke(self, backend: str, max_inflight: int, lease_s: float) -> list[str]:
        """Grant free (e.g. expired) slots to the cluster's best waiters; granted waiter ids."""
        return self._run(self._poke, backend, max_inflight, lease_s)

    def rerank(self, backend: str, tenant: str, member: str, rank: float) -> None:
        """Move a waiting member to ``rank`` (no-op if it was granted or dropped meanwhile)."""
        self._redis.zadd(self._wait_key(backend, tenant), {member: rank}, xx=True)

    def check(
        self, backend: str, waiters: list[tuple[str, str, str, float]]
    ) -> tuple[list[str], list[str]]:
        """For (tenant, member, waiter id, rank) of local waiters: which hold a slot (their
        grant message was lost) and which were dropped (rejoined at their old place)."""
        pipe = self._redis.pipeline(transaction=False)
        slots = f"{self.prefix}:slots:{backend}"
        for tenant, member, wid, _ in waiters:
            pipe.zscore(self._wait_key(backend, tenant), member)
            pipe.zscore(slots, f"{tenant}/{wid}")
        found = pipe.execute()
        granted: list[str] = []
        dropped: list[str] = []
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._heartbeat_key(self.replica_id), "1", px=int(self.heartbeat_s * 1000))
        for i, (tenant, member, wid, rank) in enumerate(waiters):
            waiting, held = found[2 * i], found[2 * i + 1]
            if held is not None:
                granted.append(wid)
            elif waiting is None:
                dropped.append(wid)
                pipe.zadd(self._wait_key(backend, tenant), {member: rank})
                pipe.sadd(f"{self.prefix}:waitt:{backend}", tenant)
        pipe.execute()
        return granted, dropped

    # --- grants to this replica -------------------------------------------------------------

    def watch(self, waiter_id: str, sink: GrantSink) -> None:
        """Hand the grant of ``waiter_id`` to ``sink`` when it arrives."""
        self._sinks[waiter_id] = sink

    def unwatch(self, waiter_id: str) -> None:
        """Stop routing ``waiter_id``'s grant."""
        self._sinks.pop(waiter_id, None)

    def deliver(self, waiter_ids: list[str]) -> None:
        """Route grants (from a script's answer or the channel) to the queues holding them."""
        for wid in waiter_ids:
            sink = self._sinks.pop(wid, None)
            if sink is not None:
                self.grants_delivered += 1
                sink.on_grant(wid)

    async def start(self) -> None:
        """Subscribe to this replica's grant channel (once; returns when subscribed)."""
        if self._listener is None:
            self._subscribed = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(), name="hermes-global-order")
        assert self._subscribed is not None
        await self._subscribed.wait()

    async def _listen(self) -> None:
        assert self._subscribed is not None
        warned = False
        while True:
            client = aioredis.Redis.from_url(self._url, socket_connect_timeout=2.0)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._channel(self.replica_id))
                while (await pubsub.get_message(timeout=1.0)) is None:
                    pass  # the subscribe confirmation: grants published from now on reach us
                await client.set(
                    self._heartbeat_key(self.replica_id), "1", px=int(self.heartbeat_s * 1000)
                )
                self._subscribed.set()
                warned = False
                beat = time.monotonic()
                while True:
                    msg = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self.heartbeat_s / 5
                    )
                    if msg is not None and msg.get("type") == "message":
                        data = msg["data"]
                        self.deliver([data.decode() if isinstance(data, bytes) else str(data)])
                    if time.monotonic() - beat >= self.heartbeat_s / 3:
                        beat = time.monotonic()
                        await client.set(
                            self._heartbeat_key(self.replica_id),
                            "1",
                            px=int(self.heartbeat_s * 1000),
                        )
            except Exception as exc:  # Redis gone or a bug: never leave the replica deaf
                if not warned:
                    log.warning("global admission order: grant channel lost (%r); retrying", exc)
                    warned = True
                self._subscribed.set()  # do not block acquires: they fall back to local order
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis 8.2
                with contextlib.suppress(Exception):
                    await client.aclose()

    def close(self) -> None:
        """Stop listening and close the connections (the heartbeat then expires)."""
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None
        with contextlib.suppress(redis.RedisError):
            self._redis.delete(self._heartbeat_key(self.replica_id))
        self._redis.close()
