"""Which event loop runs ``hermes serve``: asyncio's own, or uvloop (libuv, in C) when installed.

``auto`` (the default) takes uvloop when it can be imported (``pip install 'hermes-sdk[fast]'``)
and asyncio's loop otherwise; ``uvloop`` refuses to start without it; ``asyncio`` never uses it.
The choice is process-wide and made once, before the app is built: ``create_app`` and the tests'
servers run on whatever loop their caller runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Final, Literal, TypeVar, get_args

from hermes_sdk.errors import ConfigError

LoopName = Literal["auto", "asyncio", "uvloop"]
LOOP_NAMES: Final[tuple[str, ...]] = get_args(LoopName)

T = TypeVar("T")


def uvloop_available() -> bool:
    """True when uvloop can be imported here (it does not build on Windows)."""
    return importlib.util.find_spec("uvloop") is not None


def resolve_loop(name: str) -> Literal["asyncio", "uvloop"]:
    """The loop ``name`` (``auto``, ``asyncio`` or ``uvloop``) stands for on this machine.

    Raises ConfigError for an unknown name, or ``uvloop`` when uvloop is not installed.
    """
    if name not in LOOP_NAMES:
        raise ConfigError(f"unknown event loop {name!r}: one of {', '.join(LOOP_NAMES)}")
    if name == "asyncio":
        return "asyncio"
    if uvloop_available():
        return "uvloop"
    if name == "uvloop":
        raise ConfigError(
            "--loop uvloop: uvloop is not installed (pip install 'hermes-sdk[fast]'), "
            "or use --loop auto to fall back to asyncio"
        )
    return "asyncio"


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A new-loop factory for :class:`asyncio.Runner` (None: asyncio's default loop)."""
    if resolve_loop(name) == "asyncio":
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_on(name: str, main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop ``name`` stands for (see :func:`resolve_loop`)."""
    try:
        factory = loop_factory(name)
    except BaseException:
        main.close()  # never awaited: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: the kind of loop running the caller (for the startup line)."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
