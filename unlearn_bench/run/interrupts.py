"""SIGTERM and SIGINT: a run or a sweep that is stopped says so and exits non-zero.

Schedulers stop jobs with SIGTERM (time limit, preemption), people with Ctrl-C. ``install`` (called by the
CLI) turns the first of either into ``errors.Interrupted`` raised where the process is; the CLI catches it,
prints one ``interrupted by SIGTERM: ...; rerun the same command to resume`` line and exits 128 + the
signal's number. A second signal while the first one unwinds gets the signal's default action at once.

Lightning's own handlers are kept out of the way (``training.make_trainer``): its SIGTERM handler would end
``fit`` with ``SystemExit`` (status 0) and its KeyboardInterrupt handler with ``sys.exit(1)``. Inside a
submitit job (``hydra/launcher=slurm``) the CLI's ``main`` never runs: submitit's own handlers (SIGTERM
logged and ignored, its preemption signal checkpoints and requeues the job) stay in place untouched.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager

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


@contextmanager
def no_keyboard_interrupt():
    """Inside, Ctrl-C raises ``Interrupted`` where Python's default handler would raise KeyboardInterrupt
    (which Lightning swallows into ``sys.exit(1)``, ignoring SIGINT for the rest of the process); it
    leaves as KeyboardInterrupt. Any other SIGINT handler (the CLI's, a notebook's) is left alone."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def raise_interrupted(signum, frame):
        raise Interrupted(signum)
    signal.signal(signal.SIGINT, raise_interrupted)
    try:
        yield
    except Interrupted as e:
        if e.signum != signal.SIGINT:
            raise
        raise KeyboardInterrupt from e
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
