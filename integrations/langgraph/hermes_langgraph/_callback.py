"""``HermesCallbackHandler``: learn a LangGraph app's demand graph from its callbacks.

One Hermes run per top-level invocation; units are the graph's node tasks, with the LLM, chat
model, tool and retriever calls inside them nested as child units (see ``_tracker`` for the
mapping and the README for the full table). The handler is a plain ``BaseCallbackHandler`` with
``run_inline = True``: in async graphs LangChain calls it on the event loop, in the task that
runs the model call, which is what lets :mod:`hermes_langgraph._hints` see the current call.
Every hook is wrapped: a failure inside the handler is counted, logged once, and never reaches
the graph.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langgraph.errors import GraphBubbleUp, GraphInterrupt

from hermes_langgraph._hints import CURRENT_LLM_UNIT
from hermes_langgraph._metadata import (
    component_name,
    estimate_prompt_tokens,
    explicit_backend,
    llm_usage,
    model_backend,
)
from hermes_langgraph._threads import PausedThreads
from hermes_langgraph._tracker import Ended, RunTracker, finish
from hermes_sdk.graph.records import RunPath, UnitKind, check_name, check_seconds
from hermes_sdk.instrument.paused_record import DEFAULT_PAUSE_HORIZON_S

try:  # LangGraph with langgraph.callbacks (1.2 here) reports interrupts to these subclasses
    from langgraph.callbacks import GraphCallbackHandler as _HandlerBase
except ImportError:  # pragma: no cover - older LangGraph: the node's GraphInterrupt suffices
    _HandlerBase = BaseCallbackHandler  # type: ignore[assignment,misc]

log = logging.getLogger("hermes_langgraph")

RECENT_PATHS = 64
"""How many completed top-level paths :attr:`HermesCallbackHandler.recent_paths` keeps."""


def is_failure(error: BaseException) -> bool:
    """Whether an error ends a unit as failed: interrupts and ``GraphBubbleUp`` control flow
    (``interrupt()``, ``Command(graph=PARENT)``) are not failures."""
    return not isinstance(error, GraphBubbleUp)


class HermesCallbackHandler(_HandlerBase):
    """Records every graph invocation it sees as a Hermes run of ``app``.

    ``graph.invoke(x, config={"callbacks": [HermesCallbackHandler(app="doc-qa")]})`` (also
    ``ainvoke``, ``stream``, ``astream``, ``astream_events``, ``batch``); one handler may be
    shared by any number of concurrent invocations. ``deadline_s`` is each run's deadline in
    seconds from its start. With ``attach_hints`` the current LLM call's hints are published to
    :func:`hermes_langgraph.current_hints` and the HTTP hooks of
    :func:`hermes_langgraph.chat_openai_kwargs`. ``tenant`` is passed to
    ``hermes.start_run`` (the scheduler derives it from the API key in remote mode).

    A run that stops at an interrupt (``interrupt()``, ``interrupt_before/after``) on a thread
    (``configurable.thread_id``) is paused, not ended; the next invocation on that thread with
    a ``Command`` or ``None`` input continues it, in this or any process sharing the Hermes
    store. Runs paused longer than ``pause_horizon_s`` seconds are ended as abandoned.
    Raises :class:`~hermes_sdk.GraphError` for an invalid ``app``, ``deadline_s`` or ``tenant``;
    after construction nothing it does raises into the graph.
    """

    raise_error = False
    run_inline = True

    def __init__(
        self,
        app: str,
        *,
        deadline_s: float | None = None,
        attach_hints: bool = True,
        tenant: str | None = None,
        pause_horizon_s: float = DEFAULT_PAUSE_HORIZON_S,
    ) -> None:
        super().__init__()
        check_name(app, "app")
        if deadline_s is not None:
            check_seconds(deadline_s, "deadline_s")
        check_seconds(pause_horizon_s, "pause_horizon_s")
        if tenant is not None:
            check_name(tenant, "tenant")
        self.app = app
        self.deadline_s = deadline_s
        self.attach_hints = attach_hints
        self.pause_horizon_s = pause_horizon_s
        self._errors = 0
        self._errors_lock = threading.Lock()
        self.recent_paths: deque[RunPath] = deque(maxlen=RECENT_PATHS)
        """The latest completed top-level paths (newest last), for inspection and tests."""
        self._threads = PausedThreads(pause_horizon_s, self.recent_paths.append)
        self._tracker = RunTracker(app, deadline_s=deadline_s, tenant=tenant, threads=self._threads)

    # --- bookkeeping ------------------------------------------------------------------------

    @property
    def errors(self) -> int:
        """Internal failures swallowed so far (each logged at debug level, the first as warning)."""
        return self._errors

    @property
    def open_runs(self) -> int:
        """Top-level invocations started and not yet ended."""
        return self._tracker.open_runs

    @property
    def ignore_agent(self) -> bool:
        """Not ignored: langchain-core gates the *tool* hooks (``on_tool_start/end/error``) on
        this flag too (``CallbackManager.on_tool_start``); agent actions are no-ops here."""
        return False

    @property
    def ignore_retry(self) -> bool:
        """Retries show up as extra calls already."""
        return True

    @property
    def ignore_custom_event(self) -> bool:
        """Custom events carry no demand."""
        return True

    def _swallow(self, hook: str, exc: BaseException, run_id: UUID | None = None) -> None:
        """Count and log a handler failure; a failed start hook ignores that run's subtree."""
        if run_id is not None:
            with contextlib.suppress(Exception):
                self._tracker.ignore(run_id)
        with self._errors_lock:
            self._errors += 1
            first = self._errors == 1
        if first:
            log.warning(
                "hermes_langgraph: %s failed (%r); the graph is unaffected, further handler "
                "errors are logged at debug level",
                hook,
                exc,
            )
        else:
            log.debug("hermes_langgraph: %s failed: %r", hook, exc)

    def _finish(self, ended: list[Ended]) -> None:
        for item in ended:
            path = finish(item, self._threads)
            if path is not None and item.graph.outer_unit is None:
                self.recent_paths.append(path)

    def sweep_paused(self, *, now: float | None = None) -> list[RunPath]:
        """End this app's runs paused longer than ``pause_horizon_s`` as abandoned (in any
        process's store records); returns their paths. Also runs by itself on a background
        thread, every ``pause_horizon_s / 10`` seconds (1 minute to 1 hour) while invocations
        start. Never raises."""
        try:
            return self._threads.sweep(self.app, now=now)
        except Exception as exc:
            self._swallow("sweep_paused", exc)
            return []

    def _end(
        self,
        hook: str,
        run_id: UUID,
        *,
        failed: bool,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        interrupted: bool = False,
    ) -> None:
        try:
            ended, token = self._tracker.end(
                run_id,
                failed=failed,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                interrupted=interrupted,
            )
            if token is not None:
                # ValueError: ended in another context than it started, nothing to undo there.
                with contextlib.suppress(ValueError):
                    CURRENT_LLM_UNIT.reset(token)
            self._finish(ended)
        except Exception as exc:
            self._swallow(hook, exc)

    def close(self) -> None:
        """End every run still open as failed (e.g. abandoned streams) and record them."""
        try:
            self._finish(self._tracker.close_all())
        except Exception as exc:
            self._swallow("close", exc)

    # --- chains: graphs and node tasks --------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A graph, node task or inner runnable started."""
        try:
            if parent_run_id is None:
                self._threads.sweep_soon(self.app, time.time())
            self._finish(self._tracker.chain_start(run_id, parent_run_id, metadata, tags, inputs))
        except Exception as exc:
            self._swallow("on_chain_start", exc, run_id)

    def on_chain_end(
        self,
        outputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A chain finished."""
        self._end("on_chain_end", run_id, failed=False)

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A chain raised (interrupts and other ``GraphBubbleUp`` are not failures)."""
        self._end(
            "on_chain_error",
            run_id,
            failed=is_failure(error),
            interrupted=isinstance(error, GraphInterrupt),
        )

    def on_interrupt(self, event: Any) -> None:
        """A graph paused at interrupts (``langgraph.callbacks``): the top graph's run pauses."""
        try:
            if getattr(event, "checkpoint_ns", None) == ():
                self._tracker.interrupt(getattr(event, "run_id", None))
        except Exception as exc:
            self._swallow("on_interrupt", exc)

    def on_resume(self, event: Any) -> None:
        """A graph resumed (``langgraph.callbacks``); the run was continued at its start."""

    # --- model calls ----------------------------------------------------------------------------

    def _model_start(
        self,
        hook: str,
        serialized: dict[str, Any] | None,
        prompts: Sequence[object],
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, object] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        try:
            params = kwargs.get("invocation_params")
            unit, evicted = self._tracker.call_start(
                run_id,
                parent_run_id,
                component_name(serialized, kwargs.get("name"), "llm"),
                "llm",
                model_backend(
                    serialized, metadata, params if isinstance(params, Mapping) else None
                ),
                estimate_prompt_tokens(prompts),
            )
            if self.attach_hints and unit is not None:
                self._tracker.set_hint_token(run_id, CURRENT_LLM_UNIT.set(unit))
            self._finish(evicted)
        except Exception as exc:
            self._swallow(hook, exc, run_id)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A chat model call started: an ``llm`` unit nested in the running node."""
        self._model_start(
            "on_chat_model_start", serialized, messages, run_id, parent_run_id, metadata, kwargs
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A completion-style LLM call started."""
        self._model_start(
            "on_llm_start", serialized, prompts, run_id, parent_run_id, metadata, kwargs
        )

    def on_llm_end(
        self,
        response: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A model call finished: tokens from ``usage_metadata``, else ``llm_output``."""
        try:
            input_tokens, output_tokens = llm_usage(response)
        except Exception as exc:
            self._swallow("on_llm_end", exc)
            input_tokens = output_tokens = None
        self._end(
            "on_llm_end",
            run_id,
            failed=False,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A model call raised."""
        self._end("on_llm_error", run_id, failed=is_failure(error))

    # --- tools and retrievers -----------------------------------------------------------------

    def _call_start(
        self,
        hook: str,
        kind: UnitKind,
        serialized: dict[str, Any] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, object] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        try:
            _, evicted = self._tracker.call_start(
                run_id,
                parent_run_id,
                component_name(serialized, kwargs.get("name"), kind),
                kind,
                explicit_backend(metadata),
                None,
            )
            self._finish(evicted)
        except Exception as exc:
            self._swallow(hook, exc, run_id)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A tool call started: a ``tool`` unit nested in the running node."""
        self._call_start(
            "on_tool_start", "tool", serialized, run_id, parent_run_id, metadata, kwargs
        )

    def on_tool_end(
        self,
        output: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A tool call finished."""
        self._end("on_tool_end", run_id, failed=False)

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A tool call raised."""
        self._end("on_tool_error", run_id, failed=is_failure(error))

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A retriever call started: a ``retriever`` unit nested in the running node."""
        self._call_start(
            "on_retriever_start",
            "retriever",
            serialized,
            run_id,
            parent_run_id,
            metadata,
            kwargs,
        )

    def on_retriever_end(
        self,
        documents: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A retriever call finished."""
        self._end("on_retriever_end", run_id, failed=False)

    def on_retriever_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A retriever call raised."""
        self._end("on_retriever_error", run_id, failed=is_failure(error))
