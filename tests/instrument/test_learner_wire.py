"""What crosses the learner process's pipe: runs and graph snapshots arrive exactly."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

from hermes_sdk.graph import GraphRegistry
from hermes_sdk.graph.records import RunPath, RunState
from hermes_sdk.instrument.learner_frames import FrameReader, FrameReceiver, recv_frame, write_frame
from hermes_sdk.instrument.learner_wire import (
    RUNS,
    changed_graphs,
    decode_run_list,
    decode_runs,
    dump_message,
    encode_run,
    install_graphs,
    load_message,
    runs_body,
    runs_frame,
    sync_request,
    sync_seq,
)
from tests.instrument.test_decode_runs import ODD
from tests.instrument.test_learner_process import drift_paths


def test_runs_round_trip_field_by_field() -> None:
    odd = ODD
    paths = [odd, *drift_paths(400)]
    back = decode_run_list([encode_run(p) for p in paths])
    assert back == paths
    assert [type(p) for p in back] == [RunPath] * len(paths)
    assert back[0].stages[0].calls[1].service_s == 1e-9 and back[0].stages[0].width == 2
    assert decode_run_list([]) == [] and decode_runs(runs_frame([])[1:]) == []


def test_frames_end_cleanly_on_a_torn_stream() -> None:
    r, w = os.pipe()
    frames = FrameReader(r, chunk=7)  # frames cut across reads
    assert frames.next(block=False) is None  # nothing written yet: no wait
    write_frame(w, runs_frame([encode_run(p) for p in drift_paths(3)]))
    write_frame(w, sync_request(42))
    first = frames.next()
    assert first is not None and decode_runs(first[1:]) == drift_paths(3)
    second = frames.next(block=False)  # whole and ready: the child merges such frames
    assert second is not None and sync_seq(second) == 42
    os.write(w, b"\x00\x00\x00\x00\x00\x00\x10\x00" + b"x" * 100)  # a frame cut short
    os.close(w)
    assert frames.next() is None and frames.next(block=False) is None
    os.close(r)


def test_a_frame_arriving_within_the_wait_is_taken() -> None:
    """The child's linger: ``next(block=False, wait_s=...)`` takes a frame written while it
    waits (in two pieces, the second after a pause), and gives up after ``wait_s`` otherwise."""
    r, w = os.pipe()
    frames = FrameReader(r)
    payload = runs_frame([encode_run(p) for p in drift_paths(5)])
    framed = struct.pack(">Q", len(payload)) + payload

    def write_late() -> None:
        time.sleep(0.05)
        os.write(w, framed[:11])
        time.sleep(0.05)
        os.write(w, framed[11:])

    writer = threading.Thread(target=write_late)
    writer.start()
    assert frames.next(block=False) is None  # no wait: nothing there yet
    got = frames.next(block=False, wait_s=30.0)
    writer.join()
    assert got is not None and decode_runs(got[1:]) == drift_paths(5)
    assert frames.next(block=False, wait_s=0.01) is None  # nothing more within the wait
    os.close(w)
    assert frames.next(block=False, wait_s=30.0) is None  # end of stream ends the wait at once
    os.close(r)


def test_socket_frames_arrive_whole_and_end_cleanly() -> None:
    """A frame larger than the socket's buffer (the child blocks in ``sendall`` while the
    receiver waits in one ``recv``), then a torn one."""
    mine, theirs = socket.socketpair()
    big = b"G" + os.urandom(3 << 20)
    sender = threading.Thread(
        target=lambda: (write_frame(theirs.fileno(), big), theirs.sendall(b"\x00" * 3))
    )
    sender.start()
    assert recv_frame(mine) == big
    sender.join()
    theirs.close()
    assert recv_frame(mine) is None
    mine.close()


def test_a_prefixed_frame_is_the_joined_frame_and_a_receiver_reuses_its_buffer() -> None:
    """``write_frame(fd, body, RUNS)`` sends what ``write_frame(fd, runs_frame(...))`` sent (the
    child decodes it alike), also when ``writev`` writes only part of it (a frame larger than
    the socket holds); a :class:`FrameReceiver` hands out frames of any sizes in order from one
    buffer, then None at a torn end."""
    blobs = [encode_run(p) for p in drift_paths(40)]
    mine, theirs = socket.socketpair()
    r, w = os.pipe()
    write_frame(w, runs_body(blobs), RUNS)
    got = FrameReader(r).next()
    assert got == runs_frame(blobs) and decode_runs(memoryview(got)[1:]) == drift_paths(40)
    big = os.urandom(3 << 20)
    sizes = [big, b"x" * 100, b"", b"y" * 70_000]
    sender = threading.Thread(
        target=lambda: (
            write_frame(theirs.fileno(), big[1:], big[:1]),
            [write_frame(theirs.fileno(), f) for f in sizes[1:]],
            theirs.sendall(struct.pack(">Q", 10) + b"torn"),
        )
    )
    sender.start()
    frames = FrameReceiver(mine)
    received = []
    for _ in sizes:
        frame = frames.next()
        assert frame is not None
        received.append(bytes(frame))  # valid until the next call: copied here
    sender.join()
    theirs.close()
    assert received == sizes
    assert frames.next() is None
    for fd in (r, w):
        os.close(fd)
    mine.close()


def test_snapshots_install_learned_graphs_exactly_and_in_place() -> None:
    learned = GraphRegistry(None)
    paths = drift_paths(800)
    learned.observe_many(paths[:400])
    app = GraphRegistry(None)
    sent: dict[tuple[str, str], int] = {}
    held = app.graph("app0")  # a graph object the app holds before any snapshot
    for later in (False, True):
        if later:
            learned.observe_many(paths[400:])
        message = load_message(dump_message({"graphs": changed_graphs(learned, sent)}))
        assert install_graphs(app, message["graphs"]) == 4  # two apps of two tenants
        assert changed_graphs(learned, sent) == []  # nothing new since
    assert app.graph("app0") is held
    state = RunState(node="search", visits=(("plan", 1), ("search", 1)), running=True)
    for tenant, name in (("default", "app0"), ("default", "app1"), ("t2", "app0")):
        mine, theirs = app.graph(name, tenant), learned.graph(name, tenant)
        assert mine.to_dict() == theirs.to_dict()
        assert (mine.version, mine.changed_version) == (theirs.version, theirs.changed_version)
        assert mine.remaining_demand(state, n=50).tolist() == (
            theirs.remaining_demand(state, n=50).tolist()
        )
        assert mine.prior is app.prior(tenant)  # the app's pooled prior, refreshed
    assert (
        app.prior().sketch.sorted().values.tolist()
        == learned.prior().sketch.sorted().values.tolist()
    )


def test_status_writer_writes_in_order_off_the_learning_thread() -> None:
    """The child's status frames go out on their own thread: put() returns while the app has not
    read (busy() says so), frames arrive whole and in order, and a gone app ends it quietly."""
    from hermes_sdk.instrument.learner_child import StatusWriter

    mine, theirs = socket.socketpair()
    writer = StatusWriter(theirs.fileno())
    big = bytes(range(256)) * 16_384  # 4 MiB: more than the socket holds unread
    writer.put([big, b"second"])
    writer.put([b"third"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not writer.busy():
        time.sleep(0.01)
    assert writer.busy()  # blocked on a reader that does not read, and put() did not wait
    assert [recv_frame(mine) for _ in range(3)] == [big, b"second", b"third"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and writer.busy():
        time.sleep(0.01)
    assert not writer.busy()
    mine.close()  # the app is gone: the next write fails, quietly, and nothing more is written
    writer.put([b"x" * 1_000_000])
    writer.close()
    assert not writer.app_reads
    theirs.close()
