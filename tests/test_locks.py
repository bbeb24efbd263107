"""Locks that say who holds them: a wait is logged with its holder and its length, a lock left behind by a
holder that is gone is broken once, a live holder that stopped beating is reported, a wait can be bounded."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time

import pytest
from filelock import SoftFileLock

from unlearn_bench.errors import CacheError
from unlearn_bench.run import locks
from unlearn_bench.run.locks import OwnedLock, owner_path, read_owner

HOLD = """
import sys, time
from unlearn_bench.run.locks import OwnedLock
with OwnedLock(sys.argv[1], "test"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder(path, seconds):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "held"
    return p


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setattr(locks, "POLL_S", 0.1)


def test_a_wait_names_its_holder_and_how_long_it_took(tmp_path, caplog):
    path = tmp_path / "k.lock"
    p = _holder(path, 1.5)
    owner = read_owner(path)
    assert owner["pid"] == p.pid and owner["host"] == socket.gethostname()
    with caplog.at_level(logging.INFO, logger="unlearn_bench"), OwnedLock(path, "cache original/k") as lock:
        assert read_owner(path)["pid"] == os.getpid()
    p.wait()
    assert f"cache original/k: waiting for pid {p.pid} on {socket.gethostname()}" in caplog.text
    assert "lock acquired after waiting" in caplog.text and lock.waited_s > 0.5
    assert not owner_path(path).exists()  # released: no record left


def test_the_heartbeat_refreshes_the_record_while_held(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    path = tmp_path / "k.lock"
    with OwnedLock(path, "x"):
        first = read_owner(path)["heartbeat"]
        time.sleep(0.3)
        assert read_owner(path)["heartbeat"] > first
        assert read_owner(path)["since"] == pytest.approx(first)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_lock_file_left_by_a_dead_holder_is_broken_where_the_os_has_no_locks(tmp_path, monkeypatch, caplog):
    """On a file system without flock filelock keeps a lock file that outlives its holder."""
    path = tmp_path / "k.lock"
    monkeypatch.setattr(locks, "_os_locks_work", lambda d: False)
    monkeypatch.setattr(locks, "FileLock", SoftFileLock)
    monkeypatch.setenv(locks.TIMEOUT_ENV, "10")  # a lock that is never broken fails, not hangs
    path.write_text("")  # the soft lock of a holder that was killed
    now = time.time()
    owner_path(path).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "since": now,
                                            "heartbeat": now}))
    with caplog.at_level(logging.INFO, logger="unlearn_bench"), OwnedLock(path, "cache retrain/k"):
        assert read_owner(path)["pid"] == os.getpid()
    assert "the lock's holder is gone" in caplog.text


def test_a_live_holder_that_stopped_beating_is_reported_and_a_bounded_wait_ends_in_one_line(
        tmp_path, monkeypatch, caplog):
    path = tmp_path / "k.lock"
    p = _holder(path, 30)
    try:
        owner = read_owner(path)
        owner_path(path).write_text(json.dumps({**owner, "heartbeat": time.time() - 5000}))
        monkeypatch.setenv(locks.STALE_ENV, "60")
        monkeypatch.setenv(locks.TIMEOUT_ENV, "1")
        with caplog.at_level(logging.INFO, logger="unlearn_bench"), pytest.raises(CacheError) as e:
            OwnedLock(path, "cache original/k").acquire()
        assert "may be hung" in caplog.text
        msg = str(e.value)
        assert "\n" not in msg and f"pid {p.pid}" in msg and "fix:" in msg
        assert p.poll() is None  # a live holder's lock is never broken
    finally:
        p.kill()
        p.wait()


def test_a_bad_setting_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(locks.STALE_ENV, "ten minutes")
    p = _holder(tmp_path / "k.lock", 5)
    try:
        with pytest.raises(ValueError, match="UNLEARN_BENCH_LOCK_STALE_S='ten minutes' is not a number"):
            OwnedLock(tmp_path / "k.lock", "x").acquire()
    finally:
        p.kill()
        p.wait()


def test_a_lock_taken_without_waiting_names_its_holder_and_a_live_one_is_seen_from_outside(tmp_path):
    path = tmp_path / ".run.lock"
    assert locks.live_owner(path) is None
    p = _holder(path, 30)
    try:
        with pytest.raises(locks.LockBusy) as e:
            OwnedLock(path, "run x").acquire(blocking=False)
        assert f"pid {p.pid} on {socket.gethostname()}" in str(e.value)
        assert locks.live_owner(path)["pid"] == p.pid
        owner = read_owner(path)
        owner_path(path).write_text(json.dumps({**owner, "heartbeat": time.time() - 5000}))
        assert locks.live_owner(path, stale_s=600) is None  # stopped beating: not counted as in progress
    finally:
        p.kill()
        p.wait()
    owner_path(path).write_text(json.dumps({**owner, "heartbeat": time.time()}))
    assert locks.live_owner(path) is None  # its process is gone on this host


def test_a_stale_lock_file_is_broken_without_waiting_too(tmp_path, monkeypatch):
    path = tmp_path / ".run.lock"
    monkeypatch.setattr(locks, "_os_locks_work", lambda d: False)
    monkeypatch.setattr(locks, "FileLock", SoftFileLock)
    path.write_text("")
    owner_path(path).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(),
                                            "since": time.time(), "heartbeat": time.time()}))
    lock = OwnedLock(path, "run x")
    lock.acquire(blocking=False)
    assert read_owner(path)["pid"] == os.getpid()
    lock.release()


def test_a_bounded_wait_on_a_live_beating_holder_ends_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(locks.TIMEOUT_ENV, "1")
    p = _holder(tmp_path / "k.lock", 30)
    try:
        t0 = time.monotonic()
        with pytest.raises(CacheError, match="still held by pid"):
            OwnedLock(tmp_path / "k.lock", "x").acquire()
        assert time.monotonic() - t0 < 5
    finally:
        p.kill()
        p.wait()


def test_a_stale_lock_is_broken_once_and_never_a_new_holders(tmp_path):
    path = tmp_path / "k.lock"
    path.write_text("")
    stale = {"pid": _dead_pid(), "host": "elsewhere", "since": 1.0, "heartbeat": 1.0}
    owner_path(path).write_text(json.dumps(stale))
    first, second = OwnedLock(path, "a"), OwnedLock(path, "b")
    assert first._break(stale) and not path.exists()
    path.write_text("")  # the first breaker's own lock, and its record
    fresh = {**stale, "pid": os.getpid(), "host": socket.gethostname(), "heartbeat": time.time()}
    owner_path(path).write_text(json.dumps(fresh))
    assert not second._break(stale)  # it saw the old record: the new holder's is left in place
    assert path.exists() and read_owner(path) == fresh
