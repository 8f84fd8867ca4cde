"""A decorated run becomes one OTel span per unit, with GenAI and hermes attributes and parents."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import hermes_sdk.instrument as hi
from hermes_sdk import otel
from hermes_sdk.instrument import observers


@pytest.fixture(autouse=True)
def fresh_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HERMES_DISABLED", raising=False)
    monkeypatch.setenv("HERMES_STORE", "memory://")
    hi.configure(store="memory://", enabled=True)
    yield
    otel.uninstrument()
    hi.configure(store="memory://", enabled=True)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    otel.instrument(tracer_provider=provider)
    return memory


@hi.llm(backend="gpt-small", name="plan")
def plan(q: str) -> str:
    hi.record(input_tokens=120, output_tokens=30)
    return q


@hi.retriever(name="fetch")
def fetch(q: str) -> list[str]:
    return [q, q]


@hi.tool(name="search")
async def search(q: str) -> list[str]:
    await asyncio.sleep(0.002)
    return fetch(q)


@hi.llm(backend="gpt-small", name="answer")
def answer(docs: list[str]) -> str:
    hi.record(input_tokens=400, output_tokens=80)
    return "".join(docs)


@hi.run("doc-qa")
async def doc_qa(q: str) -> str:
    return answer(await search(plan(q)))


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def test_one_span_per_unit_with_parent_links_and_attributes(
    exporter: InMemorySpanExporter,
) -> None:
    await doc_qa("q")
    finished = exporter.get_finished_spans()
    assert len(finished) == 5  # run + plan + search + fetch (nested) + answer
    run = next(s for s in finished if s.name == "invoke_workflow doc-qa")
    by_unit = {s.attributes["hermes.unit"]: s for s in finished if s is not run}  # type: ignore[index]
    assert set(by_unit) == {"plan", "search", "fetch", "answer"}

    # Parent links: run -> top-level units -> nested unit; one trace.
    assert _parent_id(run) is None
    for name in ("plan", "search", "answer"):
        assert _parent_id(by_unit[name]) == _span_id(run), name
    assert _parent_id(by_unit["fetch"]) == _span_id(by_unit["search"])
    assert len({s.context.trace_id for s in finished if s.context is not None}) == 1

    # GenAI semantic conventions + hermes attributes.
    run_id = run.attributes["hermes.run_id"]  # type: ignore[index]
    assert run.attributes["gen_ai.operation.name"] == "invoke_workflow"  # type: ignore[index]
    assert run.attributes["hermes.app"] == "doc-qa"  # type: ignore[index]
    assert run.attributes["hermes.stages"] == 3  # type: ignore[index]
    p = by_unit["plan"].attributes
    assert p is not None
    assert p["gen_ai.operation.name"] == "chat"
    assert p["gen_ai.request.model"] == "gpt-small"
    assert p["gen_ai.usage.input_tokens"] == 120
    assert p["gen_ai.usage.output_tokens"] == 30
    assert (p["hermes.app"], p["hermes.run_id"], p["hermes.kind"]) == ("doc-qa", run_id, "llm")
    assert by_unit["plan"].kind is SpanKind.CLIENT
    s = by_unit["search"].attributes
    assert s is not None
    assert s["gen_ai.operation.name"] == "execute_tool"
    assert s["gen_ai.tool.name"] == "search"
    assert "gen_ai.request.model" not in s
    assert by_unit["search"].kind is SpanKind.INTERNAL
    assert by_unit["fetch"].attributes["gen_ai.operation.name"] == "retrieval"  # type: ignore[index]
    assert by_unit["answer"].attributes["gen_ai.usage.output_tokens"] == 80  # type: ignore[index]

    # Times nest: children inside their parents, the tool's duration covers its sleep.
    def inside(child: ReadableSpan, parent: ReadableSpan) -> bool:
        assert child.start_time and child.end_time and parent.start_time and parent.end_time
        return parent.start_time <= child.start_time <= child.end_time <= parent.end_time

    assert inside(by_unit["fetch"], by_unit["search"])
    for name in ("plan", "search", "answer"):
        assert inside(by_unit[name], run)
    search_span = by_unit["search"]
    assert search_span.end_time is not None and search_span.start_time is not None
    assert search_span.end_time - search_span.start_time >= 2_000_000  # >= the 2 ms sleep
    assert s["hermes.service_s"] >= 0.002


async def test_rank_and_remaining_demand_once_the_graph_has_learned(
    exporter: InMemorySpanExporter,
) -> None:
    await doc_qa("first")
    assert len(exporter.get_finished_spans()) == 5
    for _ in range(20):
        await doc_qa("q")
    assert hi.flush(10.0)
    exporter.clear()
    await doc_qa("q")
    units = {
        s.attributes["hermes.unit"]: s.attributes  # type: ignore[index]
        for s in exporter.get_finished_spans()
        if s.attributes and "hermes.unit" in s.attributes
    }
    plan_attrs, answer_attrs = units["plan"], units["answer"]
    assert plan_attrs["hermes.remaining_p50_s"] > 0  # type: ignore[operator]
    assert plan_attrs["hermes.rank_s"] > 0  # type: ignore[operator]
    assert plan_attrs["hermes.remaining_p95_s"] >= plan_attrs["hermes.remaining_p50_s"]  # type: ignore[operator]
    # Later units have less left to do than the first one.
    assert answer_attrs["hermes.remaining_p50_s"] <= plan_attrs["hermes.remaining_p50_s"]  # type: ignore[operator]
    assert plan_attrs["hermes.predicted_output_tokens"] == 30
    # A nested unit shares its top-level unit's hints (same run state, computed once).
    assert units["fetch"]["hermes.rank_s"] == units["search"]["hermes.rank_s"]
    assert "hermes.predicted_output_tokens" not in units["fetch"]


def test_failed_unit_and_run_are_error_spans(exporter: InMemorySpanExporter) -> None:
    @hi.tool(name="flaky")
    def flaky() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError), hi.run("fails"):
        flaky()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["execute_tool flaky"].status.status_code is StatusCode.ERROR
    assert spans["invoke_workflow fails"].status.status_code is StatusCode.ERROR


def test_sub_run_span_hangs_under_the_outer_runs_unit(exporter: InMemorySpanExporter) -> None:
    with hi.run("outer"):
        plan("x")
        with hi.run("inner"):
            plan("y")
    spans = exporter.get_finished_spans()
    outer = next(s for s in spans if s.name == "invoke_workflow outer")
    inner = next(s for s in spans if s.name == "invoke_workflow inner")
    bridge = next(
        s
        for s in spans
        if s.attributes is not None
        and s.attributes.get("hermes.unit") == "inner"
        and s.attributes.get("hermes.app") == "outer"
    )
    assert _parent_id(bridge) == _span_id(outer)
    assert _parent_id(inner) == _span_id(bridge)
    inner_plan = next(
        s
        for s in spans
        if s.attributes is not None
        and s.attributes.get("hermes.app") == "inner"
        and s.attributes.get("hermes.unit") == "plan"
    )
    assert _parent_id(inner_plan) == _span_id(inner)
    assert len(spans) == 5  # outer, outer.plan, bridge unit "inner", inner, inner.plan


def test_units_open_at_run_end_are_cut_and_uninstrument_stops_export(
    exporter: InMemorySpanExporter,
) -> None:
    run = hi.start_run("explicit")
    run.start_unit("never-ended", kind="custom")
    run.end()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["never-ended"].attributes["hermes.cut_at_run_end"] is True  # type: ignore[index]
    assert spans["never-ended"].end_time == spans["invoke_workflow explicit"].end_time

    pending = hi.start_run("pending")
    otel.uninstrument()
    assert not observers.OBSERVERS
    names = {s.name for s in exporter.get_finished_spans()}
    assert "invoke_workflow pending" in names  # closed by uninstrument, not leaked
    pending.end()
    exporter.clear()
    with hi.run("quiet"):
        plan("z")
    assert exporter.get_finished_spans() == ()


def test_disabled_instrumentation_makes_no_spans(exporter: InMemorySpanExporter) -> None:
    hi.configure(store="memory://", enabled=False)
    with hi.run("off"):
        plan("x")
    assert exporter.get_finished_spans() == ()


def test_hints_off_skips_rank_attributes() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    otel.instrument(tracer_provider=provider, hints=False)
    otel.instrument(tracer_provider=provider, hints=False)  # idempotent: one observer
    assert len(observers.OBSERVERS) == 1
    with hi.run("nohints"):
        plan("x")
    for span in memory.get_finished_spans():
        assert span.attributes is not None
        assert not any(k.startswith("hermes.rank") for k in span.attributes)
    assert len(memory.get_finished_spans()) == 2


def test_core_imports_and_runs_without_opentelemetry() -> None:
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, Block())
        import hermes_sdk as hermes
        import hermes_sdk.server, hermes_sdk.cli  # noqa: F401
        hermes.configure(store="memory://", enabled=True)

        @hermes.llm(backend="m")
        def step():
            return 1

        with hermes.run("no-otel"):
            step()
        assert hermes.flush(10)
        assert hermes.graph("no-otel").runs == 1
        try:
            import hermes_sdk.otel
        except ImportError as exc:
            assert "hermes-sdk[otel]" in str(exc), exc
        else:
            raise AssertionError("hermes_sdk.otel imported without opentelemetry")
        assert not any(m.startswith("opentelemetry") for m in sys.modules)
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
