"""Every callable shape is recorded with the right name, kind, parent and timing."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import pytest

import hermes_sdk.instrument as hi
from hermes_sdk.graph.records import RunPath, RunState
from hermes_sdk.instrument._context import CURRENT_RUN, CURRENT_UNIT


def nodes(path: RunPath | None) -> list[str]:
    assert path is not None
    return [s.node for s in path.stages]


def assert_clean_context() -> None:
    assert CURRENT_UNIT.get() is None


@hi.llm(backend="gpt-small", name="draft")
def draft(q: str, *, n: int = 1) -> str:
    """Draft an answer."""
    return q * n


@hi.tool
async def search(q: str) -> list[str]:
    """Search the web."""
    await asyncio.sleep(0)
    return [q]


@hi.retriever
def fetch(k: int) -> Iterator[int]:
    yield from range(k)


@hi.unit(kind="dnn")
async def stream(k: int) -> AsyncIterator[int]:
    for i in range(k):
        await asyncio.sleep(0)
        yield i


def test_hints_inside_a_unit() -> None:
    @hi.llm(backend="b")
    def ask() -> object:
        return hi.current_hints()

    with hi.run("hq", deadline_s=2.0) as r:
        h = ask()
    assert h is not None and (h.app, h.run_id, h.unit, h.kind) == ("hq", r.run_id, "ask", "llm")
    assert h.headers()["X-Hermes-Deadline"] == "2"
    assert h.rank_s is not None and h.rank_s > 0


def test_sync_function_metadata_and_record() -> None:
    assert draft.__name__ == "draft" and draft.__doc__ == "Draft an answer."
    assert inspect.signature(draft) == inspect.signature(draft.__wrapped__)  # type: ignore[attr-defined]
    with hi.run("qa") as r:
        assert draft("x", n=2) == "xx"
    assert_clean_context()
    path = r.path
    assert path is not None and nodes(path) == ["draft"]
    stage = path.stages[0]
    assert stage.kind == "llm" and stage.backend == "gpt-small" and stage.width == 1
    assert stage.calls[0].service_s > 0


async def test_coroutine_is_recorded() -> None:
    assert inspect.iscoroutinefunction(search)
    async with hi.run("qa") as r:
        assert await search("q") == ["q"]
    path = r.path
    assert nodes(path) == ["search"] and path is not None and path.stages[0].kind == "tool"


def test_generator_measured_until_exhausted_and_send_preserved() -> None:
    assert inspect.isgeneratorfunction(fetch)
    with hi.run("qa") as r:
        seen = []
        for i in fetch(3):
            assert not r.units[0].ended  # still measuring while the consumer holds items
            assert CURRENT_UNIT.get() is None  # the consumer is not inside the unit
            seen.append(i)
        assert r.units[0].ended and not r.units[0].failed
    assert seen == [0, 1, 2] and nodes(r.path) == ["fetch"]

    @hi.unit
    def echo() -> Iterator[int]:
        got = yield 1
        try:
            yield got * 10
        except KeyError:
            yield -1
        return 99

    with hi.run("gen"):
        g = echo()
        assert next(g) == 1
        assert g.send(4) == 40
        assert g.throw(KeyError("k")) == -1
        with pytest.raises(StopIteration) as stop:
            next(g)
        assert stop.value.value == 99


def test_generator_closed_early_is_not_failed() -> None:
    cleaned = []

    @hi.tool
    def items() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            cleaned.append(CURRENT_UNIT.get())

    with hi.run("gen") as r:
        for i in items():
            if i == 2:
                break
    assert cleaned and cleaned[0] is r.units[0]  # the inner finally ran inside its unit
    assert r.units[0].ended and not r.units[0].failed
    assert_clean_context()


def test_generator_error_is_reraised_unchanged() -> None:
    boom = ValueError("boom")

    @hi.tool
    def bad() -> Iterator[int]:
        yield 1
        raise boom

    with pytest.raises(ValueError) as err, hi.run("gen") as r:
        list(bad())
    assert err.value is boom
    assert r.path is not None and r.path.failed and r.path.stages[0].calls[0].failed
    assert_clean_context()


async def test_async_generator_full_and_closed_early() -> None:
    assert inspect.isasyncgenfunction(stream)
    async with hi.run("s") as r:
        assert [i async for i in stream(3)] == [0, 1, 2]
        agen = stream(10)
        async for i in agen:
            if i == 1:
                break
        await agen.aclose()
    path = r.path
    assert path is not None and nodes(path) == ["stream", "stream"]
    assert path.stages[0].kind == "dnn" and not any(c.failed for s in path.stages for c in s.calls)


async def test_async_generator_asend_and_athrow() -> None:
    @hi.unit
    async def acc() -> AsyncIterator[int]:
        total = 0
        while True:
            try:
                got = yield total
            except KeyError:
                got = 100
            total += got

    async with hi.run("s"):
        g = acc()
        assert await g.asend(None) == 0
        assert await g.asend(5) == 5
        assert await g.athrow(KeyError()) == 105
        await g.aclose()


def test_methods_classmethods_staticmethods_either_order() -> None:
    class Agent:
        factor = 3

        @hi.tool
        def act(self, x: int) -> int:
            return x * self.factor

        @hi.tool
        @classmethod
        def make(cls) -> int:
            return cls.factor

        @classmethod
        @hi.tool
        def make2(cls) -> int:
            return cls.factor + 1

        @hi.tool
        @staticmethod
        def util(x: int) -> int:
            return x + 1

        @staticmethod
        @hi.tool
        def util2(x: int) -> int:
            return x + 2

    a = Agent()
    with hi.run("agent") as r:
        assert a.act(2) == 6
        assert Agent.make() == 3 and a.make() == 3
        assert Agent.make2() == 4
        assert Agent.util(1) == 2 and a.util2(1) == 3
    assert nodes(r.path) == [
        "Agent.act",
        "Agent.make",
        "Agent.make",
        "Agent.make2",
        "Agent.util",
        "Agent.util2",
    ]


def test_exception_reraised_unchanged_with_traceback() -> None:
    err = RuntimeError("x")

    @hi.llm
    def failing() -> None:
        raise err

    with pytest.raises(RuntimeError) as info, hi.run("e") as r:
        failing()
    assert info.value is err
    assert info.traceback[-1].name == "failing"
    assert r.units[0].failed and r.path is not None and r.path.failed
    assert_clean_context()
    assert CURRENT_RUN.get() is None


async def test_cancellation_leaves_no_dangling_context() -> None:
    started = asyncio.Event()

    @hi.llm
    async def slow() -> None:
        started.set()
        await asyncio.sleep(3600)

    async with hi.run("c") as r:
        task = asyncio.create_task(slow())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert CURRENT_UNIT.get() is None
    assert r.units[0].failed and r.units[0].ended
    assert_clean_context()


async def test_nested_units_have_parents_and_gather_forms_a_wide_stage() -> None:
    barrier = asyncio.Barrier(3)

    @hi.llm(backend="m")
    async def call(i: int) -> dict[str, object]:
        await barrier.wait()  # all three are running at once
        return {"usage": {"prompt_tokens": i, "completion_tokens": 1}}

    @hi.unit
    async def step() -> None:
        await asyncio.gather(call(1), call(2), call(3))

    async with hi.run("nest") as r:
        await step()
        async with asyncio.TaskGroup() as tg:
            for i in range(3):
                tg.create_task(call(i))
    step_unit = r.units[0]
    assert all(u.parent is step_unit for u in r.units[1:4])
    path = r.path
    assert path is not None
    assert [(s.node, s.width, s.kind) for s in path.stages] == [
        ("step", 1, "llm"),
        ("call", 3, "llm"),
    ]
    assert path.stages[0].calls[0].input_tokens == 6
    assert path.stages[0].calls[0].output_tokens == 3


def test_usage_capture_shapes_and_explicit_record_wins() -> None:
    openai_like = SimpleNamespace(usage=SimpleNamespace(prompt_tokens=11, completion_tokens=7))
    lc_like = SimpleNamespace(usage_metadata={"input_tokens": 5, "output_tokens": 2})
    values: list[object] = [
        openai_like,
        {"usage": {"input_tokens": 3, "output_tokens": 1}},
        lc_like,
    ]

    @hi.llm
    def model(i: int) -> object:
        return values[i]

    @hi.llm
    def explicit() -> object:
        hi.record(input_tokens=100, output_tokens=50)
        return openai_like

    with hi.run("u") as r:
        for i in range(3):
            model(i)
        explicit()
    assert r.path is not None
    tokens = [(s.calls[0].input_tokens, s.calls[0].output_tokens) for s in r.path.stages]
    assert tokens == [(11, 7), (3, 1), (5, 2), (100, 50)]


def test_streamed_usage_last_chunk_wins() -> None:
    @hi.llm
    def chat() -> Iterator[object]:
        yield SimpleNamespace(usage=None, text="a")
        yield SimpleNamespace(usage=SimpleNamespace(prompt_tokens=9, completion_tokens=4))

    with hi.run("s") as r:
        list(chat())
    assert r.path is not None
    assert (r.path.stages[0].calls[0].input_tokens, r.path.stages[0].calls[0].output_tokens) == (
        9,
        4,
    )


async def test_calls_outside_runs_work_and_are_not_recorded() -> None:
    assert draft("a") == "a"
    assert await search("q") == ["q"]
    assert list(fetch(2)) == [0, 1]
    assert [i async for i in stream(2)] == [0, 1]
    hi.record(input_tokens=1)  # no unit: no-op
    assert hi.current_hints() is None
    assert hi.stats().runs_completed == 0


def test_run_as_decorator_one_run_per_call() -> None:
    @hi.run("dec")
    def handle(x: int) -> int:
        return draft("y") and x

    @hi.run("dec-gen")
    def gen() -> Iterator[int]:
        yield draft("y") and 1

    assert handle(1) == 1 and handle(2) == 2
    assert list(gen()) == [1]
    assert hi.graph("dec").runs == 2 and hi.graph("dec-gen").runs == 1


async def test_async_run_decorator() -> None:
    @hi.run("adec", deadline_s=9.0)
    async def handle() -> int:
        await search("q")
        h = hi.current_hints()
        assert h is not None and h.deadline_s == 9.0 and h.unit is None
        return 1

    assert await handle() == 1
    assert hi.graph("adec").runs == 1


def test_sub_run_is_own_run_and_one_unit_of_outer() -> None:
    with hi.run("outer", tenant="t") as outer:
        draft("a")
        with hi.run("inner") as inner:
            draft("b")
            draft("c")
        draft("d")
    assert nodes(inner.path) == ["draft", "draft"]
    assert inner.tenant == "t"
    assert nodes(outer.path) == ["draft", "inner", "draft"]
    assert hi.graph("inner", tenant="t").runs == 1


def test_disabled_env_makes_decorators_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERMES_DISABLED", "1")

    def f() -> int:
        return 1

    assert hi.llm(f) is f and hi.tool(backend="x")(f) is f


def test_configure_disabled_records_nothing() -> None:
    hi.configure(store="memory://", enabled=False)
    with hi.run("off") as r:
        assert draft("z") == "z"
        assert CURRENT_RUN.get() is None
    assert r.end() is None and r.path is None


def test_run_decorated_generator_owns_only_its_own_steps() -> None:
    @hi.tool
    def inside() -> int:
        return 1

    @hi.tool
    def consumer_side() -> int:
        return 2

    @hi.run("streamer")
    def stream_answer() -> Iterator[int]:
        yield inside()
        yield inside()

    with hi.run("outer") as outer:
        for _ in stream_answer():
            consumer_side()  # belongs to "outer", not to the generator's run
    # The sub-run's unit in "outer" spans the whole iteration, so the consumer's calls overlap it.
    assert nodes(outer.path) == ["consumer_side|streamer"]
    assert [u.name for u in outer.units] == ["streamer", "consumer_side", "consumer_side"]
    inner = hi.graph("streamer")
    assert inner.runs == 1
    assert inner.next_stage_probs(RunState()) == {"inside": 1.0}


async def test_run_decorated_async_generator_closed_early() -> None:
    @hi.tool
    async def inside() -> int:
        await asyncio.sleep(0)
        return 1

    @hi.run("astreamer")
    async def stream_answer() -> AsyncIterator[int]:
        while True:
            yield await inside()

    agen = stream_answer()
    async for _ in agen:
        assert hi.current_run() is None  # the consumer is outside the generator's run
        break
    await agen.aclose()
    g = hi.graph("astreamer")
    assert g.runs == 1
    path_nodes = g.next_stage_probs(RunState())
    assert path_nodes == {"inside": 1.0}


def test_run_decorator_on_methods_either_order() -> None:
    class Service:
        @hi.run("svc")
        def handle(self) -> str:
            return draft("m")

        @hi.run("svc")
        @classmethod
        def handle_cls(cls) -> str:
            return draft("c")

        @staticmethod
        @hi.run("svc")
        def handle_static() -> str:
            return draft("s")

    assert Service().handle() == "m" and Service.handle_cls() == "c"
    assert Service.handle_static() == "s"
    assert hi.graph("svc").runs == 3


def test_partials_are_named_after_their_function_and_classes_are_refused() -> None:
    import functools

    def scale(x: int, factor: int) -> int:
        return x * factor

    triple = hi.tool(functools.partial(scale, factor=3))
    with hi.run("p") as r:
        assert triple(2) == 6
    assert nodes(r.path) == ["scale"]

    class Thing:
        pass

    with pytest.raises(TypeError):
        hi.tool(Thing)
