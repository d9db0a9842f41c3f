"""The background writer of the checkpoints: one job at a time, its error raised once, by the
next wait (the loop's use of it: ``test_faults.py``)."""

from __future__ import annotations

import errno
import logging
import threading

import pytest

from nnabla_nas.runner.background import BackgroundWriter


def _full_disk() -> None:
    raise OSError(errno.ENOSPC, "No space left on device", "state.npz")


def test_a_job_runs_in_another_thread_until_waited_for():
    writer, gate, ran = BackgroundWriter(), threading.Event(), []
    writer.submit(lambda: (gate.wait(30), ran.append(threading.current_thread().name)))
    assert writer.pending and ran == []  # submit returned while the job runs
    gate.set()
    writer.wait()
    assert ran == ["nnabla_nas-writer"] and not writer.pending


def test_the_next_job_starts_after_the_previous_one():
    writer, order = BackgroundWriter(), []
    first, second = threading.Event(), threading.Event()
    writer.submit(lambda: (first.wait(30), order.append(1)))
    threading.Timer(0.05, first.set).start()
    writer.submit(lambda: (second.wait(30), order.append(2)))  # waits for the first
    assert order == [1]
    second.set()
    writer.wait()
    assert order == [1, 2]


def test_an_error_is_raised_once_by_wait_and_kept_by_settle():
    writer = BackgroundWriter()
    writer.submit(_full_disk)
    writer.settle()  # joined, the error kept for the next wait
    assert writer.pending
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    writer.wait()  # once
    writer.submit(_full_disk)
    with pytest.raises(OSError):
        writer.submit(lambda: None)  # the next submit raises the previous job's error
    assert not writer.pending


def test_close_logs_the_error_instead_of_raising_it(caplog):
    writer = BackgroundWriter()
    writer.submit(_full_disk)
    with caplog.at_level(logging.ERROR, logger="nnabla_nas.runner.background"):
        writer.close()
    assert "a background write failed too: [Errno 28] No space left on device" in caplog.text
    assert not writer.pending


def test_without_a_spare_core_jobs_run_in_place(monkeypatch):
    import nnabla_nas.runner.background as background

    monkeypatch.setattr(background.os, "sched_getaffinity", lambda pid: {0, 1})
    assert background.spare_core(1) and not background.spare_core(2)
    writer, ran = BackgroundWriter(enabled=False), []
    writer.submit(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.main_thread().name] and not writer.pending
    with pytest.raises(OSError):
        writer.submit(_full_disk)  # raised in place
    assert not writer.pending
