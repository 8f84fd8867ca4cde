"""Scheduling policies: Gittins, LSTF and the baselines they are measured against."""

from hermes_sdk.policy.base import AppState, DemandModel, Policy
from hermes_sdk.policy.baselines import (
    AppFCFSPolicy,
    FCFSPolicy,
    LASPolicy,
    ProcessorSharingPolicy,
    SJFMeanPolicy,
    SRPTOraclePolicy,
)
from hermes_sdk.policy.deadline import NO_DEADLINE_RANK_S, EDFPolicy, LSTFPolicy
from hermes_sdk.policy.factory import MODEL_POLICIES, POLICY_NAMES, make_policy
from hermes_sdk.policy.gittins import (
    GittinsBlindPolicy,
    GittinsPolicy,
    gittins_index,
    gittins_index_and_quantum,
)

__all__ = [
    "MODEL_POLICIES",
    "NO_DEADLINE_RANK_S",
    "POLICY_NAMES",
    "AppFCFSPolicy",
    "AppState",
    "DemandModel",
    "EDFPolicy",
    "FCFSPolicy",
    "GittinsBlindPolicy",
    "GittinsPolicy",
    "LASPolicy",
    "LSTFPolicy",
    "Policy",
    "ProcessorSharingPolicy",
    "SJFMeanPolicy",
    "SRPTOraclePolicy",
    "gittins_index",
    "gittins_index_and_quantum",
    "make_policy",
]
