"""API keys -> tenants. Keys are kept as salted sha256 digests and compared in constant time.

With no keys configured the server is single-tenant: every request belongs to ``"default"``.
"""

from __future__ import annotations

import hmac
import warnings
from collections.abc import Iterable
from typing import Final

from aiohttp import web

from hermes_sdk.server.config import ApiKey, hash_api_key
from hermes_sdk.server.middlewares import Handler, json_error

DEFAULT_TENANT: Final = "default"
TENANT: Final = "tenant"
"""``request[TENANT]``: the tenant of the request (a plain string key: the gateway reads it too)."""
warnings.filterwarnings("ignore", category=web.NotAppKeyWarning, module=r"hermes_sdk\.server\.auth")
PUBLIC_PATHS: Final = frozenset(
    {"/healthz", "/metrics", "/openapi.json", "/ui", "/ui/app.js", "/ui/app.css"}
)
"""Paths served without a key (they expose no tenant data; the dashboard page calls /v1)."""


class Keyring:
    """Resolves a presented API key to its tenant without storing or logging the key."""

    def __init__(self, keys: Iterable[ApiKey], salt: str) -> None:
        self._keys = tuple((k.key_sha256.lower().encode("ascii"), k.tenant) for k in keys)
        self._salt = salt

    @property
    def open(self) -> bool:
        """True when no keys are configured (single tenant, no authentication)."""
        return not self._keys

    def tenant_of(self, key: str) -> str | None:
        """The tenant owning ``key``, or None. Compares against every stored digest."""
        digest = hash_api_key(key, self._salt).encode("ascii")
        found: str | None = None
        for stored, tenant in self._keys:
            if hmac.compare_digest(stored, digest) and found is None:
                found = tenant
        return found


KEYRING: Final = web.AppKey("hermes_keyring", Keyring)


def bearer_token(request: web.Request) -> str | None:
    """The key from ``Authorization: Bearer <key>`` (or ``X-Api-Key``), if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("X-Api-Key") or None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Set ``request[TENANT]`` from the API key; 401 JSON when a key is required and wrong."""
    keyring = request.app[KEYRING]
    if keyring.open:
        request[TENANT] = DEFAULT_TENANT
        return await handler(request)
    if request.path in PUBLIC_PATHS:
        request[TENANT] = None
        return await handler(request)
    token = bearer_token(request)
    tenant = keyring.tenant_of(token) if token else None
    if tenant is None:
        return json_error(
            401,
            "unauthorized",
            "missing or unknown API key (send Authorization: Bearer <key>)",
            {"WWW-Authenticate": "Bearer"},
        )
    request[TENANT] = tenant
    return await handler(request)
