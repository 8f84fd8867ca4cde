"""Gateway upstreams: the OpenAI-compatible engines `hermes serve` forwards LLM requests to.

Given in ``hermes.toml`` (``[[upstreams]]`` tables) or on the command line as a repeatable
``--upstream NAME=URL[,engine=vllm][,max_inflight=N][,models=m1|m2][,priority_levels=N]
[,higher_first=true|false][,timeout_s=S][,api_key=K][,api_key_env=VAR][,rpm=N][,tpm=N][,window_s=S]
[,budget_rank=stage|run]``.
Requests are routed by their ``model``:
to the upstream listing it, else (one upstream only, or a model learned from an upstream's
``/v1/models``) to that upstream.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, get_args

import aiohttp

from hermes_sdk.client.encodings import Encoded, engine_fields, engine_priority
from hermes_sdk.client.hints import PRIORITY_LEVELS, Engine
from hermes_sdk.errors import ConfigError
from hermes_sdk.graph.records import check_name

ENGINES: Final[frozenset[str]] = frozenset(get_args(Engine))
BUDGET_RANKS: Final = ("stage", "run")
"""Orders of a budgeted upstream's waiters under a Gittins-family policy (``budget_rank``)."""
ModelCard = dict[str, object]
"""One entry of an OpenAI ``/v1/models`` list (``id``, ``object``, ``owned_by``, ...)."""


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One upstream engine.

    ``url`` is its OpenAI base URL (``http://host:8000/v1``; a URL without a path gets ``/v1``).
    ``engine`` decides the native priority field: ``vllm`` (lower first; the engine must run
    with ``--scheduling-policy priority``, else it refuses the field and the gateway stops
    sending it), ``sglang`` (higher first unless ``higher_first=False``; needs priority
    scheduling enabled too), ``litellm`` (body ``priority``, lower first), ``dynamo``
    (``nvext.agent_hints.priority``, higher first), ``gie`` (``x-gateway-inference-objective``
    band and the tenant as ``x-gateway-inference-fairness-id``) or ``openai`` (none is sent).
    ``max_inflight`` requests are forwarded at once; the rest wait in the admission queue.
    ``models`` lists the model names routed here (empty: learned from ``/v1/models``).
    """

    name: str
    url: str
    engine: str = "openai"
    max_inflight: int = 8
    priority_levels: int = PRIORITY_LEVELS
    higher_first: bool | None = None
    models: tuple[str, ...] = ()
    timeout_s: float = 600.0
    """Longest a request waits for a slot (then 429), and longest the upstream may stay silent
    mid-response (then 502), in seconds; a long stream that keeps sending is never cut."""
    api_key: str | None = field(default=None, repr=False)
    """Bearer token sent to the upstream (the client's own key is never forwarded)."""
    api_key_env: str | None = None
    """Name of the environment variable holding the upstream's key (read when sending, so the
    key is in no config file, log, metric or dashboard); ``api_key`` wins when both are set."""
    rpm: float | None = None
    """The provider's requests-per-minute limit (None: unknown until its headers say)."""
    tpm: float | None = None
    """The provider's tokens-per-minute limit (input + output tokens; None: unknown)."""
    window_s: float = 60.0
    """Seconds over which the provider enforces its per-minute limits (a burst of at most
    ``limit * window_s / 60``); OpenAI may enforce a minute's limit over shorter periods."""
    budget_rank: str = "stage"
    """How a Gittins-family policy orders the budget's waiters: ``stage`` (the c-mu rule on
    the tokens the run has waiting: for runs that leave the queue between stages, as agents
    with tool steps do) or ``run`` (Gittins on the run's whole remaining tokens: for runs whose
    requests queue back to back). docs/theory.md section 10."""

    def __post_init__(self) -> None:
        try:
            check_name(self.name, "upstream name")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"upstream {self.name!r}: url must be http(s)://..., got {self.url!r}"
            )
        if self.engine not in ENGINES:
            raise ConfigError(
                f"upstream {self.name!r}: engine must be one of {sorted(ENGINES)}, "
                f"got {self.engine!r}"
            )
        for what, value in (
            ("max_inflight", self.max_inflight),
            ("priority_levels", self.priority_levels),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"upstream {self.name!r}: {what} must be an integer >= 1")
        if self.api_key is not None and not isinstance(self.api_key, str):
            raise ConfigError(f"upstream {self.name!r}: api_key must be a string")
        if self.api_key_env is not None and (
            not isinstance(self.api_key_env, str) or not self.api_key_env
        ):
            raise ConfigError(f"upstream {self.name!r}: api_key_env must be a variable name")
        for what, limit in (("rpm", self.rpm), ("tpm", self.tpm), ("window_s", self.window_s)):
            if limit is not None and (
                isinstance(limit, bool)
                or not isinstance(limit, (int, float))
                or not math.isfinite(limit)
                or limit <= 0
            ):
                raise ConfigError(f"upstream {self.name!r}: {what} must be a number > 0")
        if self.budget_rank not in BUDGET_RANKS:
            raise ConfigError(
                f"upstream {self.name!r}: budget_rank must be one of {list(BUDGET_RANKS)}, "
                f"got {self.budget_rank!r}"
            )
        if self.higher_first is not None and not isinstance(self.higher_first, bool):
            raise ConfigError(f"upstream {self.name!r}: higher_first must be a boolean")
        if not isinstance(self.models, tuple) or not all(
            isinstance(m, str) and m for m in self.models
        ):
            raise ConfigError(f"upstream {self.name!r}: models must be non-empty strings")
        timeout = self.timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise ConfigError(f"upstream {self.name!r}: timeout_s must be a number")
        if not math.isfinite(timeout) or timeout <= 0:
            raise ConfigError(f"upstream {self.name!r}: timeout_s must be > 0")

    @property
    def base_url(self) -> str:
        """The URL that ``/chat/completions`` etc. are appended to (ends in ``/v1`` by default)."""
        url = self.url.rstrip("/")
        scheme_end = url.index("//") + 2
        return url if "/" in url[scheme_end:] else url + "/v1"

    @property
    def budgeted(self) -> bool:
        """True for a hosted API with a rate budget (``rpm`` or ``tpm`` configured)."""
        return self.rpm is not None or self.tpm is not None

    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` for this upstream's own key (empty without one)."""
        key = self.api_key
        if not key and self.api_key_env:
            key = os.environ.get(self.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def priority(self, rank_s: float | None) -> int | None:
        """The engine-native integer priority for a server-side rank (None: ``openai``, ``gie``,
        whose priority is a named objective)."""
        if self.engine in ("openai", "gie"):
            return None
        return engine_priority(
            rank_s, self.engine, levels=self.priority_levels, higher_first=self.higher_first
        )

    def fields(
        self, rank_s: float | None, *, tenant: str | None, deadline_s: float | None
    ) -> Encoded:
        """Body fields and headers carrying a server-side rank in this upstream's stack."""
        return engine_fields(
            self.engine,
            rank_s,
            levels=self.priority_levels,
            higher_first=self.higher_first,
            tenant=tenant,
            deadline_s=deadline_s,
        )


_BOOLS: Final[Mapping[str, bool]] = {
    "true": True,
    "1": True,
    "yes": True,
    "false": False,
    "0": False,
    "no": False,
}


def parse_upstream_flag(flag: str) -> UpstreamConfig:
    """Parse ``NAME=URL[,engine=E][,max_inflight=N][,models=m1|m2][,priority_levels=N]
    [,higher_first=BOOL][,timeout_s=S][,api_key=K][,api_key_env=VAR][,rpm=N][,tpm=N]
    [,window_s=S][,budget_rank=stage|run]`` (the ``--upstream`` command-line form)."""
    name, sep, rest = flag.partition("=")
    if not sep or not name or not rest:
        raise ConfigError(f"--upstream wants NAME=URL[,key=value...], got {flag!r}")
    url, *options = rest.split(",")
    fields: dict[str, object] = {"name": name.strip(), "url": url.strip()}
    for option in options:
        key, sep, value = option.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise ConfigError(f"--upstream {name}: option {option!r} is not key=value")
        if key in ("engine", "budget_rank"):
            fields[key] = value
        elif key in ("max_inflight", "priority_levels"):
            try:
                fields[key] = int(value)
            except ValueError:
                raise ConfigError(f"--upstream {name}: {key} must be an integer") from None
        elif key in ("timeout_s", "rpm", "tpm", "window_s"):
            try:
                fields[key] = float(value)
            except ValueError:
                raise ConfigError(f"--upstream {name}: {key} must be a number") from None
        elif key == "higher_first":
            if value.lower() not in _BOOLS:
                raise ConfigError(f"--upstream {name}: higher_first must be true or false")
            fields[key] = _BOOLS[value.lower()]
        elif key in ("api_key", "api_key_env"):
            fields[key] = value or None
        elif key == "models":
            fields[key] = tuple(m.strip() for m in value.split("|") if m.strip())
        else:
            raise ConfigError(f"--upstream {name}: unknown option {key!r}")
    return UpstreamConfig(**fields)  # type: ignore[arg-type]


class UpstreamRouter:
    """Maps a request's ``model`` to its upstream.

    Explicit ``models`` lists win; models an upstream reported at ``/v1/models`` come next; with a
    single upstream every model goes to it (the upstream answers for models it does not serve).
    """

    def __init__(self, upstreams: Iterable[UpstreamConfig]) -> None:
        self.upstreams: tuple[UpstreamConfig, ...] = tuple(upstreams)
        names = [u.name for u in self.upstreams]
        if len(set(names)) != len(names):
            raise ConfigError(f"upstream names must be unique, got {names}")
        self._explicit: dict[str, UpstreamConfig] = {}
        for upstream in self.upstreams:
            for model in upstream.models:
                if model in self._explicit:
                    raise ConfigError(f"model {model!r} is listed by two upstreams")
                self._explicit[model] = upstream
        self._learned: dict[str, UpstreamConfig] = {}

    def learn(self, upstream: UpstreamConfig, models: Iterable[str]) -> None:
        """Record models an upstream serves (from its ``/v1/models``); explicit lists win."""
        for model in models:
            self._learned.setdefault(model, upstream)

    def route(self, model: str) -> UpstreamConfig | None:
        """The upstream serving ``model``, or None if no upstream does."""
        found = self._explicit.get(model) or self._learned.get(model)
        if found is None and len(self.upstreams) == 1:
            return self.upstreams[0]
        return found

    def models(self) -> list[tuple[str, UpstreamConfig]]:
        """Every known (model, upstream) pair, explicit ones first, sorted by model."""
        known = {**self._learned, **self._explicit}
        return sorted(known.items(), key=lambda item: item[0])

    def model_cards(self, found: Sequence[Sequence[ModelCard]]) -> list[ModelCard]:
        """The gateway's ``/v1/models`` list from each upstream's cards (in upstream order):
        an upstream with a ``models`` list shows only those (a card made up if it has none)."""
        cards: dict[str, ModelCard] = {}
        for upstream, upstream_cards in zip(self.upstreams, found, strict=True):
            for card in upstream_cards:
                if not upstream.models or card.get("id") in upstream.models:
                    cards.setdefault(str(card.get("id")), card)
            for model in upstream.models:
                card = {"id": model, "object": "model", "created": 0, "owned_by": upstream.name}
                cards.setdefault(model, card)
        return [cards[k] for k in sorted(cards)]


async def fetch_model_cards(
    session: aiohttp.ClientSession, upstream: UpstreamConfig, *, timeout_s: float = 2.0
) -> list[ModelCard]:
    """``upstream``'s ``GET /models`` cards; [] if it is unreachable or answers garbage."""
    try:
        async with session.get(
            upstream.base_url + "/models",
            headers=upstream.auth_headers(),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            body = await resp.json(content_type=None) if resp.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return []
    data = body.get("data") if isinstance(body, dict) else None
    return [c for c in data if isinstance(c, dict)] if isinstance(data, list) else []
