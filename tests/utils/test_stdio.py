"""What a process wrote to a pipe is read by the other end before it aborts (the MPI abort path
waits for it: a launcher may drop what it had not read yet)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from nnabla_nas.distributed import MpiCommunicator
from nnabla_nas.utils.stdio import unread_bytes, wait_until_read


@pytest.fixture
def pipe():
    """A text stream writing into a pipe, and a reader that starts reading when told to."""
    r, w = os.pipe()
    stream = os.fdopen(w, "w")
    got = bytearray()
    start = threading.Event()

    def read():
        start.wait()
        while chunk := os.read(r, 4096):
            got.extend(chunk)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    yield stream, start, got
    stream.close()
    thread.join(5)
    os.close(r)


def test_unread_bytes_count_what_the_reader_has_not_taken(pipe, tmp_path):
    stream, start, got = pipe
    stream.write("last words\n")  # still in Python's buffer: unread_bytes flushes it
    assert unread_bytes(stream) == 11
    with open(tmp_path / "file.txt", "w") as f:
        assert unread_bytes(f) is None  # a file: nothing in flight
    closed = open(tmp_path / "other.txt", "w")
    closed.close()
    assert unread_bytes(closed) is None


def test_wait_until_read_returns_once_the_reader_took_everything(pipe):
    stream, start, got = pipe
    stream.write("x" * 1000)
    threading.Timer(0.2, start.set).start()  # a reader that comes late
    assert wait_until_read([stream], timeout=30) is True
    assert unread_bytes(stream) == 0
    time.sleep(0.05)
    assert bytes(got) == b"x" * 1000


def test_wait_until_read_gives_up_after_its_timeout(pipe):
    stream, start, got = pipe
    stream.write("nobody reads this")
    assert wait_until_read([stream], timeout=0.05) is False
    assert unread_bytes(stream) == 17
    start.set()


class _RecordingComm:
    def __init__(self, stream):
        self.stream = stream
        self.unread_at_abort = None

    def Abort(self, code):  # noqa: N802 - mpi4py's name
        self.unread_at_abort = unread_bytes(self.stream)
        raise SystemExit(code)


def test_the_mpi_abort_waits_until_stderr_was_read(pipe, monkeypatch):
    stream, start, got = pipe
    monkeypatch.setattr(sys, "stderr", stream)
    comm = object.__new__(MpiCommunicator)  # no MPI here: only the abort path is exercised
    comm._comm = _RecordingComm(stream)
    print("[rank 1] error: rank 1 failed alone", file=sys.stderr)
    threading.Timer(0.2, start.set).start()
    with pytest.raises(SystemExit) as exc:
        comm.abort(3)
    assert exc.value.code == 3
    assert comm._comm.unread_at_abort == 0  # the reader had it all before MPI_Abort
