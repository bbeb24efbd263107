"""What the cluster-tier drivers share: waiting for a daemon to come up while checking it has not died."""

from __future__ import annotations

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
                raise SystemExit(f"{p.args[0]} exited with status {p.returncode} while waiting for {what}{tail}")
        if check():
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out after {seconds:.0f} s waiting for {what}")
