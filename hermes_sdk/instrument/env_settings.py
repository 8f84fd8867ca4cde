"""Environment settings of the instrumentation, read at import and by ``configure``.

Each reader returns the parsed value; the ``import_time_*`` variants never raise (importing
``hermes_sdk`` must not fail on a bad variable: they log and use the default, and ``configure``
raises the same ConfigError).
"""

from __future__ import annotations

import logging
import os
from typing import Final

from hermes_sdk.errors import ConfigError
from hermes_sdk.instrument.learner import DEFAULT_MAX_BYTES

log = logging.getLogger("hermes_sdk.instrument")

LEARN_QUEUE_ENV: Final = "HERMES_LEARN_QUEUE_MIB"
"""Environment variable: MiB of completed runs that may wait for the store (default 4)."""
LEARN_BACKPRESSURE_ENV: Final = "HERMES_LEARN_BACKPRESSURE"
"""Environment variable: 1/true/yes/on slows ``submit()`` instead of dropping (default off)."""
SCHEDULER_URL_ENV: Final = "HERMES_SCHEDULER_URL"
"""Environment variable: the scheduler URL ``configure`` uses when given none (remote mode)."""
API_KEY_ENV: Final = "HERMES_API_KEY"
"""Environment variable: the API key ``configure`` uses when given none."""
LEARNER_ENV: Final = "HERMES_LEARNER"
"""Environment variable: ``thread`` (default) or ``process``."""
LEARNER_MODES: Final = ("thread", "process")


def env_scheduler() -> tuple[str | None, str | None]:
    """``(HERMES_SCHEDULER_URL, HERMES_API_KEY)``, each ``None`` when unset or empty."""
    url = os.environ.get(SCHEDULER_URL_ENV, "").strip()
    key = os.environ.get(API_KEY_ENV, "").strip()
    return url or None, key or None


def env_disabled() -> bool:
    """True when ``HERMES_DISABLED`` asks for pass-through decorators (1/true/yes/on)."""
    return os.environ.get("HERMES_DISABLED", "").strip().lower() in ("1", "true", "yes", "on")


def env_learn_backpressure() -> bool:
    """True when ``HERMES_LEARN_BACKPRESSURE`` turns backpressure on (1/true/yes/on)."""
    raw = os.environ.get(LEARN_BACKPRESSURE_ENV, "").strip().lower()
    return raw in ("1", "true", "yes", "on")


def env_learn_queue_bytes() -> int:
    """``HERMES_LEARN_QUEUE_MIB`` in bytes (default 4 MiB); ConfigError unless positive."""
    raw = os.environ.get(LEARN_QUEUE_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        mib = float(raw)
    except ValueError:
        mib = -1.0
    if not (mib > 0 and mib < 2**20):
        raise ConfigError(f"{LEARN_QUEUE_ENV} must be a positive number of MiB, got {raw!r}")
    return max(1, int(mib * 2**20))


def import_time_queue_bytes() -> int:
    try:
        return env_learn_queue_bytes()
    except ConfigError as exc:  # importing must not fail: configure() raises it instead
        log.warning("hermes: %s; using %d bytes", exc, DEFAULT_MAX_BYTES)
        return DEFAULT_MAX_BYTES


def import_time_learner() -> str:
    try:
        return check_mode(env_learner_mode())
    except ValueError as exc:  # importing must not fail: configure() raises it instead
        log.warning("hermes: HERMES_LEARNER: %s; using 'thread'", exc)
        return "thread"


def env_learner_mode() -> str:
    """``HERMES_LEARNER`` (``thread`` when unset or empty; an unknown value is returned as is
    for :func:`check_mode` to refuse)."""
    return os.environ.get(LEARNER_ENV, "").strip().lower() or "thread"


def check_mode(mode: object) -> str:
    """``mode`` if it is a learner mode, else ValueError."""
    if mode not in LEARNER_MODES:
        raise ValueError(f"learner must be one of {LEARNER_MODES}, got {mode!r}")
    return str(mode)
