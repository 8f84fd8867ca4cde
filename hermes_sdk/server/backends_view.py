"""What a `hermes serve` deployment schedules, in words and in JSON: gateway upstreams and
admission backends.

Both are admission queues of the same scheduler, but users meet them differently: an **upstream**
is an OpenAI-compatible engine the gateway forwards LLM requests to (apps set their ``base_url``
to the server's ``/v1``), an **admission backend** is any other resource whose slots clients take
explicitly (``POST /v1/backends/{name}/acquire``, ``admit=True`` decorators). The start-up lines
of ``hermes serve`` and ``GET /v1/backends`` use this module, so they say the same thing.
"""

from __future__ import annotations

from typing import Literal

from hermes_sdk.server.config import ServerConfig
from hermes_sdk.server.upstreams import UpstreamConfig

BackendKind = Literal["upstream", "admission"]
"""``upstream``: a gateway upstream; ``admission``: a backend clients acquire slots of."""


def _upstreams(config: ServerConfig) -> dict[str, UpstreamConfig]:
    return {u.name: u for u in config.upstreams}


def backend_fields(config: ServerConfig, name: str) -> dict[str, object]:
    """The ``/v1/backends`` fields saying what backend ``name`` is: ``kind`` and, for an
    upstream, its ``url`` (OpenAI base URL), ``engine`` and ``models`` (``null``: learned from
    the upstream's ``/v1/models``)."""
    upstream = _upstreams(config).get(name)
    if upstream is None:
        return {"kind": "admission"}
    return {
        "kind": "upstream",
        "url": upstream.base_url,
        "engine": upstream.engine,
        "models": list(upstream.models) or None,
    }


def _upstream_words(u: UpstreamConfig) -> str:
    models = f"models {', '.join(u.models)}" if u.models else "models from its /v1/models"
    return f"{u.name} ({u.engine} at {u.base_url}, max_inflight {u.max_inflight}, {models})"


def startup_lines(config: ServerConfig, base_url: str) -> list[str]:
    """The lines after ``hermes serve``'s "listening on" line: the gateway's upstreams and the
    admission backends, each named with what it is (``base_url``: where the server listens)."""
    upstreams = config.upstreams
    if upstreams:
        gateway = (
            f"gateway: apps use base_url {base_url}/v1; {len(upstreams)} "
            f"upstream{'s' if len(upstreams) != 1 else ''}: "
            + "; ".join(_upstream_words(u) for u in upstreams)
        )
    else:
        gateway = "gateway: no upstreams (add --upstream NAME=URL,engine=vllm to forward LLM calls)"
    names = _upstreams(config)
    own = [(n, b) for n, b in config.backends.items() if n not in names]
    if own:
        admission = f"admission backends ({len(own)}): " + ", ".join(
            f"{n} (max_inflight {b.max_inflight})" for n, b in own
        )
    else:
        admission = "admission backends: none (add --backend NAME=MAX_INFLIGHT)"
    return [f"  {gateway}", f"  {admission}"]
