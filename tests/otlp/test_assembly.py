"""Span-to-unit mapping and run assembly over real OTel SDK spans (official OTLP encoding)."""

from __future__ import annotations

import json

import pytest

from hermes_sdk.graph.records import RunPath
from hermes_sdk.otlp import JSON, PROTOBUF, SpanMapping, TraceAssembler, decode
from hermes_sdk.otlp.spans import OtlpDecodeError
from tests.otlp.traces import Traces, chat, otlp_json, protobuf


def learn(
    t: Traces, mapping: SpanMapping | None = None, tenant: str = "default"
) -> tuple[list[RunPath], TraceAssembler]:
    m = mapping or SpanMapping()
    asm = TraceAssembler(m)
    decoded = decode(protobuf(t.take()), PROTOBUF, m)
    out = asm.add(tenant, decoded.spans)
    return out.paths, asm


def nodes(path: RunPath) -> list[str]:
    return [s.node for s in path.stages]


def test_steps_become_stages_with_kind_tokens_and_backend() -> None:
    t = Traces("doc-qa")
    root = t.span("request", 0, None)
    plan = t.span("plan", 0, None, root)
    t.span("chat m1", 0.1, 0.9, plan, chat("m1", 100, 20))
    t.end(plan, 1.0)
    t.span("execute_tool search", 1.0, 1.5, root, {"gen_ai.operation.name": "execute_tool"})
    t.span("http GET", 1.5, 1.6, root)  # plain span with no GenAI inside: not a unit
    t.span("answer", 1.6, 2.0, root, chat("m2", 50, 7))
    t.end(root, 2.0)
    paths, asm = learn(t)
    [path] = paths
    assert path.app == "doc-qa" and not path.failed
    assert nodes(path) == ["plan", "execute_tool search", "answer"]
    plan_stage, tool_stage, answer = path.stages
    assert (plan_stage.kind, plan_stage.backend) == ("llm", "m1")
    assert plan_stage.calls[0].input_tokens == 100 and plan_stage.calls[0].output_tokens == 20
    assert plan_stage.calls[0].service_s == pytest.approx(1.0)
    assert tool_stage.kind == "tool" and answer.kind == "llm"
    assert path.run_id == format(root.get_span_context().trace_id, "032x")
    assert asm.stats.spans_ignored == {"not_a_unit": 1}
    assert asm.stats.apps == {"doc-qa": 1}


def test_overlap_under_one_parent_is_one_stage() -> None:
    t = Traces()
    root = t.span("run", 0, None)
    for i in range(3):  # fan-out: same name, overlapping
        t.span("summarise", 0.0 + i * 0.01, 1.0, root, chat())
    t.span("a", 1.0, 2.0, root, chat())  # different names, overlapping: composite node
    t.span("b", 1.5, 2.5, root, chat())
    t.end(root, 3.0)
    [path], _ = learn(t)
    assert nodes(path) == ["summarise", "a|b"]
    assert path.stages[0].width == 3
    assert path.stages[1].latency_s == pytest.approx(1.5)


def test_nested_instrumentations_count_tokens_once_and_failed_spans() -> None:
    t = Traces()
    root = t.span("run", 0, None, error=True)
    node = t.span("agent", 0, None, root, {"openinference.span.kind": "CHAIN"})
    llm = t.span(
        "ChatOpenAI",
        0,
        None,
        node,
        {
            "openinference.span.kind": "LLM",
            "llm.token_count.prompt": 30,
            "llm.token_count.completion": 4,
        },
    )
    t.span("chat m", 0.1, 0.8, llm, chat("m", 30, 4))  # the same call, one layer down
    t.end(llm, 0.9)
    t.end(node, 1.0)
    t.span("tools", 1.0, 1.2, root, {"traceloop.span.kind": "tool"}, error=True)
    t.end(root, 1.3)
    [path], _ = learn(t)
    assert nodes(path) == ["agent", "tools"]
    assert path.stages[0].calls[0].input_tokens == 30
    assert path.stages[0].kind == "llm"
    assert path.stages[1].calls[0].failed and path.failed


def test_configured_kinds_unit_attribute_and_app_attribute() -> None:
    t = Traces("svc", resource={"app.name": "billing"})
    root = t.span("run", 0, None)
    t.span("lookup", 0, 1, root, {"node": "fetch-customer"})
    t.span("chat x", 1, 2, root, {**chat(), "node": "draft"})
    t.end(root, 2)
    m = SpanMapping(
        kind_by_span_name={"lookup": "retriever"}, app_attribute="app.name", unit_attribute="node"
    )
    [path], _ = learn(t, m)
    assert path.app == "billing"
    assert nodes(path) == ["fetch-customer", "draft"]
    assert path.stages[0].kind == "retriever"


def test_configured_root_span_splits_a_trace_into_runs() -> None:
    t = Traces()
    server = t.span("worker loop", 0, None)
    for i in range(2):
        job = t.span("job", i * 2, None, server)
        t.span("chat m", i * 2, i * 2 + 1, job, chat())
        t.end(job, i * 2 + 1.5)
    t.span("chat m", 5, 6, server, chat())  # outside any job: not a run
    t.end(server, 6)
    paths, asm = learn(t, SpanMapping(root_span_name="job"))
    assert [nodes(p) for p in paths] == [["chat m"], ["chat m"]]
    trace_id = format(server.get_span_context().trace_id, "032x")
    assert all(p.run_id.startswith(trace_id + ":") for p in paths)
    assert len({p.run_id for p in paths}) == 2
    assert asm.stats.spans_ignored == {"outside_root_span": 2}


def test_root_alone_is_a_one_stage_run() -> None:
    t = Traces()
    t.span("chat m", 0, 1, None, chat())
    [path], _ = learn(t)
    assert nodes(path) == ["chat m"] and path.stages[0].kind == "llm"


def test_runs_across_requests_root_last_and_late_spans_ignored() -> None:
    t = Traces()
    m = SpanMapping()
    asm = TraceAssembler(m)
    root = t.span("run", 0, None)
    t.span("plan", 0, 1, root, chat())
    assert asm.add("default", decode(protobuf(t.take()), PROTOBUF, m).spans).paths == []
    assert asm.open_traces == 1
    t.end(root, 2)
    out = asm.add("default", decode(protobuf(t.take()), PROTOBUF, m).spans)
    assert [nodes(p) for p in out.paths] == [["plan"]] and asm.open_traces == 0
    t.span("straggler", 2.5, 3, root, chat())
    assert asm.add("default", decode(protobuf(t.take()), PROTOBUF, m).spans).paths == []
    assert asm.stats.spans_ignored == {"late": 1}


def test_idle_trace_is_learned_as_failed_without_its_root() -> None:
    now = [0.0]
    m = SpanMapping(idle_timeout_s=5)
    asm = TraceAssembler(m, clock=lambda: now[0])
    t = Traces()
    root = t.span("run", 0, None)  # never ends
    t.span("plan", 0, 1, root, chat())
    t.span("answer", 1, 2, root, chat())
    asm.add("default", decode(protobuf(t.take()), PROTOBUF, m).spans)
    now[0] = 4.0
    assert asm.expire().paths == []
    now[0] = 5.5
    [path] = asm.expire().paths
    assert nodes(path) == ["plan", "answer"] and path.failed
    assert asm.stats.runs_timed_out == 1 and asm.open_traces == 0


def test_tenants_do_not_share_traces() -> None:
    m = SpanMapping()
    asm = TraceAssembler(m)
    t = Traces()
    root = t.span("run", 0, None)
    t.span("plan", 0, 1, root, chat())
    asm.add("a", decode(protobuf(t.take()), PROTOBUF, m).spans)
    t.end(root, 2)
    out = asm.add("b", decode(protobuf(t.take()), PROTOBUF, m).spans)
    assert out.paths == []  # b's root alone: no unit of b's to learn
    assert asm.stats.runs_not_learned == {"no_units": 1}
    assert asm.open_traces == 1  # tenant a's half stays open until its idle timeout
    [path] = asm.flush().paths
    assert path.tenant == "a" and nodes(path) == ["plan"] and path.failed


def test_oversized_trace_is_dropped_and_counted_never_stuck() -> None:
    m = SpanMapping(max_spans_per_trace=50)
    asm = TraceAssembler(m)
    t = Traces()
    root = t.span("run", 0, None)
    for i in range(120):
        t.span("step", i, i + 0.5, root, chat())
    first = t.take()
    asm.add("default", decode(protobuf(first[:60]), PROTOBUF, m).spans)
    asm.add("default", decode(protobuf(first[60:]), PROTOBUF, m).spans)
    t.end(root, 200)
    out = asm.add("default", decode(protobuf(t.take()), PROTOBUF, m).spans)
    assert out.paths == [] and asm.open_traces == 0
    assert asm.stats.spans_ignored == {"trace_too_large": 121}
    assert asm.stats.runs_not_learned == {"trace_too_large": 1}


def test_open_trace_limit_closes_the_oldest() -> None:
    m = SpanMapping(max_open_traces=2)
    asm = TraceAssembler(m)
    for _ in range(3):
        t = Traces()
        root = t.span("run", 0, None)
        t.span("plan", 0, 1, root, chat())
        asm.add("default", decode(protobuf(t.take()), PROTOBUF, m).spans)
    assert asm.open_traces == 2 and asm.stats.runs_timed_out == 1


def test_json_encoding_decodes_to_the_same_spans() -> None:
    t = Traces()
    root = t.span("run", 0, None)
    t.span("plan", 0, 1, root, chat("m", 3, 4))
    t.end(root, 2)
    spans = t.take()
    m = SpanMapping()
    from_pb = decode(protobuf(spans), PROTOBUF, m).spans
    from_json = decode(json.dumps(otlp_json(spans)).encode(), JSON, m).spans
    assert from_pb == from_json and len(from_pb) == 2


def test_malformed_ids_and_times_are_counted_not_kept() -> None:
    t = Traces()
    root = t.span("run", 0, None)
    t.span("plan", 0, 1, root, chat())
    t.end(root, 2)
    doc = otlp_json(t.take())
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    bad_id = dict(spans[0], spanId="00" * 8)
    bad_time = dict(spans[0], spanId="ab" * 8, endTimeUnixNano="1")
    bad_len = dict(spans[0], spanId="abcd")
    spans.extend([bad_id, bad_time, bad_len])
    result = decode(json.dumps(doc).encode(), JSON, SpanMapping())
    assert len(result.spans) == 2
    assert result.ignored == {"bad_ids": 2, "bad_times": 1}
    with pytest.raises(OtlpDecodeError):
        decode(b"\xff\xff\xff garbage", PROTOBUF, SpanMapping())
    with pytest.raises(OtlpDecodeError):
        decode(
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            JSON,
            SpanMapping(),
        )
    with pytest.raises(OtlpDecodeError):
        decode(b'{"resourceSpans": 3}', JSON, SpanMapping())
