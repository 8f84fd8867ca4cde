"""Frames on the pipe and the socket between the app and its learner process: an 8-byte
big-endian length and that many bytes (what the frames hold: :mod:`learner_wire`). Written with
one ``writev`` of header and parts, read with as few copies as the kernel allows: the frames
are up to ~0.7 MB of runs one way and graph snapshots of up to ~0.5 MB the other, and every
transient copy of that size fragmented the writing or reading thread's heap."""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from typing import Final

_HEADER: Final = struct.Struct(">Q")
MAX_FRAME_BYTES: Final = 1 << 34
"""A length above this means the stream is not ours (or is torn): treated as end of stream."""


def write_frame(fd: int, payload: bytes, prefix: bytes = b"") -> None:
    """Write one frame holding ``prefix + payload`` to ``fd`` (blocking): one ``writev`` of the
    header and the parts, never a joined copy (a frame is up to ~0.7 MB of runs, a graph
    snapshot up to ~0.5 MB; each copy was a transient of that size on the writing thread)."""
    parts = [_HEADER.pack(len(prefix) + len(payload)), prefix, payload]
    total = sum(map(len, parts))
    written = os.writev(fd, parts)
    if written == total:
        return
    for part in parts:  # interrupted: the rest, part by part
        if written >= len(part):
            written -= len(part)
            continue
        view = memoryview(part)[written:]
        written = 0
        while view:
            view = view[os.write(fd, view) :]


class FrameReader:
    """Frames from a pipe's file descriptor, with a look at whether another one is ready: the
    child merges every batch already waiting into one store transaction and one learn."""

    def __init__(self, fd: int, chunk: int = 1 << 18) -> None:
        self.fd = fd
        self.chunk = chunk
        self._buf = bytearray()
        self._pos = 0
        self._eof = False

    def next(self, *, block: bool = True, wait_s: float = 0.0) -> bytes | None:
        """The next frame; None at the end of the stream (a torn last frame included) or, with
        ``block=False``, when no whole frame is ready within ``wait_s`` seconds."""
        deadline = time.monotonic() + wait_s
        while True:
            frame = self._take()
            if frame is not None:
                return frame
            if self._eof:
                return None
            if not block:
                left = max(deadline - time.monotonic(), 0.0)
                if not select.select([self.fd], [], [], left)[0]:
                    return None
            data = os.read(self.fd, self.chunk)
            if not data:
                self._eof = True
                return None
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += data

    def _take(self) -> bytes | None:
        buf, pos = self._buf, self._pos
        if len(buf) - pos < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(buf, pos)
        if size > MAX_FRAME_BYTES:
            self._eof, self._buf, self._pos = True, bytearray(), 0
            return None
        end = pos + _HEADER.size + size
        if len(buf) < end:
            return None
        self._pos = end
        with memoryview(buf) as view:  # one copy (a slice of the bytearray would be two)
            return bytes(view[pos + _HEADER.size : end])


def recv_frame(sock: socket.socket) -> bytes | bytearray | None:
    """The next frame from a stream socket (None at its end, a torn frame included): each part
    in one ``recv`` with ``MSG_WAITALL``,
    so a thread of a busy app waits for the GIL twice per frame, not once per pipe-sized chunk
    (a 2 MB snapshot through a 64 KiB pipe took ~30 reads, each up to a 5 ms switch interval
    away from the app's thread)."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        return None
    return _recv_exact(sock, size)


def _recv_exact(sock: socket.socket, size: int) -> bytearray | None:
    """``size`` bytes (the buffer itself, not a copy: a snapshot frame is megabytes)."""
    buf = bytearray(size)
    return buf if _recv_into(sock, memoryview(buf)) else None


def _recv_into(sock: socket.socket, view: memoryview) -> bool:
    """Fill ``view`` from ``sock``; ``False`` at the end of the stream first."""
    got, size = 0, len(view)
    while got < size:
        n = sock.recv_into(view[got:], size - got, socket.MSG_WAITALL)
        if n == 0:
            return False
        got += n
    return True


class FrameReceiver:
    """:func:`recv_frame` into one buffer reused for every frame (grown to the largest): the
    app's receiver thread allocated a fresh buffer per snapshot frame (~30-500 KB, ~40 a
    second), each freed after its install, churning that thread's malloc arena."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._header = bytearray(_HEADER.size)
        self._buf = bytearray()

    def next(self) -> memoryview | None:
        """The next frame, valid until the next call (None at the end, a torn frame included)."""
        if not _recv_into(self.sock, memoryview(self._header)):
            return None
        (size,) = _HEADER.unpack(self._header)
        if size > MAX_FRAME_BYTES:
            return None
        if len(self._buf) < size:
            self._buf = bytearray(size)
        view = memoryview(self._buf)[:size]
        return view if _recv_into(self.sock, view) else None
