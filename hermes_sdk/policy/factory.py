"""Build a policy by name: the one place the CLI, the server and the simulator resolve names."""

from __future__ import annotations

from typing import Final

from hermes_sdk.errors import ConfigError
from hermes_sdk.policy.aging import AgingPolicy
from hermes_sdk.policy.base import DemandModel, Policy
from hermes_sdk.policy.baselines import (
    AppFCFSPolicy,
    FCFSPolicy,
    LASPolicy,
    ProcessorSharingPolicy,
    SJFMeanPolicy,
    SRPTOraclePolicy,
)
from hermes_sdk.policy.deadline import EDFPolicy, LSTFPolicy
from hermes_sdk.policy.deadline_gittins import DeadlineGittinsPolicy
from hermes_sdk.policy.deadline_oracle import DeadlineOraclePolicy
from hermes_sdk.policy.gittins import GittinsBlindPolicy, GittinsPolicy

POLICY_NAMES: Final = (
    "gittins",
    "gittins_plain",
    "gittins_conditional",
    "gittins_queue",
    "gittins_blind",
    "lstf",
    "fcfs",
    "app_fcfs",
    "las",
    "sjf_mean",
    "edf",
    "ps",
    "srpt_oracle",
    "deadline_oracle",
    "gittins_aging",
)
"""Every name :func:`make_policy` accepts."""
SIMULATOR_ONLY_POLICIES: Final = frozenset({"srpt_oracle", "deadline_oracle", "gittins_queue"})
"""Names a live scheduler cannot honour: ``srpt_oracle`` and ``deadline_oracle`` read true sizes
only the simulator knows (every live run would rank last, i.e. FCFS), and ``gittins_queue``'s
queue-wide pass is applied by the simulator's engines, not by the server's admission queue (it
would rank exactly like ``gittins``). ``hermes serve`` refuses them rather than silently serving
another order."""
MODEL_POLICIES: Final = frozenset(
    {
        "gittins",
        "gittins_plain",
        "gittins_conditional",
        "gittins_queue",
        "gittins_blind",
        "lstf",
        "sjf_mean",
        "gittins_aging",
    }
)
"""Policies that need a :class:`DemandModel`."""


def make_policy(name: str, model: DemandModel | None = None, *, n: int = 1000) -> Policy:
    """The policy called ``name`` (see :data:`POLICY_NAMES`); predictive ones use ``model``.

    ``n`` is the number of remaining-demand samples a predictive policy asks for per rank.
    ``gittins`` ranks runs with a deadline by the deadline Gittins index
    (:mod:`hermes_sdk.policy.deadline_gittins`); ``gittins_plain`` ignores deadlines;
    ``gittins_conditional`` is deadline Gittins with the conditional index (the ablation);
    ``gittins_queue`` adds the queue-wide feasibility pass where a scheduler applies it.
    Raises :class:`ConfigError` for an unknown name or a predictive policy without a model.
    """
    if name not in POLICY_NAMES:
        raise ConfigError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")
    if name in MODEL_POLICIES and model is None:
        raise ConfigError(f"policy {name!r} needs a demand model (e.g. a GraphRegistry)")
    if name == "gittins":
        assert model is not None
        return DeadlineGittinsPolicy(model, n=n)
    if name == "gittins_conditional":
        assert model is not None
        conditional = DeadlineGittinsPolicy(model, n=n, index="conditional")
        conditional.name = "gittins_conditional"
        return conditional
    if name == "gittins_queue":  # deadline Gittins + the queue-wide feasibility pass
        assert model is not None
        queue = DeadlineGittinsPolicy(model, n=n, queue_pass=True)
        queue.name = "gittins_queue"
        return queue
    if name == "gittins_plain":
        assert model is not None
        plain = GittinsPolicy(model, n=n)
        plain.name = "gittins_plain"
        return plain
    if name == "gittins_aging":  # Gittins with the starvation guard (hermes_sdk.policy.aging)
        assert model is not None
        return AgingPolicy(GittinsPolicy(model, n=n))
    if name == "gittins_blind":
        assert model is not None
        return GittinsBlindPolicy(model, n=n)
    if name == "lstf":
        assert model is not None
        return LSTFPolicy(model, n=n)
    if name == "sjf_mean":
        assert model is not None
        return SJFMeanPolicy(model, n=n)
    simple: dict[str, type[Policy]] = {
        "fcfs": FCFSPolicy,
        "app_fcfs": AppFCFSPolicy,
        "las": LASPolicy,
        "edf": EDFPolicy,
        "ps": ProcessorSharingPolicy,
        "srpt_oracle": SRPTOraclePolicy,
        "deadline_oracle": DeadlineOraclePolicy,
    }
    return simple[name]()
