"""The explicit handle API: start_run / start_unit / end produce the right RunPath."""

from __future__ import annotations

import pytest

import hermes_sdk.instrument as hi
from hermes_sdk.errors import GraphError


def test_sequential_units_become_stages_in_order() -> None:
    r = hi.start_run("app", deadline_s=5.0, tenant="t1")
    for name in ("plan", "search", "plan"):
        u = r.start_unit(name, kind="tool")
        u.end()
    path = r.end()
    assert path is not None
    assert [s.node for s in path.stages] == ["plan", "search", "plan"]
    assert all(s.width == 1 and s.kind == "tool" for s in path.stages)
    assert path.app == "app" and path.tenant == "t1" and path.deadline_s == 5.0
    assert path.run_id == r.run_id and not path.failed


def test_overlapping_same_name_is_one_wide_stage() -> None:
    r = hi.start_run("fan")
    first = r.start_unit("plan")
    first.end()
    workers = [r.start_unit("map", kind="llm", backend="small") for _ in range(3)]
    for w in workers:
        w.end()
    r.start_unit("reduce").end()
    path = r.end()
    assert path is not None
    assert [(s.node, s.width) for s in path.stages] == [("plan", 1), ("map", 3), ("reduce", 1)]
    mapped = path.stages[1]
    assert mapped.kind == "llm" and mapped.backend == "small"
    assert mapped.latency_s is not None and mapped.latency_s <= mapped.service_s + 1e-9


def test_overlapping_different_names_form_sorted_composite() -> None:
    r = hi.start_run("mix")
    b = r.start_unit("web", kind="tool")
    a = r.start_unit("docs", kind="retriever")
    b.end()
    c = r.start_unit("web", kind="tool")  # still overlaps a: joins the same stage
    a.end()
    c.end()
    path = r.end()
    assert path is not None
    assert len(path.stages) == 1
    stage = path.stages[0]
    assert stage.node == "docs|web" and stage.width == 3 and stage.kind == "custom"


def test_nested_tokens_roll_up_and_llm_kind_is_lent_to_custom_parent() -> None:
    r = hi.start_run("agent")
    step = r.start_unit("step")
    call1 = r.start_unit("chat", kind="llm", backend="gpt", parent=step, input_tokens=10)
    call1.record(output_tokens=5)
    call1.end()
    call2 = r.start_unit("chat", kind="llm", backend="other", parent=step)
    call2.record(input_tokens=7, output_tokens=3)
    call2.end()
    step.end()
    path = r.end()
    assert path is not None
    (stage,) = path.stages
    assert stage.node == "step" and stage.kind == "llm" and stage.backend == "gpt"
    (call,) = stage.calls
    assert (call.input_tokens, call.output_tokens) == (17, 8)


def test_failed_unit_and_failed_run() -> None:
    r = hi.start_run("f")
    r.start_unit("a").end(failed=True)
    path = r.end(failed=True)
    assert path is not None and path.failed and path.stages[0].calls[0].failed


def test_end_is_idempotent_and_open_units_are_cut() -> None:
    r = hi.start_run("cut")
    u = r.start_unit("slow")
    path = r.end()
    assert path is not None and path.stages[0].node == "slow"
    assert r.end() is None
    u.end()
    u.end()  # idempotent
    assert u.ended


def test_empty_run_has_no_stages() -> None:
    path = hi.start_run("empty").end()
    assert path is not None and path.stages == ()


def test_parent_from_another_run_is_ignored() -> None:
    r1 = hi.start_run("one")
    r2 = hi.start_run("two")
    p = r1.start_unit("p")
    child = r2.start_unit("c", parent=p)
    assert child.parent is None and child.root is child
    child.end()
    p.end()
    path2 = r2.end()
    assert path2 is not None and [s.node for s in path2.stages] == ["c"]


def test_invalid_names_raise_graph_error() -> None:
    r = hi.start_run("x")
    with pytest.raises(GraphError):
        r.start_unit("")
    with pytest.raises(GraphError):
        r.start_unit("ok", kind="banana")  # type: ignore[arg-type]
    with pytest.raises(GraphError):
        hi.start_run("bad\x00name")


def test_disabled_runs_are_inert() -> None:
    hi.configure(store="memory://", enabled=False)
    r = hi.start_run("off")
    u = r.start_unit("a")
    u.end()
    assert r.end() is None and r.units == []


def test_unit_hints_carry_identity() -> None:
    r = hi.start_run("h", deadline_s=3.0)
    u = r.start_unit("draft", kind="llm")
    h = u.hints()
    assert (h.app, h.run_id, h.unit, h.kind, h.deadline_s) == ("h", r.run_id, "draft", "llm", 3.0)
    assert h.headers()["X-Hermes-Unit"] == "draft"
    u.end()
    r.end()


def test_record_ignores_invalid_values() -> None:
    r = hi.start_run("rec")
    u = r.start_unit("a", kind="llm")
    u.record(input_tokens=-1, output_tokens="many")  # type: ignore[arg-type]
    u.record(input_tokens=True, output_tokens=10**12)  # type: ignore[arg-type]
    u.record(input_tokens=3)
    u.end()
    path = r.end()
    assert path is not None
    assert (path.stages[0].calls[0].input_tokens, path.stages[0].calls[0].output_tokens) == (
        3,
        None,
    )


def test_units_started_after_run_end_are_detached() -> None:
    sink = hi.ListSink()
    hi.configure(store="memory://", sink=sink)
    r = hi.start_run("late")
    r.start_unit("a").end()
    r.end()
    late = r.start_unit("b")
    late.end()
    assert [u.name for u in r.units] == ["a"]
    assert hi.flush(10)
    assert [e["type"] for e in sink.events] == ["run_start", "unit_start", "unit_end", "run_end"]


def test_hints_predict_output_tokens_and_rank_after_learning() -> None:
    for _ in range(20):
        r = hi.start_run("learned")
        u = r.start_unit("chat", kind="llm")
        u.record(input_tokens=5, output_tokens=42)
        u.end()
        r.end()
    assert hi.flush(10)  # learning runs in the background: hints come after it
    r = hi.start_run("learned")
    u = r.start_unit("chat", kind="llm")
    h = u.hints()
    assert h.predicted_output_tokens == 42
    assert h.rank_s is not None and h.remaining_p50_s is not None
    assert u.hints() is h  # cached per unit
    u.end()
    r.end()


def test_many_parallel_names_get_a_stable_shortened_composite() -> None:
    r = hi.start_run("wide")
    units = [r.start_unit(f"tool_{i:03d}_with_a_rather_long_descriptive_name") for i in range(20)]
    for u in units:
        u.end()
    path = r.end()
    assert path is not None and len(path.stages) == 1
    node = path.stages[0].node
    assert len(node) <= 256 and "|#" in node and path.stages[0].width == 20
    from hermes_sdk.instrument.stages import composite_name

    assert composite_name({u.name for u in units}) == node  # deterministic
