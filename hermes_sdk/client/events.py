"""HTTP event sink: the instrumentation recorder's transport to ``POST /v1/events``.

Synchronous on purpose: the recorder calls :meth:`HttpEventSink.send` from its own flusher
thread, so a plain keep-alive ``http.client`` connection is the cheapest correct transport.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse

from hermes_sdk.errors import ConfigError, InvalidRequest, SchedulerUnavailable
from hermes_sdk.wire.codec import encode, event_batch

DEFAULT_TIMEOUT_S = 2.0
GATEWAY_HEADER = "X-Hermes-Gateway"
"""Response header of the Hermes gateway on every relayed call: the server at the same address
(the request URL up to ``/v1/``) takes this process's events (see gateway discovery)."""


class HttpEventSink:
    """Sends event batches to a scheduler; raises SchedulerUnavailable when it cannot.

    A 4xx answer (the server refused the batch as malformed) raises InvalidRequest; either way
    the recorder counts the batch as lost and carries on.
    """

    def __init__(
        self, url: str, api_key: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"scheduler url must be http(s)://host[:port], got {url!r}")
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + "/v1/events"
        self._timeout_s = timeout_s
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self.sent = 0
        """Events the server accepted."""

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout_s)
        return self._conn

    def send(self, events: list[dict[str, object]]) -> None:
        """POST ``events`` as one batch; returns once the server stored them."""
        if not events:
            return
        try:
            body = encode(event_batch(events))
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"events are not JSON-serialisable: {exc}") from None
        with self._lock:
            status, payload = self._post(body, retry=True)
        if status >= 500:
            raise SchedulerUnavailable(f"POST {self._path}: HTTP {status}")
        try:
            data = json.loads(payload)
        except ValueError:
            raise SchedulerUnavailable(f"POST {self._path}: garbage answer") from None
        if status >= 400:
            err = data.get("error", {}) if isinstance(data, dict) else {}
            raise InvalidRequest(f"events refused: HTTP {status} {err}")
        if not isinstance(data, dict) or not isinstance(data.get("accepted"), int):
            raise SchedulerUnavailable(f"POST {self._path}: unexpected answer {payload[:200]!r}")
        self.sent += data["accepted"]

    def _post(self, body: bytes, *, retry: bool) -> tuple[int, bytes]:
        try:
            conn = self._connection()
            conn.request("POST", self._path, body=body, headers=self._headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            # A keep-alive connection the server closed fails once; one fresh retry.
            if retry and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError)):
                return self._post(body, retry=False)
            raise SchedulerUnavailable(f"POST {self.url}{self._path}: {exc!r}") from None

    def close(self) -> None:
        """Drop the connection (a later send reconnects)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
