"""Gateway discovery: model calls that go through a Hermes gateway teach the gateway's server.

The rule (docs/api.md, "Where runs are learned"): when this process has no scheduler configured
(no ``scheduler_url``, no ``HERMES_SCHEDULER_URL``, no ``sink``), the first response carrying
``X-Hermes-Gateway`` makes the server behind that gateway (the request URL up to its ``/v1/``)
receive this process's run events too, with the request's own bearer key. Embedded learning goes
on as before. Runs already under way are announced (``run_start``) when one of their calls next
passes the gateway, and every run's ``run_end`` carries its whole path, so the server learns
every run, including the one that was running when the gateway was found.

Events go only to the address the app already sends its prompts to, with the key it already
sends there. ``HERMES_GATEWAY_DISCOVERY=0`` turns discovery off; an explicit configuration always
wins. Hooks that see the gateway's responses call :func:`note_gateway_response`
(``hermes_langgraph.chat_openai_kwargs()``'s response hooks and ``hermes.wrap``'s do).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from hermes_sdk.client.events import GATEWAY_HEADER, HttpEventSink
from hermes_sdk.instrument import runtime as _rt
from hermes_sdk.instrument.handles import CURRENT_RUN, RunHandle
from hermes_sdk.instrument.recorder import EventSink

log = logging.getLogger("hermes_sdk.instrument")

DISCOVERY_ENV: Final = "HERMES_GATEWAY_DISCOVERY"
"""``0``/``false``/``no``/``off`` turns gateway discovery off."""
MAX_ANNOUNCED: Final = 10_000
"""Run ids remembered as announced; older ones are forgotten (a run is announced once)."""


class _Headers(Protocol):
    def get(self, key: str, default: None = None) -> str | None: ...


@dataclass(frozen=True, slots=True)
class DiscoveredGateway:
    """The server a runtime's events go to since ``discovered_at`` (unix seconds)."""

    server_url: str
    discovered_at: float
    runtime: _rt.Runtime


_lock = threading.Lock()
_found: DiscoveredGateway | None = None
_announced: dict[str, None] = {}


def discovery_enabled() -> bool:
    """False when ``HERMES_GATEWAY_DISCOVERY`` is ``0``/``false``/``no``/``off``."""
    value = os.environ.get(DISCOVERY_ENV, "").strip().lower()
    return value not in ("0", "false", "no", "off")


def server_url_of(request_url: str) -> str | None:
    """The server behind a gateway URL: ``http://h:8700/v1/chat/completions`` ->
    ``http://h:8700`` (a path prefix before ``/v1/`` is kept); ``None`` if it has no ``/v1/``."""
    parts = urllib.parse.urlsplit(request_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    cut = parts.path.rfind("/v1/")
    if cut < 0:
        return None
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path[:cut], "", ""))


def bearer_key(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def note_gateway_response(
    request_url: str,
    response_headers: _Headers,
    authorization: str | None = None,
    run: RunHandle | None = None,
) -> bool:
    """Apply the discovery rule to one model call's response; ``True`` if its server now takes
    this process's events (found now or before).

    ``request_url`` is the URL the call was sent to, ``authorization`` the request's
    ``Authorization`` header, ``run`` the run the call belongs to (default: the current run),
    announced to the server if it started before the gateway was found. Never raises.
    """
    try:
        if response_headers.get(GATEWAY_HEADER) is None:
            return False
        found = _discover(request_url, authorization)
        if found is None:
            return False
        if run is None:
            run = CURRENT_RUN.get()
        if run is not None:
            _announce(found, run)
        return True
    except Exception as exc:
        log.debug("hermes: gateway discovery failed: %r", exc)
        return False


def _discover(request_url: str, authorization: str | None) -> DiscoveredGateway | None:
    global _found
    runtime = _rt.RUNTIME
    found = _found
    if found is not None and found.runtime is runtime:
        return found
    if not runtime.enabled or runtime.recorder is not None or not discovery_enabled():
        return None  # off, or configured explicitly: the configuration wins
    url = server_url_of(request_url)
    if url is None:
        return None
    with _lock:
        found = _found
        if found is not None and found.runtime is runtime:
            return found
        if not runtime.send_events_to(_sink_factory(url, bearer_key(authorization))):
            return None
        _found = found = DiscoveredGateway(url, time.time(), runtime)
        _announced.clear()
    log.info("hermes: model calls go through the Hermes gateway of %s; run events go there", url)
    return found


def _sink_factory(url: str, api_key: str | None) -> Callable[[], EventSink]:
    def http_sink() -> EventSink:
        sink: EventSink = HttpEventSink(url, api_key=api_key)
        return sink

    return http_sink


def _announce(found: DiscoveredGateway, run: RunHandle) -> None:
    """Send ``run_start`` for a run that began before the gateway was found (once per run)."""
    if not run.active or run.ended or run.started_at >= found.discovered_at:
        return  # a run started since then announced itself
    recorder = found.runtime.recorder
    with _lock:
        if recorder is None or run.run_id in _announced:
            return
        if len(_announced) >= MAX_ANNOUNCED:
            _announced.pop(next(iter(_announced)))
        _announced[run.run_id] = None
    event: dict[str, object] = {
        "type": "run_start",
        "run_id": run.run_id,
        "app": run.app,
        "ts": run.started_at,
    }
    if run.deadline_s is not None:
        event["deadline_s"] = run.deadline_s
    recorder.emit(event)
