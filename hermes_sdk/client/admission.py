"""``admit(backend)``: the admission hook behind the unit decorators' ``admit=True``.

Configure once with :func:`configure_admission` (``hermes.configure(scheduler_url=...)`` does
it); then ``with admit("gpu", run_id=...)`` or ``async with admit(...)`` holds a slot of the
backend around a unit. Unconfigured, or with the scheduler down, it admits at once.
"""

from __future__ import annotations

import threading
from types import TracebackType

from hermes_sdk.client.control_api import DEFAULT_CONNECT_TIMEOUT_S
from hermes_sdk.client.scheduler import Grant, SyncSchedulerClient

_lock = threading.Lock()
_client: SyncSchedulerClient | None = None


def configure_admission(
    url: str | None,
    api_key: str | None = None,
    *,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> None:
    """Point ``admit`` at a scheduler (``None`` turns admission off); a connection that takes
    longer than ``connect_timeout_s`` admits at once (fail open)."""
    global _client
    with _lock:
        client = (
            SyncSchedulerClient(url, api_key, connect_timeout_s=connect_timeout_s) if url else None
        )
        old, _client = _client, client
    if old is not None:
        old.close()


def admission_client() -> SyncSchedulerClient | None:
    """The configured client, if any."""
    return _client


class Admission:
    """Context manager (sync and async) holding one slot; ``grant`` is None when failing open."""

    __slots__ = ("app", "backend", "deadline_s", "grant", "run_id")

    def __init__(
        self,
        backend: str,
        run_id: str | None = None,
        app: str | None = None,
        deadline_s: float | None = None,
    ) -> None:
        self.backend = backend
        self.run_id = run_id
        self.app = app
        self.deadline_s = deadline_s
        self.grant: Grant | None = None

    def __enter__(self) -> Admission:
        client = _client
        if client is not None:
            self.grant = client.acquire(
                self.backend, run_id=self.run_id, app=self.app, deadline_s=self.deadline_s
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, grant, self.grant = _client, self.grant, None
        if client is not None and grant is not None:
            client.release(grant)

    async def __aenter__(self) -> Admission:
        client = _client
        if client is not None:
            self.grant = await client.acquire_async(
                self.backend, run_id=self.run_id, app=self.app, deadline_s=self.deadline_s
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, grant, self.grant = _client, self.grant, None
        if client is not None and grant is not None:
            await client.release_async(grant)


def admit(
    backend: str,
    *,
    run_id: str | None = None,
    app: str | None = None,
    deadline_s: float | None = None,
) -> Admission:
    """A slot of ``backend`` for the body of a ``with`` / ``async with`` (fail-open)."""
    return Admission(backend, run_id, app, deadline_s)
