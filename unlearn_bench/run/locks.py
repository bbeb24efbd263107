"""File locks that say who holds them: an owner record beside the lock (pid, host, Slurm job, since, and a
heartbeat refreshed while the lock is held), so a waiter logs whom it waits for and for how long, and a
lock whose holder is gone is recognised as stale instead of being waited on forever.

The lock itself is ``filelock.FileLock``: an OS lock (flock) that the kernel releases when its holder dies,
on file systems that support it; elsewhere (some network file systems) filelock falls back to a lock file
that stays behind a killed holder. The owner record covers that case: a holder on this host whose process
no longer exists, or any holder whose heartbeat is older than ``UNLEARN_BENCH_LOCK_STALE_S`` (default 600 s;
the heartbeat beats every ``HEARTBEAT_S``), is stale, and its lock file is removed once, with a warning.
``UNLEARN_BENCH_LOCK_TIMEOUT_S`` (default: none) bounds the whole wait.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

from filelock import FileLock, Timeout

from unlearn_bench.errors import CacheError

log = logging.getLogger(__name__)
HEARTBEAT_S = 30.0
POLL_S = 2.0
STALE_ENV, TIMEOUT_ENV = "UNLEARN_BENCH_LOCK_STALE_S", "UNLEARN_BENCH_LOCK_TIMEOUT_S"


def _seconds(env: str, default: float | None) -> float | None:
    raw = os.environ.get(env)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{env}={raw!r} is not a number of seconds; fix: set it to e.g. 600") from None


def owner_path(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + ".owner")


def read_owner(lock_path: Path) -> dict | None:
    """The owner record of ``lock_path``, or None when there is none (or it is being rewritten)."""
    try:
        owner = json.loads(owner_path(lock_path).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def describe(owner: dict | None, now: float | None = None) -> str:
    if not owner:
        return "another process"
    now = time.time() if now is None else now
    job = f", Slurm job {owner['slurm_job']}" if owner.get("slurm_job") else ""
    beat = now - float(owner.get("heartbeat", now))
    return f"pid {owner.get('pid')} on {owner.get('host')}{job} (last heartbeat {beat:.0f} s ago)"


def is_stale(owner: dict | None, stale_s: float, now: float | None = None) -> bool:
    """Whether the holder described by ``owner`` is gone: its process has ended on this host, or it has not
    beaten for ``stale_s`` seconds."""
    if not owner:
        return False
    now = time.time() if now is None else now
    if owner.get("host") == socket.gethostname():
        try:
            os.kill(int(owner.get("pid", -1)), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, OverflowError):
            pass
    return now - float(owner.get("heartbeat", now)) > stale_s


def _os_locks_work(directory: Path) -> bool:
    """Whether ``directory``'s file system supports flock (where filelock does not fall back to a lock file
    that outlives its holder)."""
    import fcntl
    probe = directory / f".flock-probe-{os.getpid()}-{threading.get_ident()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError:
        return True  # cannot tell: never break a lock on a guess
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        return e.errno != errno.ENOSYS
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


class LockBusy(Exception):
    """A lock asked for without waiting is held by someone else (``owner``: its record, or None)."""

    def __init__(self, owner: dict | None):
        super().__init__(describe(owner))
        self.owner = owner


def live_owner(lock_path: Path, stale_s: float | None = None, others_only: bool = False) -> dict | None:
    """The record of a holder of ``lock_path`` that is alive as far as can be told from here (its heartbeat
    is fresh and, on this host, its process exists), else None; with ``others_only``, None for this process
    too. Read without taking the lock: what a launcher asks before submitting a run that may be in progress
    elsewhere."""
    owner = read_owner(Path(lock_path))
    stale_s = _seconds(STALE_ENV, 600.0) if stale_s is None else stale_s
    if not owner or is_stale(owner, stale_s):
        return None
    if others_only and (owner.get("pid"), owner.get("host")) == (os.getpid(), socket.gethostname()):
        return None
    return owner


class OwnedLock:
    """``with OwnedLock(path, "cache original/<key>"):`` — a FileLock that logs a wait (whom for, and how
    long it took), breaks a stale lock once, and keeps an owner record with a heartbeat while held."""

    def __init__(self, path: str | Path, label: str):
        self.path, self.label = Path(path), label
        self.lock = FileLock(str(self.path))
        self.waited_s = 0.0
        self._since: float | None = None  # when this process took the lock (its owner record's "since")
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> OwnedLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self, blocking: bool = True) -> None:
        """Take the lock, waiting for its holder (``blocking``), or raise ``LockBusy`` naming the holder. A
        lock file left by a holder that is gone (where the file system has no OS locks) is broken either
        way."""
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            if blocking:
                self._wait()
            else:
                self._try_once_more()
        self._write_owner()
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name=f"heartbeat {self.label}", daemon=True)
        self._beat.start()

    def _wait(self) -> None:
        stale_s = _seconds(STALE_ENV, 600.0)
        timeout_s = _seconds(TIMEOUT_ENV, None)
        t0 = time.monotonic()
        log.info("%s: waiting for %s, which holds it", self.label, describe(read_owner(self.path)))
        suspect, warned = None, False
        while True:
            try:
                self.lock.acquire(timeout=POLL_S)
                break
            except Timeout:
                pass
            owner = read_owner(self.path)
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                raise CacheError(f"{self.label}: still held by {describe(owner)} after {timeout_s:.0f} s; "
                                 f"fix: wait for it, or stop that process, or raise {TIMEOUT_ENV}")
            if not is_stale(owner, stale_s):
                suspect = None
                continue
            seen = (owner.get("pid"), owner.get("host"), owner.get("since"))
            if _os_locks_work(self.path.parent):  # the OS frees a dead holder's lock: this one is alive
                if not warned:
                    log.warning("%s: %s still holds it but has stopped beating; it may be hung (fix: stop "
                                "it, e.g. scancel its job)", self.label, describe(owner))
                    warned = True
            elif seen == suspect:  # stale on two polls in a row: not a holder yet to write its record
                self._break(owner)
                suspect = None
            else:
                suspect = seen
        self.waited_s = time.monotonic() - t0
        log.info("%s: lock acquired after waiting %.0f s", self.label, self.waited_s)

    def _try_once_more(self) -> None:
        owner = read_owner(self.path)
        if is_stale(owner, _seconds(STALE_ENV, 600.0)) and not _os_locks_work(self.path.parent) and \
                self._break(owner):
            try:
                self.lock.acquire(timeout=0)
                return
            except Timeout:
                owner = read_owner(self.path)
        raise LockBusy(owner)

    def _break(self, owner: dict) -> bool:
        """Remove the lock file of the stale holder ``owner``, once, whoever else tries at the same time: the
        owner record is first renamed away (an atomic step only one process can take for that record) and
        must still be the one found stale; only then is the lock file, still that holder's, removed."""
        record = owner_path(self.path)
        taken = record.with_name(f".{record.name}.broken-{socket.gethostname()}-{os.getpid()}")
        try:
            os.rename(record, taken)
        except OSError:  # another waiter broke it first (and may hold the lock now)
            return False
        try:
            same = json.loads(taken.read_text()) == owner
        except (OSError, ValueError):
            same = False
        if not same:  # a new holder's record: put it back, break nothing
            try:
                os.rename(taken, record)
            except OSError:
                pass
            return False
        taken.unlink(missing_ok=True)
        log.warning("%s: the lock's holder is gone (%s); removing its stale lock", self.label,
                    describe(owner))
        self.path.unlink(missing_ok=True)
        return True

    def _write_owner(self) -> None:
        now = time.time()
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": self._since or now,
                  "heartbeat": now, "slurm_job": os.environ.get("SLURM_JOB_ID"), "label": self.label}
        self._since = record["since"]
        tmp = owner_path(self.path).with_name(f".{owner_path(self.path).name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(record))
            os.replace(tmp, owner_path(self.path))
        except OSError as e:  # the record informs waiters; a full disk must not fail the holder
            tmp.unlink(missing_ok=True)
            log.debug("%s: owner record not written (%s)", self.label, e)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._write_owner()

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        self._since = None
        owner_path(self.path).unlink(missing_ok=True)
        self.lock.release()
