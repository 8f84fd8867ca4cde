"""The fail-open recorder: wire events, full queue, sink outages, exit flush, fork."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import hermes_sdk.instrument as hi
from hermes_sdk.graph.records import path_from_dict
from hermes_sdk.instrument.recorder import Event, ListSink, Recorder


class BlockingSink:
    """Blocks every send until released: lets a test fill the queue deterministically."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.events: list[Event] = []

    def send(self, events: list[Event]) -> None:
        self.entered.set()
        self.release.wait(30)
        self.events.extend(events)


class FlakySink:
    def __init__(self) -> None:
        self.fail = True
        self.events: list[Event] = []

    def send(self, events: list[Event]) -> None:
        if self.fail:
            raise ConnectionError("scheduler down")
        self.events.extend(events)


@hi.llm(backend="b")
def chat() -> dict[str, object]:
    return {"usage": {"prompt_tokens": 4, "completion_tokens": 2}}


def test_wire_events_match_the_protocol() -> None:
    sink = ListSink()
    hi.configure(store="memory://", sink=sink)
    with hi.run("wire", deadline_s=3.0) as r:
        chat()
    assert hi.flush(10)
    events = sink.events
    assert [e["type"] for e in events] == ["run_start", "unit_start", "unit_end", "run_end"]
    start, ustart, uend, end = events
    assert start == {
        "type": "run_start",
        "run_id": r.run_id,
        "app": "wire",
        "deadline_s": 3.0,
        "ts": start["ts"],
    }
    assert set(ustart) == {"type", "run_id", "unit_id", "node", "kind", "backend", "ts"}
    assert (ustart["node"], ustart["kind"], ustart["backend"]) == ("chat", "llm", "b")
    assert set(uend) == {
        "type",
        "run_id",
        "unit_id",
        "service_s",
        "input_tokens",
        "output_tokens",
        "failed",
        "ts",
    }
    assert uend["unit_id"] == ustart["unit_id"] and uend["failed"] is False
    assert (uend["input_tokens"], uend["output_tokens"]) == (4, 2)
    assert isinstance(start["ts"], float) and start["ts"] <= ustart["ts"] <= uend["ts"]  # type: ignore[operator]
    assert set(end) == {"type", "run_id", "failed", "path"}
    assert path_from_dict(end["path"]) == r.path
    json.dumps(events)  # every event is JSON-able


def test_nested_unit_events_carry_parent_id() -> None:
    sink = ListSink()
    hi.configure(store="memory://", sink=sink)

    @hi.unit
    def step() -> None:
        chat()

    with hi.run("nested"):
        step()
    assert hi.flush(10)
    starts = [e for e in sink.events if e["type"] == "unit_start"]
    assert [e["node"] for e in starts] == ["step", "chat"]
    assert "parent_id" not in starts[0] and starts[1]["parent_id"] == starts[0]["unit_id"]


def test_full_queue_drops_and_counts_without_touching_the_app() -> None:
    sink = BlockingSink()
    rec = Recorder(sink, max_queue=10, batch_size=1, flush_interval_s=0.01)
    rec.emit({"n": -1})
    assert sink.entered.wait(10)  # the flusher is stuck in send with one event
    for i in range(100):
        rec.emit({"n": i})
    stats = rec.stats()
    assert stats.queued == 10 and stats.dropped == 90
    sink.release.set()
    assert rec.flush(10)
    assert len(sink.events) == 11 and rec.stats().sent == 11
    rec.close(1)


def test_app_unaffected_when_queue_full() -> None:
    sink = BlockingSink()
    hi.configure(store="memory://", sink=sink, queue_size=3)
    for _ in range(20):
        with hi.run("busy"):
            assert chat()["usage"]  # type: ignore[index]
    assert hi.graph("busy").runs == 20
    assert hi.stats().events_dropped > 0
    sink.release.set()


def test_sink_outage_logs_once_counts_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    sink = FlakySink()
    rec = Recorder(sink, batch_size=1, flush_interval_s=0.01)
    with caplog.at_level(logging.INFO, logger="hermes_sdk.instrument"):
        for i in range(5):
            rec.emit({"n": i})
            rec.flush(10)
        sink.fail = False
        rec.emit({"n": 5})
        rec.flush(10)
    stats = rec.stats()
    assert stats.send_errors == 5 and stats.lost == 5 and stats.sent == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "recovered" in caplog.text
    rec.close(1)


def test_closed_recorder_refuses_events() -> None:
    rec = Recorder(ListSink())
    rec.close(1)
    rec.emit({"late": True})
    assert rec.stats().dropped == 1


_CHILD = """
import json, sys, time
import hermes_sdk.instrument as hi

class FileSink:
    def __init__(self, path, delay_s):
        self.path, self.delay_s = path, delay_s
    def send(self, events):
        time.sleep(self.delay_s)
        with open(self.path, "a") as f:
            for e in events:
                f.write(json.dumps(e) + "\\n")

out, delay_s = sys.argv[1], float(sys.argv[2])
hi.configure(store="memory://", sink=FileSink(out, delay_s), flush_interval_s=60,
             exit_timeout_s=float(sys.argv[3]))

@hi.tool
def step():
    return 1

for _ in range(5):
    with hi.run("exit-app"):
        step()
print("done", flush=True)
"""


def _child(tmp_path: Path, delay_s: float, exit_timeout_s: float) -> tuple[Path, str]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_CHILD))
    out = tmp_path / "events.jsonl"
    proc = subprocess.run(
        [sys.executable, str(script), str(out), str(delay_s), str(exit_timeout_s)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out, proc.stdout


def test_process_exit_flushes_queued_events(tmp_path: Path) -> None:
    out, stdout = _child(tmp_path, delay_s=0.0, exit_timeout_s=10.0)
    assert "done" in stdout
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 5 * 4
    assert sum(e["type"] == "run_end" for e in events) == 5


def test_process_exit_gives_up_after_timeout(tmp_path: Path) -> None:
    # The sink takes 30 s per batch; exit must not wait for it (subprocess timeout is 60 s).
    out, stdout = _child(tmp_path, delay_s=30.0, exit_timeout_s=0.2)
    assert "done" in stdout and not out.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_starts_with_empty_queue_and_own_flusher(tmp_path: Path) -> None:
    sink = BlockingSink()
    rec = Recorder(sink, batch_size=1, flush_interval_s=0.01)
    rec.emit({"n": 0})
    assert sink.entered.wait(10)
    rec.emit({"parent": True})  # queued in the parent when forking
    marker = tmp_path / "child.json"
    pid = os.fork()
    if pid == 0:  # child
        try:
            child_sink = ListSink()
            rec.sink = child_sink
            queued_at_fork = rec.stats().queued
            rec.emit({"child": True})
            ok = rec.flush(10)
            marker.write_text(json.dumps([queued_at_fork, ok, child_sink.events]))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    queued_at_fork, ok, events = json.loads(marker.read_text())
    assert queued_at_fork == 0 and ok and events == [{"child": True}]
    sink.release.set()
    assert rec.flush(10) and {"parent": True} in sink.events
