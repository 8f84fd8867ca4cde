"""Nested calls: completion LLMs, retrievers, backend naming, token fallbacks, request hooks."""

from __future__ import annotations

import json
from typing import Any, TypedDict

import httpx
from hermes_langgraph import HermesCallbackHandler, attach_hints, current_hints
from hermes_langgraph._metadata import llm_usage, node_task
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import FakeListLLM
from langchain_core.outputs import Generation, LLMResult
from langchain_core.retrievers import BaseRetriever
from langgraph.graph import END, START, StateGraph

from hermes_sdk.client.hints import rank_to_priority


class Docs(BaseRetriever):
    """Returns two fixed documents."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document(page_content=f"doc about {query}"), Document(page_content="more")]


class S(TypedDict):
    q: str
    a: str


def rag_graph(llm: Any) -> Any:
    retriever = Docs()

    def retrieve(state: S) -> dict[str, str]:
        docs = retriever.invoke(state["q"])
        return {"a": " ".join(d.page_content for d in docs)}

    def answer(state: S) -> dict[str, str]:
        return {"a": str(llm.invoke(f"answer {state['q']} from {state['a']}"))}

    builder = StateGraph(S)
    builder.add_node("retrieve", retrieve)
    builder.add_node("answer", answer)
    builder.add_edge(START, "retrieve")
    builder.add_edge("retrieve", "answer")
    builder.add_edge("answer", END)
    return builder.compile()


class UsageLLM(FakeListLLM):
    """A completion LLM that reports OpenAI-style ``llm_output["token_usage"]``."""

    def _generate(self, prompts: list[str], *args: Any, **kwargs: Any) -> LLMResult:
        result = super()._generate(prompts, *args, **kwargs)
        return LLMResult(
            generations=result.generations,
            llm_output={"token_usage": {"prompt_tokens": 21, "completion_tokens": 7}},
        )


def test_retriever_and_completion_llm_with_backend_from_metadata() -> None:
    llm = UsageLLM(responses=["fine"]).with_config(metadata={"hermes_backend": "small-gpu"})
    handler = HermesCallbackHandler(app="rag")
    out = rag_graph(llm).invoke({"q": "rain", "a": ""}, {"callbacks": [handler]})
    assert out["a"] == "fine"
    (path,) = handler.recent_paths
    assert [(s.node, s.kind, s.backend) for s in path.stages] == [
        ("retrieve", "retriever", None),  # only a retriever inside
        ("answer", "llm", "small-gpu"),
    ]
    call = path.stages[1].calls[0]
    assert (call.input_tokens, call.output_tokens) == (21, 7)


def test_llm_usage_prefers_usage_metadata_then_llm_output() -> None:
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration

    msg = AIMessage("x", usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7})
    both = LLMResult(
        generations=[[ChatGeneration(message=msg), ChatGeneration(message=msg)]],
        llm_output={"token_usage": {"prompt_tokens": 100, "completion_tokens": 100}},
    )
    assert llm_usage(both) == (6, 8)
    only_output = LLMResult(
        generations=[[Generation(text="x")]],
        llm_output={"usage": {"input_tokens": 5, "output_tokens": 2}},
    )
    assert llm_usage(only_output) == (5, 2)
    assert llm_usage(LLMResult(generations=[[Generation(text="x")]])) == (None, None)
    assert llm_usage(object()) == (None, None)


def test_node_task_needs_the_step_tag() -> None:
    md = {"langgraph_node": "agent", "langgraph_step": 3, "langgraph_checkpoint_ns": "a:1|b:2"}
    task = node_task(md, ["graph:step:3"])
    assert task is not None and (task.node, task.step, task.namespace_depth) == ("agent", 3, 2)
    assert node_task(md, ["seq:step:1"]) is None  # a runnable inside the node
    assert node_task({**md, "langgraph_node": "__start__"}, ["graph:step:3"]) is None
    assert node_task({**md, "langgraph_step": "3"}, ["graph:step:3"]) is None
    assert node_task(None, None) is None


REQUESTS: list[httpx.Request] = []


class HookedLLM(FakeListLLM):
    """Builds the HTTP requests a real client would send and runs the hint hook on them."""

    def _call(self, prompt: str, *args: Any, **kwargs: Any) -> str:
        fresh = httpx.Request("POST", "http://engine/v1/completions", json={"prompt": prompt})
        mine = httpx.Request(
            "POST",
            "http://engine/v1/completions",
            json={"prompt": prompt, "priority": 99},
            headers={"X-Hermes-App": "caller-set"},
        )
        for request in (fresh, mine):
            assert attach_hints(request, engine="vllm")
            REQUESTS.append(request)
        return super()._call(prompt, *args, **kwargs)


def test_attach_hints_sets_headers_and_priority_but_keeps_callers_values() -> None:
    REQUESTS.clear()
    handler = HermesCallbackHandler(app="hooked", deadline_s=12.5)
    rag_graph(HookedLLM(responses=["ok"])).invoke({"q": "q", "a": ""}, {"callbacks": [handler]})
    fresh, mine = REQUESTS
    (path,) = handler.recent_paths
    assert fresh.headers["X-Hermes-App"] == "hooked"
    assert fresh.headers["X-Hermes-Run"] == path.run_id
    assert fresh.headers["X-Hermes-Unit"] == "answer"
    assert fresh.headers["X-Hermes-Deadline"] == "12.5"
    body = json.loads(fresh.content)
    rank = fresh.headers.get("X-Hermes-Rank")
    assert body == {
        "prompt": "answer q from doc about q more",
        "priority": rank_to_priority(float(rank) if rank else None, "vllm"),
    }
    assert int(fresh.headers["Content-Length"]) == len(fresh.content)
    assert mine.headers["X-Hermes-App"] == "caller-set"
    assert json.loads(mine.content)["priority"] == 99
    assert current_hints() is None  # reset after the call
    plain = httpx.Request("POST", "http://engine/v1/completions", json={"prompt": "x"})
    assert not attach_hints(plain)
    assert "X-Hermes-App" not in plain.headers


def test_handler_without_hints_publishes_nothing() -> None:
    handler = HermesCallbackHandler(app="quiet", attach_hints=False)
    seen: list[object] = []

    class Probe(FakeListLLM):
        def _call(self, prompt: str, *args: Any, **kwargs: Any) -> str:
            seen.append(current_hints())
            return "ok"

    rag_graph(Probe(responses=["ok"])).invoke({"q": "q", "a": ""}, {"callbacks": [handler]})
    assert seen == [None]
    assert [s.node for s in handler.recent_paths[0].stages] == ["retrieve", "answer"]
