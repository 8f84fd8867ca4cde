"""Runs that record no unit (an unwrapped model client): learned as nothing, warned about once."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from openai import OpenAI

import hermes_sdk as hermes
from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import Call, RunPath, RunState, Stage
from hermes_sdk.instrument import runtime as rt
from hermes_sdk.policy import gittins_index
from hermes_sdk.sim.engine import SimEngineConfig
from tests.instrument.model_servers import engine_thread

MSGS = [{"role": "user", "content": "hi"}]


def _rank_s(samples: np.ndarray) -> float:
    return 1.0 / float(gittins_index(samples))


def test_unwrapped_client_runs_teach_nothing_and_warn_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rt, "_APPS_WARNED_NO_UNITS", set())
    with engine_thread(SimEngineConfig(model="m", step_base_s=0.001)) as url:
        client = OpenAI(base_url=url, api_key="k", max_retries=0)  # not wrapped
        with caplog.at_level(logging.WARNING, logger="hermes_sdk.instrument"):
            for _ in range(6):
                with hermes.run(app="doc-qa"):
                    client.chat.completions.create(model="m", messages=MSGS, max_tokens=2)
            with hermes.run(app="other"):
                pass
            wrapped = hermes.wrap(client)
            with hermes.run(app="doc-qa"):
                wrapped.chat.completions.create(model="m", messages=MSGS, max_tokens=2)
    warnings = [r.getMessage() for r in caplog.records if "without any unit" in r.getMessage()]
    assert len(warnings) == 2  # once per app
    assert "'doc-qa'" in warnings[0] and "'other'" in warnings[1]
    assert "hermes.wrap" in warnings[0] and "@hermes.llm" in warnings[0]
    graph = hermes.graph("doc-qa")
    assert (graph.runs, graph.empty_runs, sorted(graph.nodes)) == (1, 6, ["m"])


def test_a_graph_of_empty_runs_ranks_like_the_pooled_prior() -> None:
    registry = GraphRegistry()
    for i in range(40):  # another app of the tenant: runs of about one second
        call = Call(service_s=0.8 + 0.01 * i, input_tokens=10, output_tokens=20)
        stage = Stage("answer", (call,), kind="llm")
        registry.observe(RunPath(app="known", stages=(stage,), run_id=f"k{i}"))
    for i in range(6):
        registry.observe(RunPath(app="empty", stages=(), run_id=f"e{i}"))
    empty = registry.get("empty")
    assert empty is not None and empty.runs == 0 and empty.empty_runs == 6
    start = RunState.after(())
    unknown_rank = _rank_s(registry.remaining_demand("never-seen", start))
    empty_rank = _rank_s(registry.remaining_demand("empty", start))
    assert unknown_rank > 0.5  # the pooled prior: runs of about a second
    assert empty_rank == pytest.approx(unknown_rank, rel=0.1)
    prior = registry.prior()
    assert len(prior.sketch) == 40  # empty runs added no zero-demand sample
