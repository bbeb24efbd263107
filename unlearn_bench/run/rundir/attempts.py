"""What a run folder says about its last attempt: ``failed.json`` (see ``names.FAILED``) written when
an attempt starts and when it ends without a metrics.json, and ``outcome``, which reads a folder back."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from unlearn_bench.errors import RunDirError
from unlearn_bench.run.locks import live_owner
from unlearn_bench.run.rundir.names import FAILED, LOCK, METRICS

log = logging.getLogger("unlearn_bench")
RESUME = "rerun the same command to resume"


def read_json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None (missing, unreadable, not JSON, not an object)."""
    try:
        m = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def _finished_here(run_dir: Path) -> bool:
    return read_json(run_dir / METRICS) is not None


def failure(e: BaseException | None, config_hash: str | None = None) -> dict:
    """failed.json's content for ``e`` (None: an attempt that has just started)."""
    import signal

    from unlearn_bench.errors import Interrupted, UnlearnBenchError, one_line
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record = {"status": "failed", "reason": "", "error": None, "signal": None, "time": now,
              "pid": os.getpid(), "host": socket.gethostname(), "config_hash": config_hash}
    if e is None:
        record.update(status="unfinished", reason=f"started at {now} and has not finished; if process "
                      f"{record['pid']} on {record['host']} is gone, it was killed without warning "
                      f"(SIGKILL, out of memory, a lost node); fix: {RESUME}")
        return record
    record["error"] = type(e).__name__
    if isinstance(e, (Interrupted, KeyboardInterrupt)):
        name = e.name if isinstance(e, Interrupted) else signal.SIGINT.name
        record.update(status="interrupted", signal=name, reason=f"interrupted by {name}; fix: {RESUME}")
    elif isinstance(e, SystemExit):
        record.update(status="interrupted", reason=f"the process was told to exit (status {e.code}) before "
                                                    f"the run finished; fix: {RESUME}")
    elif isinstance(e, UnlearnBenchError):
        record["reason"] = one_line(e, 1000)
    else:
        record["reason"] = f"{type(e).__name__}: {one_line(e, 1000)}"
    return record


def record_failure(run_dir: Path, e: BaseException | None, config_hash: str | None = None,
                   locked: bool = True) -> None:
    """Write failed.json for ``e`` into ``run_dir``, unless the folder does not exist (nothing of this run
    was written), holds a finished run, or, when this run does not hold its lock (``locked`` false), another
    process is writing it (its record is its own). Never raises: the error being recorded is what matters."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or _finished_here(run_dir) or (not locked and _held_elsewhere(run_dir)):
        return
    try:
        from unlearn_bench.run.cache import atomic_write_text
        atomic_write_text(run_dir / FAILED, json.dumps(failure(e, config_hash), indent=1))
    except Exception as err:  # noqa: BLE001 -- e.g. the full disk that failed the run
        log.warning("could not write %s (%s)", run_dir / FAILED, err)


def clear_failure(run_dir: Path) -> None:
    (Path(run_dir) / FAILED).unlink(missing_ok=True)


def mark_started(run_dir: Path, config_hash: str | None = None, locked: bool = False) -> None:
    """failed.json with status ``unfinished``, what a run killed without warning leaves (on
    ``record_failure``'s conditions)."""
    record_failure(run_dir, None, config_hash, locked)


def _held_elsewhere(run_dir: Path) -> bool:
    """Whether another process holds ``run_dir``'s lock (is writing the run there now), read from the lock's
    owner record: the lock itself is never taken here, so a run starting at this instant is not refused."""
    return live_owner(run_dir / LOCK, others_only=True) is not None


@contextmanager
def failures_recorded(run_dir: Path, config_hash: str | None = None, locked: bool = False):
    """Inside, an error or a signal that ends the run leaves failed.json saying why (on ``record_failure``'s
    conditions). A refusal to touch the folder (``RunDirError``: another writer holds it, or it holds another
    configuration's finished run) is not this folder's failure and is not recorded."""
    try:
        yield
    except RunDirError:
        raise
    except BaseException as e:
        record_failure(run_dir, e, config_hash, locked)
        raise


def outcome(run_dir: Path, since: float | None = None) -> tuple[str, str]:
    """How the last attempt at ``run_dir`` ended: ``finished``; ``skipped`` (metrics.json older than
    ``since``: it was finished before); ``failed`` (metrics.json with another status, or failed.json);
    ``interrupted`` / ``unfinished`` (failed.json); ``unfinished`` when the folder holds neither file. The
    second element is the reason, empty for a finished run."""
    run_dir = Path(run_dir)
    m = read_json(run_dir / METRICS)
    if m is not None:
        if m.get("status", "ok") != "ok":  # diverged: recorded, so a rerun skips it
            why = m.get("reason") or m.get("status")
            return "failed", f"{why} (in metrics.json; fix: delete the folder to retry)"
        try:
            old = since is not None and (run_dir / METRICS).stat().st_mtime < since
        except OSError:
            old = False
        return ("skipped" if old else "finished"), ""
    record = read_json(run_dir / FAILED)
    if record is not None:
        return str(record.get("status") or "failed"), str(record.get("reason") or "")
    return "unfinished", "the folder holds neither metrics.json nor failed.json"
