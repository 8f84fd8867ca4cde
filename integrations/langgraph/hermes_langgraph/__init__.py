"""Hermes for LangGraph and LangChain: one callback learns the app's demand graph.

``graph.invoke(x, config={"callbacks": [HermesCallbackHandler(app="doc-qa")]})`` records every
invocation as a Hermes run (units = graph nodes, with their LLM/tool/retriever calls nested), and
``ChatOpenAI(**chat_openai_kwargs())`` makes the model calls inside carry the run's scheduling
hints (``X-Hermes-*`` headers and the engine-native ``priority``).
"""

from hermes_langgraph._callback import HermesCallbackHandler
from hermes_langgraph._hints import (
    async_httpx_request_hook,
    async_httpx_response_hook,
    attach_hints,
    chat_openai_kwargs,
    current_hints,
    httpx_request_hook,
    httpx_response_hook,
    note_queue_wait,
)

chat_model_kwargs = chat_openai_kwargs
"""Alias of :func:`chat_openai_kwargs` (the name used in the design document)."""

__version__ = "0.1.0.dev0"

__all__ = [
    "HermesCallbackHandler",
    "__version__",
    "async_httpx_request_hook",
    "async_httpx_response_hook",
    "attach_hints",
    "chat_model_kwargs",
    "chat_openai_kwargs",
    "current_hints",
    "httpx_request_hook",
    "httpx_response_hook",
    "note_queue_wait",
]
