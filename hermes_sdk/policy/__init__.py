"""Scheduling policies: Gittins, LSTF and the baselines they are measured against."""

from hermes_sdk.policy.base import AppState, DemandModel, Policy

__all__ = ["AppState", "DemandModel", "Policy"]
