"""SIGTERM and SIGINT: a run or a sweep that is stopped says so and exits non-zero.

Schedulers stop jobs with SIGTERM (time limit, preemption), people with Ctrl-C. ``install`` (called by the
CLI) turns the first of either into ``errors.Interrupted`` raised where the process is; the CLI catches it,
prints one ``interrupted by SIGTERM: ...; rerun the same command to resume`` line and exits 128 + the
signal's number. A second signal while the first one unwinds gets the signal's default action at once.

The training loop runs on Lightning Fabric, which installs no signal handler (a Trainer's SIGTERM handler
would end ``fit`` with ``SystemExit``, status 0, and its KeyboardInterrupt handler with ``sys.exit(1)``).
Inside a submitit job (``hydra/launcher=slurm``) the CLI's ``main`` never runs: submitit's own handlers
(SIGTERM logged and ignored, its preemption signal checkpoints and requeues the job) stay in place.
"""

from __future__ import annotations

import os
import signal
import threading

from unlearn_bench.errors import Interrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_raised: list[int] = []


def _handler(signum, frame) -> None:
    if _raised:  # the first one is unwinding (closing loggers, releasing locks): do not interrupt that
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _raised.append(signum)
    raise Interrupted(signum)


def install() -> bool:
    """Route SIGTERM and SIGINT to ``Interrupted``; only the main thread may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        return False
    _raised.clear()
    for s in SIGNALS:
        signal.signal(s, _handler)
    return True


def exit_status(e: Interrupted) -> int:
    return 128 + e.signum
