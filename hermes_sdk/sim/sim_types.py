"""The simulator's state records: a run (:class:`SimApp`), a queued or running call
(:class:`SimRequest`) and a backend's queues and slots (:class:`SimBackend`), with the constants
that the event loop (:mod:`hermes_sdk.sim.des`) and the dispatcher (:mod:`hermes_sdk.sim.dispatch`)
share. Mutable, and owned by one :class:`~hermes_sdk.sim.des.Simulation`.
"""

from __future__ import annotations

import math
from typing import Final

from hermes_sdk.graph.records import Stage
from hermes_sdk.sim.programs import RealStage
from hermes_sdk.sim.workload import BackendSpec

EPS_S: Final = 1e-9
"""Work below this many seconds counts as done (float round-off)."""
RERANK_REL: Final = 0.02
"""Re-rank granularity: a running app is re-ranked after at least this share of its stage's
service so far (and ``min_quantum_s``); LAS switches when the running app's attained service
exceeds a waiting one's by this share. Continuous-time policies (LAS, Gittins on decreasing
hazards) would otherwise switch infinitely often."""
ARRIVAL, WAKE, TICK = 0, 1, 2
WAITING, RUNNING, DONE = 0, 1, 2
COLD, WARMING, WARM = 0, 1, 2


class SimApp:
    """One app run inside the simulator (mutable; owned by :class:`Simulation`)."""

    __slots__ = (
        "arrival_s",
        "attained_s",
        "cold_wait_s",
        "deadline_s",
        "finish_s",
        "idx",
        "key",
        "name",
        "pending",
        "quantum_end_s",
        "records",
        "stage_attained_s",
        "stage_cold_s",
        "stage_i",
        "stage_start_s",
        "stages",
        "standalone_s",
        "start_by_s",
        "tenant",
        "total_s",
        "version",
        "visits",
        "work_s",
    )

    def __init__(
        self,
        idx: int,
        name: str,
        arrival_s: float,
        stages: list[RealStage],
        standalone_s: float,
        deadline_rel_s: float | None,
        tenant: str = "default",
    ) -> None:
        self.idx = idx
        self.tenant = tenant
        self.name = name
        self.arrival_s = arrival_s
        self.stages = stages
        self.standalone_s = standalone_s
        self.deadline_s = None if deadline_rel_s is None else arrival_s + deadline_rel_s
        self.total_s = sum([sum(s[3]) for s in stages])
        self.attained_s = 0.0
        self.stage_attained_s = 0.0
        self.stage_i = 0
        self.stage_start_s = arrival_s
        self.stage_cold_s = 0.0
        self.cold_wait_s = 0.0
        self.pending = 0
        self.key = 0.0
        self.version = 0
        self.quantum_end_s = math.inf
        self.finish_s = math.nan
        self.visits: dict[str, int] = {}
        self.records: list[Stage] = []
        self.work_s = 0.0
        """Predicted remaining service (seconds), for the queue-wide deadline pass."""
        self.start_by_s = math.nan
        """Latest start that still makes the deadline (the pass's ``queue_plan``), or NaN."""

    @property
    def run_id(self) -> str:
        """Run id shown to policies and in learned paths."""
        return f"run-{self.idx}"


class SimRequest:
    __slots__ = ("app", "arrival_s", "index", "rate", "remaining_s", "seq", "service_s", "state")

    def __init__(self, app: SimApp, index: int, service_s: float, t: float, seq: int) -> None:
        self.app = app
        self.index = index
        self.service_s = service_s
        self.remaining_s = service_s
        self.arrival_s = t
        self.seq = seq
        self.rate = 0.0
        self.state = WAITING


class SimBackend:
    __slots__ = (
        "busy_s",
        "can_cool",
        "cold_starts",
        "held",
        "idle_since",
        "last_t",
        "preemptive",
        "running",
        "shared",
        "slots",
        "spec",
        "speed",
        "stale",
        "state",
        "tq",
        "waiting",
        "wake_t",
        "wake_version",
        "warm_at",
        "warm_start",
    )

    def __init__(self, spec: BackendSpec, processor_sharing: bool) -> None:
        self.spec = spec
        self.slots = spec.servers
        self.preemptive = spec.preemptive
        self.shared = processor_sharing or spec.servers is None
        self.waiting: list[tuple[float, float, int, SimRequest, int]] = []
        self.tq: dict[str, list[tuple[float, float, int, SimRequest, int]]] = {}
        """Per-tenant waiting heaps under fair sharing (``waiting`` is then the picked one)."""
        self.held: list[SimRequest] = []
        self.running: list[SimRequest] = []
        self.last_t = 0.0
        self.busy_s = 0.0
        self.wake_version = 0
        self.wake_t = math.inf
        self.speed = spec.speed
        self.stale = True
        """The running set changed since the pending wake-up was computed."""
        self.can_cool = spec.cold_start_s > 0 and math.isfinite(spec.keep_alive_s)
        cold = spec.cold_start_s > 0 and not spec.initially_warm
        self.state = COLD if cold else WARM
        self.warm_at = 0.0
        self.warm_start = 0.0
        self.idle_since = 0.0
        self.cold_starts = 0
