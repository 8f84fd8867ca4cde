"""Configuration of a `hermes serve` deployment: listen address, store, policy, backends, keys.

Built from command-line flags or a TOML file (``hermes serve --config hermes.toml``). API keys are
hashed (sha256 over a per-deployment salt and the key) as soon as they are read; the plaintext is
never kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, cast

from hermes_sdk.errors import ConfigError
from hermes_sdk.graph.records import check_name
from hermes_sdk.policy.factory import POLICY_NAMES, SIMULATOR_ONLY_POLICIES
from hermes_sdk.policy.fairness import FairnessConfig, parse_fairness_table
from hermes_sdk.server.upstreams import UpstreamConfig

DEFAULT_PORT: Final = 8700
DEFAULT_STORE_URL: Final = "sqlite:///~/.hermes/hermes.db"
DEFAULT_KEY_SALT: Final = "hermes-sdk"
DEFAULT_MAX_BODY_BYTES: Final = 4 * 1024 * 1024
DEFAULT_LEASE_S: Final = 600.0
DEFAULT_ACQUIRE_TIMEOUT_S: Final = 30.0
KEY_ROLES: Final = ("tenant", "admin")
"""``role`` of an ``[[api_keys]]`` entry: ``admin`` may also reload keys and read /metrics."""
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")


def hash_api_key(key: str, salt: str = DEFAULT_KEY_SALT) -> str:
    """Hex sha256 of ``salt + key``: the only form in which a server keeps an API key."""
    return hashlib.sha256((salt + key).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """One serving backend the scheduler admits requests to.

    ``max_inflight`` is the number of requests allowed at once; a lease held longer than
    ``lease_s`` seconds is reclaimed (its holder is assumed dead).
    """

    max_inflight: int = 1
    lease_s: float = DEFAULT_LEASE_S

    def __post_init__(self) -> None:
        if isinstance(self.max_inflight, bool) or not isinstance(self.max_inflight, int):
            raise ConfigError(f"max_inflight must be an integer, got {self.max_inflight!r}")
        if self.max_inflight < 1:
            raise ConfigError(f"max_inflight must be >= 1, got {self.max_inflight}")
        if not isinstance(self.lease_s, (int, float)) or isinstance(self.lease_s, bool):
            raise ConfigError(f"lease_s must be a number of seconds, got {self.lease_s!r}")
        if not math.isfinite(self.lease_s) or self.lease_s <= 0:
            raise ConfigError(f"lease_s must be > 0, got {self.lease_s}")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A tenant's API key, kept as ``hash_api_key(key, salt)`` only."""

    key_sha256: str
    tenant: str
    admin: bool = False
    """``role = "admin"``: may also call ``/v1/admin/*`` and read a non-public ``/metrics``."""
    not_after: float | None = None
    """Unix time (seconds) from which the key is refused (401 ``key_expired``); None: never."""
    from_file: bool = False
    """Read from the config file, so a reload replaces it; other keys (``--api-key``,
    :meth:`ServerConfig.with_api_keys`) stay for the life of the process."""

    def expired(self, now_unix_s: float) -> bool:
        """True once ``now_unix_s`` (seconds since the epoch) has reached ``not_after``."""
        return self.not_after is not None and now_unix_s >= self.not_after


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything `create_app` needs; immutable once the server starts."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    store_url: str = DEFAULT_STORE_URL
    policy: str = "gittins"
    backends: Mapping[str, BackendConfig] = field(default_factory=dict)
    api_keys: tuple[ApiKey, ...] = ()
    upstreams: tuple[UpstreamConfig, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    key_salt: str = DEFAULT_KEY_SALT
    acquire_timeout_s: float = DEFAULT_ACQUIRE_TIMEOUT_S
    """Longest a single acquire long-poll waits before answering 429 with a retry hint."""
    sync_interval_s: float = 1.0
    """How often a replica pulls paths other replicas appended to a shared store."""
    run_idle_s: float = 6 * 3600.0
    """A run with no event for this long is forgotten (its client died without run_end)."""
    pause_horizon_s: float = 86_400.0
    """A run paused (``run_pause``) for longer than this is ended as abandoned (seconds)."""
    rate_limit_rps: float | None = None
    """Requests per second each tenant may make (token bucket); None: no limit."""
    rate_limit_burst: int = 100
    """Requests a tenant may make at once before ``rate_limit_rps`` applies."""
    prewarm_backends: tuple[str, ...] = ()
    """Backends with cold starts the prewarm planner warms ahead of predicted need (none: off)."""
    prewarm_webhooks: Mapping[str, str] = field(default_factory=dict)
    """backend -> URL receiving its ``prewarm``/``release`` POSTs."""
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    """Weighted fair sharing across tenants and the starvation guard (``[fairness]``)."""
    insecure_no_auth: bool = False
    """``--insecure-no-auth``: serve a non-loopback address without any API key (protected
    mode otherwise refuses to start); logged at start, shown on /healthz and /ui."""
    metrics_public: bool | None = None
    """/metrics without a key (it names tenants and backends); None: public only when the
    server listens on loopback or has no keys, else it needs an admin key."""
    global_order: bool = True
    """With a Redis store: one waiting order per backend across all replicas (slots handed to
    the cluster's best waiter); False: each replica orders only its own waiters."""
    config_file: str | None = None
    """The TOML file this config was read from: SIGHUP and ``POST /v1/admin/reload`` re-read
    its keys and rate limits."""

    def __post_init__(self) -> None:
        for name in self.backends:
            _check_config_name(name, "backend name")
        if self.policy in SIMULATOR_ONLY_POLICIES:
            raise ConfigError(
                f"policy {self.policy!r} runs only in the simulator (`hermes sim`, `hermes bench`);"
                " a live scheduler would serve a different order under its name"
            )
        if self.policy not in POLICY_NAMES:
            raise ConfigError(
                f"unknown policy {self.policy!r}; choose one of "
                + ", ".join(p for p in POLICY_NAMES if p not in SIMULATOR_ONLY_POLICIES)
            )
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be within 0..65535, got {self.port!r}")
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1024:
            raise ConfigError(
                f"max_body_bytes must be an integer >= 1024, got {self.max_body_bytes}"
            )
        for what, value in (
            ("acquire_timeout_s", self.acquire_timeout_s),
            ("sync_interval_s", self.sync_interval_s),
            ("run_idle_s", self.run_idle_s),
            ("pause_horizon_s", self.pause_horizon_s),
        ):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{what} must be a positive number of seconds, got {value!r}")
        rps = self.rate_limit_rps
        if rps is not None and (
            not isinstance(rps, (int, float)) or not math.isfinite(rps) or rps <= 0
        ):
            raise ConfigError(f"rate_limit_rps must be a positive number or None, got {rps!r}")
        if not isinstance(self.rate_limit_burst, int) or self.rate_limit_burst < 1:
            burst = self.rate_limit_burst
            raise ConfigError(f"rate_limit_burst must be an integer >= 1, got {burst!r}")

    def with_api_keys(self, keys: Mapping[str, str]) -> ServerConfig:
        """A copy that also accepts the plaintext ``keys`` (key -> tenant), stored hashed."""
        added = tuple(
            ApiKey(hash_api_key(key, self.key_salt), _check_config_name(tenant, "tenant"))
            for key, tenant in keys.items()
        )
        for key in keys:
            if not key:
                raise ConfigError("an API key may not be empty")
        return replace(self, api_keys=self.api_keys + added)


def _check_config_name(value: object, what: str) -> str:
    try:
        return check_name(value, what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def parse_backend_flag(flag: str) -> tuple[str, BackendConfig]:
    """Parse ``NAME=MAX_INFLIGHT`` (or ``NAME=MAX_INFLIGHT:LEASE_S``) from the command line."""
    name, sep, rest = flag.partition("=")
    if not sep or not name:
        raise ConfigError(f"--backend wants NAME=MAX_INFLIGHT, got {flag!r}")
    inflight, _, lease = rest.partition(":")
    try:
        backend = BackendConfig(
            max_inflight=int(inflight), lease_s=float(lease) if lease else DEFAULT_LEASE_S
        )
    except ValueError as exc:
        raise ConfigError(f"--backend {flag!r}: {exc}") from None
    return _check_config_name(name, "backend name"), backend


def parse_api_key_flag(flag: str) -> tuple[str, str]:
    """Parse ``KEY=TENANT`` from the command line."""
    key, sep, tenant = flag.rpartition("=")
    if not sep or not key or not tenant:
        raise ConfigError("--api-key wants KEY=TENANT")
    return key, _check_config_name(tenant, "tenant")


def load_config(path: str | Path, base: ServerConfig | None = None) -> ServerConfig:
    """Read a TOML config file on top of ``base`` (defaults if None).

    Layout::

        [server]          # host, port, store, policy, max_body_bytes, key_salt, acquire_timeout_s,
                          # rate_limit_rps, rate_limit_burst
        [backends.NAME]   # max_inflight, lease_s
        [[api_keys]]      # tenant plus key (plaintext, hashed on load) or key_sha256
        [[upstreams]]     # gateway upstreams: name, url, engine, max_inflight, ...
        [prewarm]         # backends = [NAME, ...]; [prewarm.webhooks] NAME = "URL"
        [fairness]        # enabled (default: > 1 tenant), slowdown_cap; [fairness.weights] T = w
    """
    try:
        doc = tomllib.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    cfg = base or ServerConfig()
    server = _table(doc.get("server", {}), "[server]")
    known = {
        "host": str,
        "port": int,
        "store": str,
        "policy": str,
        "max_body_bytes": int,
        "key_salt": str,
        "acquire_timeout_s": float,
        "sync_interval_s": float,
        "run_idle_s": float,
        "pause_horizon_s": float,
        "rate_limit_rps": float,
        "rate_limit_burst": int,
        "metrics_public": bool,
        "global_order": bool,
    }
    changes: dict[str, object] = {}
    for key, value in server.items():
        want = known.get(key)
        if want is None:
            raise ConfigError(f"unknown key [server].{key}")
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
            raise ConfigError(f"[server].{key} must be {want.__name__}, got {value!r}")
        changes["store_url" if key == "store" else key] = value
    cfg = replace(cfg, **changes)  # type: ignore[arg-type]
    backends = dict(cfg.backends)
    for name, table in _table(doc.get("backends", {}), "[backends]").items():
        t = _table(table, f"[backends.{name}]")
        try:
            backends[_check_config_name(name, "backend name")] = BackendConfig(**t)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError(f"[backends.{name}]: {exc}") from None
    keys = [*cfg.api_keys, *_api_keys(doc.get("api_keys", []), cfg.key_salt)]
    upstreams = list(cfg.upstreams)
    for i, entry in enumerate(_list(doc.get("upstreams", []), "[[upstreams]]")):
        t = _table(entry, f"upstreams[{i}]")
        models = t.get("models")
        if isinstance(models, list):
            t = {**t, "models": tuple(models)}
        try:
            upstreams.append(UpstreamConfig(**t))  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"upstreams[{i}]: {exc}") from None
    cfg = replace(
        cfg,
        backends=backends,
        api_keys=tuple(keys),
        upstreams=tuple(upstreams),
        config_file=str(Path(path).expanduser().resolve()),
    )
    if "prewarm" in doc:
        cfg = _with_prewarm(cfg, _table(doc["prewarm"], "[prewarm]"))
    if "fairness" in doc:
        cfg = replace(cfg, fairness=parse_fairness_table(_table(doc["fairness"], "[fairness]")))
    return cfg


def _api_keys(entries: object, salt: str) -> list[ApiKey]:
    """The ``[[api_keys]]`` entries: tenant, key (hashed here) or key_sha256, role, not_after."""
    keys = []
    for i, entry in enumerate(_list(entries, "[[api_keys]]")):
        t = _table(entry, f"api_keys[{i}]")
        unknown = set(t) - {"tenant", "key", "key_sha256", "role", "not_after"}
        if unknown:
            raise ConfigError(f"unknown key api_keys[{i}].{sorted(unknown)[0]}")
        tenant = _check_config_name(t.get("tenant"), f"api_keys[{i}].tenant")
        digest, key = t.get("key_sha256"), t.get("key")
        if isinstance(digest, str) and key is None:
            if not _SHA256_HEX.fullmatch(digest.lower()):
                raise ConfigError(f"api_keys[{i}].key_sha256 must be 64 hex digits")
            digest = digest.lower()
        elif isinstance(key, str) and key and digest is None:
            digest = hash_api_key(key, salt)
        else:
            raise ConfigError(f"api_keys[{i}] needs key or key_sha256 (one of them)")
        role = t.get("role", "tenant")
        if role not in KEY_ROLES:
            raise ConfigError(f"api_keys[{i}].role must be one of {KEY_ROLES}, got {role!r}")
        not_after = _unix_time(t.get("not_after"), f"api_keys[{i}].not_after")
        keys.append(ApiKey(digest, tenant, role == "admin", not_after, from_file=True))
    return keys


def _unix_time(value: object, what: str) -> float | None:
    """A TOML offset date-time (``2027-01-01T00:00:00Z``) or Unix seconds, as Unix seconds."""
    if value is None:
        return None
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ConfigError(
        f"{what} must be a date-time with an offset (2027-01-01T00:00:00Z) or Unix seconds"
    )


def _with_prewarm(cfg: ServerConfig, table: dict[str, object]) -> ServerConfig:
    unknown = set(table) - {"backends", "webhooks"}
    if unknown:
        raise ConfigError(f"unknown key [prewarm].{sorted(unknown)[0]}")
    names = table.get("backends", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError("[prewarm].backends must be an array of backend names")
    hooks = _table(table.get("webhooks", {}), "[prewarm.webhooks]")
    for name, url in hooks.items():
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"[prewarm.webhooks].{name} must be an http(s) URL")
    backends = tuple(dict.fromkeys([*cfg.prewarm_backends, *names, *hooks]))
    return replace(
        cfg,
        prewarm_backends=tuple(_check_config_name(n, "prewarm backend") for n in backends),
        prewarm_webhooks={**cfg.prewarm_webhooks, **{k: str(v) for k, v in hooks.items()}},
    )


def parse_prewarm_flag(flag: str) -> tuple[str, str | None]:
    """Parse ``--prewarm NAME[=WEBHOOK_URL]`` into (backend, webhook URL or None)."""
    name, _, url = flag.partition("=")
    name = _check_config_name(name.strip(), "prewarm backend")
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError(f"--prewarm {flag!r}: the webhook must be an http(s) URL")
    return name, url or None


def _table(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be a table")
    return dict(cast(Mapping[str, object], value))


def _list(value: object, what: str) -> Sequence[object]:
    if not isinstance(value, list):
        raise ConfigError(f"{what} must be an array of tables")
    return cast(list[object], value)
