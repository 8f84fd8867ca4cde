"""What the LangChain/LangGraph callback arguments say about a unit, read defensively.

LangGraph runs every node task as a chain whose callback ``metadata`` carries ``langgraph_node``
(the node name), ``langgraph_step`` (the superstep), ``langgraph_triggers``, ``langgraph_path``
and ``langgraph_checkpoint_ns`` (``"node:task_id"``, joined by ``"|"`` inside subgraphs), and whose
``tags`` carry ``"graph:step:<n>"``. Runnables *inside* a node inherit the metadata but not that
tag, which is how a node task is told apart from, say, a conditional-edge function it runs.
Nothing here raises on odd input: unknown shapes give ``None``.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast

from hermes_sdk.graph.records import UNIT_KINDS, UnitKind

STEP_TAG_PREFIX: Final = "graph:step:"
"""Tag LangGraph puts on the callback manager of each node task (not inherited by children)."""
BACKEND_METADATA_KEY: Final = "hermes_backend"
"""Metadata key naming a model's or tool's backend (set with ``.with_config(metadata=...)``)."""
KIND_METADATA_KEY: Final = "hermes_kind"
"""Node metadata key setting a node's unit kind (``add_node(..., metadata={...})``)."""
MAX_NAME_CHARS: Final = 256

_MODEL_KEYS: Final = ("model", "model_name", "model_id", "deployment_name", "azure_deployment")
_INPUT_KEYS: Final = ("input_tokens", "prompt_tokens")
_OUTPUT_KEYS: Final = ("output_tokens", "completion_tokens")
_CHARS_PER_TOKEN: Final = 4


@dataclass(frozen=True, slots=True)
class NodeTask:
    """A LangGraph node task as announced by ``on_chain_start``."""

    node: str
    step: int
    task_id: str
    """``langgraph_checkpoint_ns``: ``"node:task_id"`` (``"|"``-joined in subgraphs); retries of
    a task keep it, ``Send`` fan-out tasks differ."""

    @property
    def namespace_depth(self) -> int:
        """1 for a task of the top graph, +1 per enclosing subgraph."""
        return self.task_id.count("|") + 1 if self.task_id else 1


@functools.lru_cache(maxsize=4096)
def _printable(value: str) -> bool:
    return not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def clean_name(value: object) -> str | None:
    """``value`` if it is usable as a unit or backend name (non-empty, short, printable)."""
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        return None
    return value if _printable(value) else None


def node_task(metadata: Mapping[str, object] | None, tags: Sequence[str] | None) -> NodeTask | None:
    """The node task a chain run is, or ``None`` for any other chain (graphs, edges, lambdas)."""
    if not metadata or not tags:
        return None
    step = metadata.get("langgraph_step")
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    if f"{STEP_TAG_PREFIX}{step}" not in tags:
        return None
    node = clean_name(metadata.get("langgraph_node"))
    if node is None or node.startswith("__"):
        return None
    ns = metadata.get("langgraph_checkpoint_ns")
    return NodeTask(node=node, step=step, task_id=ns if isinstance(ns, str) else "")


def model_backend(
    serialized: Mapping[str, object] | None,
    metadata: Mapping[str, object] | None,
    invocation_params: Mapping[str, object] | None,
) -> str | None:
    """The serving backend of an LLM call: the model name, as precisely as the callback knows it.

    Order: ``metadata["hermes_backend"]``, ``metadata["ls_model_name"]``, the invocation
    parameters (``model``, ``model_name``, ...), the serialized constructor kwargs.
    """
    if metadata:
        for key in (BACKEND_METADATA_KEY, "ls_model_name"):
            name = clean_name(metadata.get(key))
            if name is not None:
                return name
    if invocation_params:
        for key in _MODEL_KEYS:
            name = clean_name(invocation_params.get(key))
            if name is not None:
                return name
    kwargs = serialized.get("kwargs") if serialized else None
    if isinstance(kwargs, Mapping):
        for key in _MODEL_KEYS:
            name = clean_name(kwargs.get(key))
            if name is not None:
                return name
    return None


def explicit_kind(metadata: Mapping[str, object] | None) -> UnitKind | None:
    """The unit kind a user set in node metadata (``hermes_kind``), if it is a valid kind."""
    kind = metadata.get(KIND_METADATA_KEY) if metadata else None
    return cast(UnitKind, kind) if isinstance(kind, str) and kind in UNIT_KINDS else None


def explicit_backend(metadata: Mapping[str, object] | None) -> str | None:
    """The backend a user named in metadata (tools, retrievers), else ``None``."""
    return clean_name(metadata.get(BACKEND_METADATA_KEY)) if metadata else None


def component_name(serialized: Mapping[str, object] | None, run_name: object, default: str) -> str:
    """A unit name for a nested call: the run name, the serialized name, else ``default``."""
    name = clean_name(run_name)
    if name is None and serialized:
        name = clean_name(serialized.get("name"))
        if name is None:
            ident = serialized.get("id")
            if isinstance(ident, Sequence) and ident and not isinstance(ident, str):
                name = clean_name(ident[-1])
    return name if name is not None else default


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _pick(block: object, keys: tuple[str, ...]) -> int | None:
    for key in keys:
        raw = block.get(key) if isinstance(block, Mapping) else getattr(block, key, None)
        found = _count(raw)
        if found is not None:
            return found
    return None


def _add(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else a + b


def llm_usage(response: object) -> tuple[int | None, int | None]:
    """Token counts ``(input, output)`` of an LLMResult: ``usage_metadata``, else ``llm_output``.

    ``usage_metadata`` of every generation's message is summed (several generations per prompt
    are several completions). Only if no message carries usage is
    ``llm_output["token_usage"]`` (or ``["usage"]``) read, as OpenAI-style LLMs report it there.
    """
    inp: int | None = None
    out: int | None = None
    generations = getattr(response, "generations", None)
    if isinstance(generations, Sequence):
        for per_prompt in generations:
            if not isinstance(per_prompt, Sequence):
                continue
            for gen in per_prompt:
                usage = getattr(getattr(gen, "message", None), "usage_metadata", None)
                if usage:
                    inp = _add(inp, _pick(usage, _INPUT_KEYS))
                    out = _add(out, _pick(usage, _OUTPUT_KEYS))
    if inp is not None or out is not None:
        return inp, out
    llm_output = getattr(response, "llm_output", None)
    if isinstance(llm_output, Mapping):
        block = llm_output.get("token_usage") or llm_output.get("usage")
        if block:
            return _pick(block, _INPUT_KEYS), _pick(block, _OUTPUT_KEYS)
    return None, None


def _content_chars(content: object) -> int:
    if isinstance(content, str):
        return len(content)
    total = 0
    if isinstance(content, Sequence):
        for block in content:
            if isinstance(block, str):
                total += len(block)
            elif isinstance(block, Mapping):
                text = block.get("text")
                if isinstance(text, str):
                    total += len(text)
    return total


def estimate_prompt_tokens(prompts: Sequence[object]) -> int | None:
    """A cheap estimate of a prompt's tokens (characters / 4) for ranking before usage arrives.

    ``prompts`` is the list of message lists of ``on_chat_model_start`` or the strings of
    ``on_llm_start``; the exact count recorded at the end replaces this estimate.
    """
    chars = 0
    for prompt in prompts:
        if isinstance(prompt, str):
            chars += len(prompt)
        elif isinstance(prompt, Sequence):
            for message in prompt:
                chars += _content_chars(getattr(message, "content", message))
    if chars == 0:
        return None
    return max(1, chars // _CHARS_PER_TOKEN)
