"""Baseline policies the Gittins and LSTF policies are measured against.

Each ranks an :class:`AppState` in seconds, lower first. ``dynamic`` says whether the rank changes
while the app is being served (schedulers re-rank dynamic policies after progress).
"""

from __future__ import annotations

import numpy as np

from hermes_sdk.policy.base import AppState, DemandModel


class FCFSPolicy:
    """Request-level first come, first served (the vLLM default): rank = the waiting request's
    arrival time, or the app's arrival when no request time is known."""

    name = "fcfs"
    dynamic = False

    def rank(self, app: AppState, now: float) -> float:
        """Arrival time of the request now waiting (seconds on the scheduler's clock)."""
        return app.request_arrival_s if app.request_arrival_s is not None else app.arrival_s


class AppFCFSPolicy:
    """App-level first come, first served (Parrot-style): rank = the app run's arrival time."""

    name = "app_fcfs"
    dynamic = False

    def rank(self, app: AppState, now: float) -> float:
        """Arrival time of the app run (seconds)."""
        return app.arrival_s


class LASPolicy:
    """Least attained service of the whole app (Autellix PLAS-style): rank = ``attained_s``.

    Size-blind and optimal among blind policies for decreasing-hazard sizes; on a preemptive
    server it approaches foreground-background processor sharing.
    """

    name = "las"
    dynamic = True

    def rank(self, app: AppState, now: float) -> float:
        """Service the app has received so far, seconds."""
        return app.attained_s


class SJFMeanPolicy:
    """Shortest expected remaining demand first: rank = mean of the model's samples (seconds)."""

    name = "sjf_mean"
    dynamic = True

    def __init__(self, model: DemandModel, n: int = 1000) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.model = model
        self.n = n

    def rank(self, app: AppState, now: float) -> float:
        """Mean predicted remaining service, seconds."""
        samples = self.model.remaining_demand(app.app, app.state, tenant=app.tenant, n=self.n)
        return float(np.mean(samples)) if len(samples) else 0.0


class SRPTOraclePolicy:
    """Clairvoyant shortest remaining processing time: rank = true remaining work (seconds).

    Only the simulator knows ``true_remaining_s``; it is the lower bound every size-blind policy
    is compared to. Apps without a true size rank last (``inf``).
    """

    name = "srpt_oracle"
    dynamic = True

    def rank(self, app: AppState, now: float) -> float:
        """True remaining service, seconds."""
        return app.true_remaining_s if app.true_remaining_s is not None else float("inf")


class ProcessorSharingPolicy:
    """Marker for processor sharing: every waiting request is served at once, at equal rates.

    PS is a service discipline, not an order; the simulator recognises this policy and shares
    each backend's capacity. As a rank (for a scheduler that can only order) it degrades to
    request FCFS.
    """

    name = "ps"
    dynamic = False
    processor_sharing = True

    def rank(self, app: AppState, now: float) -> float:
        """Request arrival time (used only where sharing is impossible)."""
        return app.request_arrival_s if app.request_arrival_s is not None else app.arrival_s
