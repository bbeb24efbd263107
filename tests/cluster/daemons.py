"""What the cluster-tier drivers share: waiting for a daemon to come up while checking it has not died, and
finding what is still running in the driver's private network namespace once the daemons are stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(what: str, check: Callable[[], bool], seconds: float, procs: list[subprocess.Popen],
             log: Path | None = None) -> None:
    """Poll ``check`` until it holds; stop at once if one of ``procs`` exits (with the tail of ``log``)."""
    end = time.time() + seconds
    while time.time() < end:
        for p in procs:
            if p.poll() is not None:
                tail = f": {log.read_text()[-1500:]}" if log is not None and log.exists() else ""
                raise SystemExit(f"{p.args[0]} exited with status {p.returncode} while waiting for "
                                 f"{what}{tail}")
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out after {seconds:.0f} s waiting for {what}")


def stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to ``proc``'s process group (a daemon started in a session of its own, with what it spawned),
    SIGKILL after ``grace_s`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:  # the group is gone already
        return
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def namespace_pids() -> dict[int, str]:
    """Live processes (pid -> command) in this process's network namespace, this process excluded. The
    drivers run in a namespace of their own (``unshare -n``), so these are the daemons and what they
    started (Slurm's step daemons and jobs detach into sessions of their own)."""
    own = os.readlink("/proc/self/ns/net")
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if os.readlink(d / "ns" / "net") != own or "\nState:\tZ" in (d / "status").read_text():
                continue
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ")
            found[int(d.name)] = cmdline.decode(errors="replace")[:200]
        except OSError:  # gone meanwhile
            continue
    return found
