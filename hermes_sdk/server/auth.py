"""API keys -> tenants. Keys are kept as salted sha256 digests and compared in constant time.

With no keys configured the server is single-tenant: every request belongs to ``"default"``.
The keys can be swapped while the server runs (:meth:`Keyring.replace`, used by the reload of
:mod:`hermes_sdk.server.admin`): a request is checked against the keys in force when it arrives;
an acquire still waiting in a queue when its key is removed ends with 401 ``key_revoked`` (when
its key's ``not_after`` passes: ``key_expired``); its place is given up, nobody else moves. Every
other request in flight finishes.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from hermes_sdk.server.config import ApiKey, hash_api_key
from hermes_sdk.server.middlewares import Handler, json_error

DEFAULT_TENANT: Final = "default"
TENANT: Final = web.RequestKey[str | None]("hermes_tenant")
"""``request[TENANT]``: the tenant of the request (None: an admin key that spans tenants)."""
PUBLIC_PATHS: Final = frozenset(
    {"/healthz", "/metrics", "/openapi.json", "/ui", "/ui/app.js", "/ui/app.css"}
)
"""Paths served without a key (they expose no tenant data; the dashboard page calls /v1).

``/metrics`` names tenants and backends: it is public only when ``metrics_public`` says so
(default: on a loopback bind), else it needs an admin key."""
METRICS_PATH: Final = "/metrics"
ADMIN_PREFIX: Final = "/v1/admin/"
"""Paths under this need a key with ``role = "admin"`` (with no keys: a loopback client)."""
REVOCABLE_ROUTES: Final = frozenset({"/v1/backends/{name}/acquire"})
"""Route templates whose waiting requests end with 401 when their key is removed."""


class Keyring:
    """Resolves a presented API key to its entry without storing or logging the key."""

    def __init__(
        self, keys: Iterable[ApiKey], salt: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._salt = salt
        self._keys: tuple[tuple[bytes, ApiKey], ...] = ()
        self.replace(keys, salt)

    def replace(self, keys: Iterable[ApiKey], salt: str) -> None:
        """Put ``keys`` in force at once (one assignment: no request sees a mix)."""
        entries = tuple((k.key_sha256.lower().encode("ascii"), k) for k in keys)
        self._keys, self._salt = entries, salt

    @property
    def keys(self) -> tuple[ApiKey, ...]:
        """The keys in force."""
        return tuple(k for _, k in self._keys)

    @property
    def salt(self) -> str:
        """The salt the digests were made with."""
        return self._salt

    @property
    def open(self) -> bool:
        """True when no keys are configured (single tenant, no authentication)."""
        return not self._keys

    def lookup(self, key: str) -> ApiKey | None:
        """The entry of ``key`` (expired or not), or None. Compares against every stored digest."""
        keys, salt = self._keys, self._salt
        digest = hash_api_key(key, salt).encode("ascii")
        found: ApiKey | None = None
        for stored, entry in keys:
            if hmac.compare_digest(stored, digest) and found is None:
                found = entry
        return found

    def tenant_of(self, key: str) -> str | None:
        """The tenant owning ``key`` if it is in force and not expired, else None."""
        entry = self.lookup(key)
        return None if entry is None or entry.expired(self._clock()) else entry.tenant

    def valid(self, key_sha256: str) -> bool:
        """True while a key with this digest is in force and not expired."""
        now = self._clock()
        return any(k.key_sha256 == key_sha256 and not k.expired(now) for _, k in self._keys)

    def now(self) -> float:
        """The keyring's clock (Unix seconds)."""
        return self._clock()


class RevocableWaits:
    """Requests on :data:`REVOCABLE_ROUTES` in progress, by the digest of the key they used."""

    def __init__(self) -> None:
        self._tasks: dict[str, set[asyncio.Task[web.StreamResponse]]] = {}
        self._revoked: dict[asyncio.Task[web.StreamResponse], str] = {}
        """Cancelled tasks -> the 401 code they answer (key_revoked or key_expired)."""

    @property
    def active(self) -> int:
        """Requests being tracked."""
        return sum(len(t) for t in self._tasks.values())

    async def run(
        self, key: ApiKey, handler: Handler, request: web.Request, now_unix_s: float
    ) -> web.StreamResponse:
        """Run ``handler`` so that :meth:`revoke`, or the key's ``not_after`` passing, ends it
        with 401 while it waits."""
        task = asyncio.ensure_future(handler(request))
        tasks = self._tasks.setdefault(key.key_sha256, set())
        tasks.add(task)
        expiry = None
        if key.not_after is not None:
            delay_s = max(0.0, key.not_after - now_unix_s)
            expiry = asyncio.get_running_loop().call_later(delay_s, self._end, task, "key_expired")
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            code = self._revoked.get(task)
            if code is None or (current is not None and current.cancelling()):
                raise
            what = "expired" if code == "key_expired" else "was removed"
            return json_error(
                401,
                code,
                f"the API key {what} while this request waited; its place was given up",
                {"WWW-Authenticate": "Bearer"},
            )
        finally:
            if expiry is not None:
                expiry.cancel()
            tasks.discard(task)
            if not tasks and self._tasks.get(key.key_sha256) is tasks:
                del self._tasks[key.key_sha256]
            self._revoked.pop(task, None)

    def _end(self, task: asyncio.Task[web.StreamResponse], code: str) -> bool:
        """Cancel a waiting ``task`` that will answer 401 ``code``; False if it already ended."""
        if task.done() or task in self._revoked:
            return False
        self._revoked[task] = code
        task.cancel()
        return True

    def revoke(self, still_valid: Callable[[str], bool]) -> int:
        """Cancel the waiting requests of every key ``still_valid`` rejects; returns how many.

        The acquire handler gives its queue place up when cancelled (a slot granted in the same
        instant is released again), so no other waiter moves and no slot leaks.
        """
        ended = 0
        for digest, tasks in list(self._tasks.items()):
            if not still_valid(digest):
                ended += sum(self._end(task, "key_revoked") for task in list(tasks))
        return ended


@dataclass(slots=True)
class Access:
    """Who may call what: the keyring in force, /metrics exposure, revocable waits."""

    keyring: Keyring
    metrics_public: bool
    insecure: bool = False
    """Serving a non-loopback address with no key because of ``--insecure-no-auth``."""
    waits: RevocableWaits = field(default_factory=RevocableWaits)

    @property
    def mode(self) -> str:
        """``api_keys``, ``none`` (no key: one tenant, loopback) or ``insecure_no_auth``."""
        if not self.keyring.open:
            return "api_keys"
        return "insecure_no_auth" if self.insecure else "none"


ACCESS: Final = web.AppKey("hermes_access", Access)


def bearer_token(request: web.Request) -> str | None:
    """The key from ``Authorization: Bearer <key>`` (or ``X-Api-Key``), if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("X-Api-Key") or None


def loopback_peer(request: web.Request) -> bool:
    """True when the client connected from a loopback address."""
    try:
        return ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def _unauthorized(code: str, message: str) -> web.Response:
    return json_error(401, code, message, {"WWW-Authenticate": "Bearer"})


def _revocable(request: web.Request) -> bool:
    resource = getattr(request.match_info.route, "resource", None)
    return resource is not None and resource.canonical in REVOCABLE_ROUTES


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Set ``request[TENANT]`` from the API key; 401 JSON when a key is required and wrong.

    403 ``forbidden`` for an admin path (and a non-public /metrics) without an admin key.
    """
    access = request.app[ACCESS]
    keyring = access.keyring
    path = request.path
    admin_path = path.startswith(ADMIN_PREFIX)
    if keyring.open:
        if admin_path and not loopback_peer(request):
            return json_error(403, "forbidden", "with no API keys, admin calls only from loopback")
        request[TENANT] = DEFAULT_TENANT
        return await handler(request)
    if path in PUBLIC_PATHS and (path != METRICS_PATH or access.metrics_public):
        request[TENANT] = None
        return await handler(request)
    token = bearer_token(request)
    entry = keyring.lookup(token) if token else None
    if entry is None:
        return _unauthorized(
            "unauthorized", "missing or unknown API key (send Authorization: Bearer <key>)"
        )
    if entry.expired(keyring.now()):
        return _unauthorized("key_expired", "this API key has expired (its not_after has passed)")
    if (admin_path or path == METRICS_PATH) and not entry.admin:
        return json_error(403, "forbidden", f'{path} needs a key with role = "admin"')
    request[TENANT] = entry.tenant
    if _revocable(request):
        return await access.waits.run(entry, handler, request, keyring.now())
    return await handler(request)
