"""Client side of the scheduler protocol: hints, engine priority encoding, scheduler client."""

from hermes_sdk.client.hints import Hints, rank_to_priority

__all__ = ["Hints", "rank_to_priority"]
