"""A small circuit breaker: after ``threshold`` consecutive failures, skip calls for ``open_s``.

It also owns the "one warning per outage" rule: the first failure after a healthy period logs
a warning, further failures are silent, and the first success after an outage logs recovery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("hermes_sdk.client")


class CircuitBreaker:
    """Thread-safe breaker state shared by every call to one scheduler."""

    def __init__(
        self,
        *,
        threshold: int = 3,
        open_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "scheduler",
    ) -> None:
        if threshold < 1 or open_s <= 0:
            raise ValueError("threshold must be >= 1 and open_s > 0")
        self.threshold = threshold
        self.open_s = open_s
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0
        self.in_outage = False
        self.outages = 0
        """Outages seen (each logged once)."""
        self.skipped = 0
        """Calls skipped while the breaker was open."""

    def allow(self) -> bool:
        """True if a call may be tried now (closed, or half-open after ``open_s``)."""
        with self._lock:
            if self._failures < self.threshold:
                return True
            if self._clock() >= self._open_until:
                self._open_until = self._clock() + self.open_s  # one trial per open period
                return True
            self.skipped += 1
            return False

    def success(self) -> None:
        """Record a successful call; closes the breaker."""
        with self._lock:
            recovered = self.in_outage
            self._failures = 0
            self.in_outage = False
        if recovered:
            log.warning("%s is reachable again; admission and events resume", self.name)

    def failure(self, reason: str) -> None:
        """Record a failed call; opens the breaker after ``threshold`` in a row."""
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                self._open_until = self._clock() + self.open_s
            first = not self.in_outage
            if first:
                self.in_outage = True
                self.outages += 1
        if first:
            log.warning(
                "%s unavailable (%s); units run without admission until it is back",
                self.name,
                reason,
            )
