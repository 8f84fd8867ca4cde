"""Scheduler client: admission slots, events, hints and graphs over the control API.

``SchedulerClient`` is async (aiohttp); ``SyncSchedulerClient`` mirrors it name for name on a
background event-loop thread. Both fail open: if the scheduler is down, slow to connect
(default 50 ms), or answers garbage, ``slot()`` yields ``None`` at once so the unit runs
anyway; a circuit breaker then skips calls for a while and one warning is logged per outage.

The implementation is split by responsibility: :mod:`~hermes_sdk.client.control_api` (the
``Grant`` value, default timeouts, answer parsing), :mod:`~hermes_sdk.client.async_scheduler`
and :mod:`~hermes_sdk.client.sync_scheduler`; this module re-exports their public names.
"""

from hermes_sdk.client.async_scheduler import SchedulerClient
from hermes_sdk.client.control_api import Grant
from hermes_sdk.client.sync_scheduler import SyncSchedulerClient

__all__ = ["Grant", "SchedulerClient", "SyncSchedulerClient"]
