"""Key rotation without a restart: re-read hermes.toml's keys and rate limits in place.

``SIGHUP`` to ``hermes serve`` and ``POST /v1/admin/reload`` (a key with ``role = "admin"``)
both call :func:`reload_access`. The file is parsed and checked completely before anything
changes; then the new keys, rate limits and /metrics exposure are put in force in one step of
the event loop: a request arriving afterwards is checked against the new keys only. Requests in
flight finish (a gateway stream, a held lease: nothing queued or leased is dropped), except
acquires still waiting in a queue with a removed (or expired) key: they end with 401
``key_revoked`` and their place is given up. A held lease of a removed key can still be released
by the tenant's other keys, or is reclaimed after its ``lease_s``.

Only ``[[api_keys]]`` and ``[server]`` ``rate_limit_rps``, ``rate_limit_burst`` and
``metrics_public`` change on a reload; other settings that differ from the file read at start
are listed in the answer's ``restart_required``. Keys given with ``--api-key`` stay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from typing import Final

from aiohttp import web

from hermes_sdk.errors import ConfigError
from hermes_sdk.server import exposure
from hermes_sdk.server.auth import ACCESS
from hermes_sdk.server.config import ServerConfig, load_config
from hermes_sdk.server.middlewares import ApiError
from hermes_sdk.server.ratelimit import RATE_LIMITER

log = logging.getLogger("hermes_sdk.server")

RELOADED: Final = frozenset(
    {"api_keys", "rate_limit_rps", "rate_limit_burst", "metrics_public", "config_file"}
)
"""ServerConfig fields a reload applies (``config_file`` is where they come from)."""


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What a reload put in force (counts only: no key or digest is reported)."""

    keys: int
    """Keys in force after the reload."""
    added: int
    removed: int
    expired: int
    """Keys in force whose ``not_after`` has already passed."""
    rate_limit_rps: float | None
    rate_limit_burst: int
    metrics_public: bool
    waits_ended: int
    """Acquires that were waiting with a removed or expired key, ended with 401."""
    restart_required: tuple[str, ...]
    """Settings that differ in the file but only apply at start (e.g. ``backends``)."""

    def to_json(self) -> dict[str, object]:
        """The answer of ``POST /v1/admin/reload``."""
        return {"reloaded": True, **{f.name: getattr(self, f.name) for f in fields(self)}}


class Reloader:
    """The config in force and the file contents it started from."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._baseline = _read(config.config_file)

    def plan(self) -> tuple[ServerConfig, tuple[str, ...]]:
        """The config a reload would put in force, and the settings needing a restart.

        Raises ConfigError (nothing changes) for an unreadable or invalid file, a changed
        ``key_salt``, or a file that would leave the server with no key at all.
        """
        current = self.config
        if current.config_file is None:
            raise ApiError(
                409,
                "no_config_file",
                "this server was not started with --config: nothing to re-read",
            )
        fresh = load_config(current.config_file)
        if fresh.key_salt != current.key_salt:
            raise ConfigError("key_salt cannot change without a restart (every digest would)")
        kept = tuple(k for k in current.api_keys if not k.from_file)
        keys = kept + fresh.api_keys
        if current.api_keys and not keys:
            raise ConfigError(
                "the reload would remove every API key (the server would then answer anyone as "
                "one tenant); restart without keys if that is meant"
            )
        changed = tuple(
            f.name
            for f in fields(ServerConfig)
            if f.name not in RELOADED
            and self._baseline is not None
            and getattr(fresh, f.name) != getattr(self._baseline, f.name)
        )
        planned = replace(
            current,
            api_keys=keys,
            rate_limit_rps=fresh.rate_limit_rps,
            rate_limit_burst=fresh.rate_limit_burst,
            metrics_public=fresh.metrics_public,
        )
        return planned, changed


RELOADER: Final = web.AppKey("hermes_reloader", Reloader)


def _read(path: str | None) -> ServerConfig | None:
    if path is None:
        return None
    try:
        return load_config(path)
    except ConfigError:
        return None


def reload_access(app: web.Application) -> ReloadReport:
    """Re-read keys and rate limits from the config file and put them in force at once."""
    reloader = app[RELOADER]
    planned, restart_required = reloader.plan()
    access = app[ACCESS]
    before = {k.key_sha256 for k in access.keyring.keys}
    after = {k.key_sha256 for k in planned.api_keys}
    limiter = app[RATE_LIMITER]
    # from here on nothing raises or awaits: the swap is one step of the event loop
    access.keyring.replace(planned.api_keys, planned.key_salt)
    access.metrics_public = exposure.metrics_public(planned)
    if planned.rate_limit_rps is not None:
        limiter.reconfigure(planned.rate_limit_rps, planned.rate_limit_burst)
    limiter.enabled = planned.rate_limit_rps is not None
    reloader.config = planned
    ended = access.waits.revoke(access.keyring.valid)
    now = access.keyring.now()
    report = ReloadReport(
        keys=len(planned.api_keys),
        added=len(after - before),
        removed=len(before - after),
        expired=sum(k.expired(now) for k in planned.api_keys),
        rate_limit_rps=planned.rate_limit_rps,
        rate_limit_burst=planned.rate_limit_burst,
        metrics_public=access.metrics_public,
        waits_ended=ended,
        restart_required=restart_required,
    )
    log.warning(
        "reloaded %s: %d keys in force (%d added, %d removed, %d expired), %d waiting acquires "
        "ended%s",
        planned.config_file,
        report.keys,
        report.added,
        report.removed,
        report.expired,
        ended,
        f"; restart to apply {', '.join(restart_required)}" if restart_required else "",
    )
    return report


def reload_on_signal(app: web.Application) -> ReloadReport | None:
    """SIGHUP: :func:`reload_access`, logging (not raising) why it was refused."""
    try:
        return reload_access(app)
    except (ConfigError, ApiError) as exc:
        log.error("reload refused, the keys in force are unchanged: %s", exc)
        return None


routes = web.RouteTableDef()


@routes.post("/v1/admin/reload")
async def reload_route(request: web.Request) -> web.Response:
    """Re-read keys and rate limits from the config file (admin key)."""
    return web.json_response(reload_access(request.app).to_json())


def setup_admin(app: web.Application, config: ServerConfig) -> None:
    """Register the admin routes and the reloader of ``config``'s file."""
    app[RELOADER] = Reloader(config)
    app.add_routes(routes)
