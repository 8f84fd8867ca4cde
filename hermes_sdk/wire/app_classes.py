"""Answers of the per-app-class endpoints (``GET /v1/ui/app_classes``,
``GET /v1/admin/app_classes``): each app's recently ended runs and their completion times.

A run's completion time is the seconds from its start (``run_start``) to its end (``run_end``) on
the server's clock, minus the time it spent paused. Failed runs (``run_end`` with ``failed``) are
counted apart and left out of the time statistics.
"""

from __future__ import annotations

from typing import Annotated

import msgspec


class AppClassStats(msgspec.Struct, frozen=True):
    """One app's runs that ended inside the window: how many, and their completion times."""

    app: str
    runs: Annotated[
        int, msgspec.Meta(description="runs completed (not failed) in the window", ge=0)
    ]
    failed: Annotated[
        int, msgspec.Meta(description="runs ended failed in the window (not in the times)", ge=0)
    ]
    mean_s: (
        Annotated[float, msgspec.Meta(description="mean completion time, seconds", ge=0.0)] | None
    )
    p95_s: (
        Annotated[
            float,
            msgspec.Meta(description="95th percentile (linear interpolation), seconds", ge=0.0),
        ]
        | None
    )
    max_s: (
        Annotated[float, msgspec.Meta(description="longest completion time, seconds", ge=0.0)]
        | None
    )


class AppClasses(msgspec.Struct, frozen=True):
    """Per-app completion statistics over a recent window: each app's last ``runs_kept`` ended
    runs per tenant (in this replica's memory since it started), narrowed to those that ended
    in the last ``window_s`` seconds when the query gives ``window_s``. The times are null when
    ``runs`` is 0."""

    policy: Annotated[str, msgspec.Meta(description="the scheduling policy in force")]
    now_s: Annotated[
        float, msgspec.Meta(description="the server's clock at the answer, unix seconds")
    ]
    window_s: (
        Annotated[float, msgspec.Meta(description="the query's window, seconds", gt=0.0)] | None
    )
    runs_kept: Annotated[
        int, msgspec.Meta(description="ended runs kept per app and tenant (oldest dropped)", ge=0)
    ]
    classes: Annotated[
        list[AppClassStats],
        msgspec.Meta(
            description="one entry per app, by name (admin: every tenant's runs of the app pooled)"
        ),
    ]
    tenant: (
        Annotated[str, msgspec.Meta(description="the key's tenant (null in the admin answer)")]
        | None
    ) = None
    tenants: (
        Annotated[
            dict[str, list[AppClassStats]],
            msgspec.Meta(description="admin answer: each tenant's own entries"),
        ]
        | None
    ) = None
