"""Client side of the scheduler protocol: hints, engine priority encoding, scheduler client."""

from typing import TYPE_CHECKING

from hermes_sdk.client.hints import Hints, rank_to_priority
from hermes_sdk.client.openai_kwargs import OpenAIKwargs, openai_kwargs

if TYPE_CHECKING:
    from hermes_sdk.client.admission import admit
    from hermes_sdk.client.events import HttpEventSink
    from hermes_sdk.client.scheduler import SchedulerClient, SyncSchedulerClient

__all__ = [
    "Hints",
    "HttpEventSink",
    "OpenAIKwargs",
    "SchedulerClient",
    "SyncSchedulerClient",
    "admit",
    "openai_kwargs",
    "rank_to_priority",
]

_LAZY = {
    "SchedulerClient": "hermes_sdk.client.scheduler",
    "SyncSchedulerClient": "hermes_sdk.client.scheduler",
    "HttpEventSink": "hermes_sdk.client.events",
    "admit": "hermes_sdk.client.admission",
}


def __getattr__(name: str) -> object:
    # The scheduler client pulls in aiohttp: import it only when asked for.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hermes_sdk.client' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
