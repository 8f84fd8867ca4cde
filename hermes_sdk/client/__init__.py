"""Client side of the scheduler protocol: hints, engine priority encoding, scheduler client."""

from hermes_sdk.client.hints import Hints, rank_to_priority
from hermes_sdk.client.openai_kwargs import OpenAIKwargs, openai_kwargs

__all__ = ["Hints", "OpenAIKwargs", "openai_kwargs", "rank_to_priority"]
