"""The Hermes scheduler service (`hermes serve`): control API, admission queues, auth, metrics."""

from hermes_sdk.server.app import create_app
from hermes_sdk.server.config import BackendConfig, ServerConfig, load_config
from hermes_sdk.server.scheduler import SCHEDULER, Scheduler

__all__ = ["SCHEDULER", "BackendConfig", "Scheduler", "ServerConfig", "create_app", "load_config"]
