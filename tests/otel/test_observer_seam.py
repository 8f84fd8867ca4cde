"""The instrumentation's observer seam: every lifecycle event, in order, and failures contained."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hermes_sdk.instrument as hi
from hermes_sdk.graph.records import RunPath
from hermes_sdk.instrument import RunHandle, UnitHandle, observers


class Recording:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def run_started(self, run: RunHandle) -> None:
        self.events.append(("run_started", run.app))

    def unit_started(self, unit: UnitHandle) -> None:
        self.events.append(("unit_started", unit.name))

    def unit_ended(self, unit: UnitHandle) -> None:
        self.events.append(("unit_ended", unit.name))

    def run_ended(self, run: RunHandle, path: RunPath | None) -> None:
        self.events.append(("run_ended", f"{run.app}:{len(path.stages) if path else None}"))


class Broken:
    def run_started(self, run: RunHandle) -> None:
        raise RuntimeError("exporter bug")

    unit_started = unit_ended = run_started  # type: ignore[assignment]

    def run_ended(self, run: RunHandle, path: RunPath | None) -> None:
        raise RuntimeError("exporter bug")


@pytest.fixture(autouse=True)
def fresh_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HERMES_DISABLED", raising=False)
    hi.configure(store="memory://", enabled=True)
    yield
    for obs in observers.OBSERVERS:
        hi.remove_unit_observer(obs)
    hi.configure(store="memory://", enabled=True)


@hi.tool(name="lookup")
def lookup() -> int:
    return inner()


@hi.unit(name="inner")
def inner() -> int:
    return 1


def test_observer_sees_every_event_in_order_and_broken_ones_are_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = Recording()
    hi.add_unit_observer(Broken())
    hi.add_unit_observer(rec)
    hi.add_unit_observer(rec)  # registering twice is a no-op
    assert len(observers.OBSERVERS) == 2
    with hi.run("seam"):
        assert lookup() == 1
    assert rec.events == [
        ("run_started", "seam"),
        ("unit_started", "lookup"),
        ("unit_started", "inner"),
        ("unit_ended", "inner"),
        ("unit_ended", "lookup"),
        ("run_ended", "seam:1"),
    ]
    failures = [r for r in caplog.records if "unit observer" in r.getMessage()]
    assert len(failures) == 6  # logged, never raised into the app


def test_removed_or_disabled_means_no_events() -> None:
    rec = Recording()
    hi.add_unit_observer(rec)
    hi.remove_unit_observer(rec)
    hi.remove_unit_observer(rec)  # no-op
    with hi.run("quiet"):
        lookup()
    hi.add_unit_observer(rec)
    hi.configure(store="memory://", enabled=False)
    with hi.run("off"):
        lookup()
    assert rec.events == []
