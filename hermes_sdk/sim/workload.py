"""Workload files: the apps (stochastic programs), backends and arrival process of a simulation.

A workload is JSON validated against ``workload.schema.json`` (shipped in this package), then
checked for what a schema cannot say (edges that point to unknown units, probabilities that do
not sum to one, LLM units without a time model). Every error is a :class:`ConfigError` whose
message starts with the path of the offending field, e.g. ``apps[0].units.u.service.mean``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, cast

import jsonschema

from hermes_sdk.errors import ConfigError
from hermes_sdk.graph.records import END, UnitKind
from hermes_sdk.sim.dists import Deterministic, Dist, parse_dist

Learning = Literal["online", "oracle"]
DEFAULT_MAX_STAGES: Final = 10_000


@dataclass(frozen=True, slots=True)
class TimeModel:
    """LLM call seconds at speed 1 = overhead + per-token costs."""

    per_input_token_s: float = 0.0
    per_output_token_s: float = 0.0
    overhead_s: float = 0.0

    def service_s(self, input_tokens: int, output_tokens: int) -> float:
        """Seconds of one call with these token counts."""
        return (
            self.overhead_s
            + self.per_input_token_s * input_tokens
            + self.per_output_token_s * output_tokens
        )


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """One serving backend: ``servers`` parallel slots (None = unlimited) and its speed curve."""

    name: str
    servers: int | None = 1
    preemptive: bool = False
    speed: tuple[float, ...] = (1.0,)
    """Per-request speed with k requests running is ``speed[min(k, len) - 1]``."""
    cold_start_s: float = 0.0
    keep_alive_s: float = math.inf
    initially_warm: bool = False
    time_model: TimeModel | None = None

    def speed_at(self, running: int) -> float:
        """Per-request speed when ``running`` requests share the backend."""
        return self.speed[min(max(running, 1), len(self.speed)) - 1]

    @property
    def capacity(self) -> float:
        """Service seconds per second the backend delivers when full (inf if unlimited)."""
        if self.servers is None:
            return math.inf
        return self.servers * self.speed_at(self.servers)


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """One functional unit of an app and the law of its demand and of what follows it."""

    name: str
    kind: UnitKind
    backend: str
    service: Dist | None
    input_tokens: Dist | None = None
    output_tokens: Dist | None = None
    prompt_growth_tokens: int = 0
    fanout: Dist = field(default_factory=lambda: Deterministic(1.0))
    next: tuple[tuple[tuple[str, float], ...], ...] = (((END, 1.0),),)
    """Transition lists ``((to, p), ...)`` by visit number (index = visit - 1, last repeats)."""

    def edges(self, visit: int) -> tuple[tuple[str, float], ...]:
        """Transitions out of the ``visit``-th visit (1-based)."""
        return self.next[min(visit, len(self.next)) - 1]


@dataclass(frozen=True, slots=True)
class AppSpec:
    """An app: a stochastic program over units, entered at ``start``."""

    name: str
    start: str
    units: Mapping[str, UnitSpec]
    weight: float = 1.0
    deadline_s: float | None = None
    """Fixed deadline, seconds after arrival."""
    deadline_fraction: float = 0.0
    deadline_factors: tuple[float, ...] = ()
    deadline_base_s: float | None = None
    """Seconds the deadline factors multiply (an SLO per app kind); None = each run's own
    standalone time."""
    tenant: str = "default"
    """Tenant whose fair share this app's runs count against."""


@dataclass(frozen=True, slots=True)
class ArrivalSpec:
    """How apps arrive: Poisson at ``rate``, or a repeating piecewise-constant rate trace."""

    process: Literal["poisson", "trace", "load"]
    rate: float | None = None
    load: float | None = None
    bucket_s: float | None = None
    rates: tuple[float, ...] = ()
    relative: bool = False
    """True when ``rates`` are multipliers of the mean rate (``buckets``), not absolute."""


@dataclass(frozen=True, slots=True)
class Workload:
    """A validated workload document."""

    n_apps: int
    arrival: ArrivalSpec
    backends: Mapping[str, BackendSpec]
    apps: tuple[AppSpec, ...]
    seed: int = 0
    warmup_apps: int = 0
    learning: Learning = "online"
    rank_samples: int = 1000
    max_stages: int = DEFAULT_MAX_STAGES
    name: str = ""
    tenant_weights: Mapping[str, float] = field(default_factory=dict)
    """Fair-share weight per tenant (absent tenants weigh 1)."""
    fairness: bool | None = None
    """Fair sharing across tenants; None: on when the apps name more than one tenant."""

    @property
    def tenants(self) -> tuple[str, ...]:
        """Tenants the apps name, sorted."""
        return tuple(sorted({a.tenant for a in self.apps}))


@cache
def workload_schema() -> dict[str, Any]:
    """The JSON Schema of workload files (``hermes_sdk/sim/workload.schema.json``)."""
    text = resources.files("hermes_sdk.sim").joinpath("workload.schema.json").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "workload"


def _schema_check(doc: object) -> None:
    validator = jsonschema.Draft202012Validator(workload_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        raise ConfigError(f"{_where(error.absolute_path)}: {error.message}")


def _parse_edges(
    raw: list[Mapping[str, Any]], where: str, units: Mapping[str, Any]
) -> tuple[tuple[str, float], ...]:
    edges = tuple((str(e["to"]), float(e["p"])) for e in raw)
    for i, (to, _) in enumerate(edges):
        if to != END and to not in units:
            raise ConfigError(f"{where}[{i}].to: unknown unit {to!r} (use 'END' to finish)")
    total = math.fsum(p for _, p in edges)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"{where}: probabilities sum to {total:g}, not 1")
    return edges


def _parse_time_model(raw: Mapping[str, Any] | None) -> TimeModel | None:
    if raw is None:
        return None
    return TimeModel(
        per_input_token_s=float(raw.get("per_input_token_s", raw.get("prefill_s_per_token", 0.0))),
        per_output_token_s=float(raw.get("per_output_token_s", raw.get("decode_s_per_token", 0.0))),
        overhead_s=float(raw.get("overhead_s", 0.0)),
    )


def _parse_backend(name: str, raw: Mapping[str, Any]) -> BackendSpec:
    where = f"backends.{name}"
    servers_raw = raw.get("servers", 1)
    servers = None if servers_raw == "inf" else int(servers_raw)
    if "speed" in raw and "batch_slowdown" in raw:
        raise ConfigError(f"{where}: give speed or batch_slowdown, not both")
    if "speed" in raw:
        speed = tuple(float(s) for s in raw["speed"])
    elif "batch_slowdown" in raw:
        x = float(raw["batch_slowdown"])
        size = servers if servers is not None else 1
        speed = tuple(1.0 / (1.0 + x * (k - 1)) for k in range(1, min(size, 4096) + 1))
    else:
        speed = (1.0,)
    keep_alive = raw.get("keep_alive_s")
    return BackendSpec(
        name=name,
        servers=servers,
        preemptive=bool(raw.get("preemptive", False)),
        speed=speed,
        cold_start_s=float(raw.get("cold_start_s", 0.0)),
        keep_alive_s=math.inf if keep_alive is None else float(keep_alive),
        initially_warm=bool(raw.get("initially_warm", False)),
        time_model=_parse_time_model(raw.get("time_model")),
    )


def _parse_unit(
    name: str,
    raw: Mapping[str, Any],
    where: str,
    units: Mapping[str, Any],
    backends: Mapping[str, BackendSpec],
) -> UnitSpec:
    backend = str(raw["backend"])
    if backend not in backends:
        raise ConfigError(f"{where}.backend: unknown backend {backend!r}")
    kind = cast(UnitKind, raw.get("kind", "custom"))
    service = parse_dist(raw["service"], f"{where}.service") if "service" in raw else None
    tokens_in = (
        parse_dist(raw["input_tokens"], f"{where}.input_tokens") if "input_tokens" in raw else None
    )
    tokens_out = (
        parse_dist(raw["output_tokens"], f"{where}.output_tokens")
        if "output_tokens" in raw
        else None
    )
    if service is None:
        if tokens_in is None and tokens_out is None:
            raise ConfigError(f"{where}.service: required unless input_tokens/output_tokens given")
        if backends[backend].time_model is None:
            raise ConfigError(
                f"backends.{backend}.time_model: required by token-based unit {where}"
            )
    if ("next" in raw) == ("by_visit" in raw):
        raise ConfigError(f"{where}: give exactly one of 'next' or 'by_visit'")
    next_: tuple[tuple[tuple[str, float], ...], ...]
    if "next" in raw:
        next_ = (_parse_edges(raw["next"], f"{where}.next", units),)
    else:
        next_ = tuple(
            _parse_edges(edges, f"{where}.by_visit[{i}]", units)
            for i, edges in enumerate(raw["by_visit"])
        )
    fanout = parse_dist(raw["fanout"], f"{where}.fanout") if "fanout" in raw else Deterministic(1)
    return UnitSpec(
        name=name,
        kind=kind,
        backend=backend,
        service=service,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        prompt_growth_tokens=int(raw.get("prompt_growth_tokens", 0)),
        fanout=fanout,
        next=next_,
    )


def _parse_app(i: int, raw: Mapping[str, Any], backends: Mapping[str, BackendSpec]) -> AppSpec:
    where = f"apps[{i}]"
    units_raw: Mapping[str, Any] = raw["units"]
    if END in units_raw or "START" in units_raw:
        raise ConfigError(f"{where}.units: 'START' and 'END' are reserved names")
    start = str(raw["start"])
    if start not in units_raw:
        raise ConfigError(f"{where}.start: unknown unit {start!r}")
    units = {
        name: _parse_unit(name, u, f"{where}.units.{name}", units_raw, backends)
        for name, u in units_raw.items()
    }
    deadline = raw.get("deadline")
    return AppSpec(
        name=str(raw["name"]),
        start=start,
        units=units,
        weight=float(raw.get("weight", 1.0)),
        deadline_s=None if raw.get("deadline_s") is None else float(raw["deadline_s"]),
        deadline_fraction=float(deadline["fraction"]) if deadline else 0.0,
        deadline_factors=tuple(float(f) for f in deadline["factors"]) if deadline else (),
        deadline_base_s=float(deadline["base_s"]) if deadline and "base_s" in deadline else None,
        tenant=str(raw.get("tenant", "default")),
    )


def _parse_arrival(raw: Mapping[str, Any]) -> ArrivalSpec:
    process = raw["process"]
    if process == "trace":
        if ("rates" in raw) == ("buckets" in raw):
            raise ConfigError("arrival: a trace needs exactly one of 'rates' or 'buckets'")
        if "buckets" in raw and "rate" not in raw and "load" not in raw:
            raise ConfigError("arrival.rate: relative 'buckets' need a mean 'rate' or a 'load'")
        series = tuple(float(r) for r in raw.get("rates", raw.get("buckets", ())))
        if not any(r > 0 for r in series):
            raise ConfigError("arrival: the trace has no positive rate")
        return ArrivalSpec(
            process="trace",
            rate=float(raw["rate"]) if "rate" in raw else None,
            load=float(raw["load"]) if "load" in raw else None,
            bucket_s=float(raw["bucket_s"]),
            rates=series,
            relative="buckets" in raw,
        )
    return ArrivalSpec(
        process=process,
        rate=float(raw["rate"]) if "rate" in raw else None,
        load=float(raw["load"]) if "load" in raw else None,
    )


def parse_workload(doc: object) -> Workload:
    """Validate a workload document (a dict from JSON) and build a :class:`Workload`."""
    _schema_check(doc)
    d = cast(Mapping[str, Any], doc)
    backends = {name: _parse_backend(name, b) for name, b in d["backends"].items()}
    apps = tuple(_parse_app(i, a, backends) for i, a in enumerate(d["apps"]))
    names = [a.name for a in apps]
    if len(set(names)) != len(names):
        raise ConfigError(f"apps: app names must be unique, got {names}")
    warmup = int(d.get("warmup_apps", 0))
    n_apps = int(d["n_apps"])
    if warmup >= n_apps:
        raise ConfigError(f"warmup_apps: must be below n_apps ({n_apps}), got {warmup}")
    return Workload(
        n_apps=n_apps,
        arrival=_parse_arrival(d["arrival"]),
        backends=backends,
        apps=apps,
        seed=int(d.get("seed", 0)),
        warmup_apps=warmup,
        learning=cast(Learning, d.get("learning", "online")),
        rank_samples=int(d.get("rank_samples", 1000)),
        max_stages=int(d.get("max_stages", DEFAULT_MAX_STAGES)),
        name=str(d.get("name", "")),
        tenant_weights={str(k): float(v) for k, v in d.get("tenants", {}).items()},
        fairness=None if d.get("fairness") is None else bool(d["fairness"]),
    )


def load_workload(path: str | Path) -> Workload:
    """Read and validate a workload JSON file; ConfigError on unreadable or invalid files."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read workload file {str(p)!r}: {exc.strerror}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{p.name}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}"
        ) from exc
    return parse_workload(doc)
