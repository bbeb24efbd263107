"""How a run or a sweep ends on the terminal: what a sweep's jobs did (kept here as they end, whatever the
launcher), the closing lines of a sweep (``rundir.sweep_lines``), and the one line a stopped run or sweep
prints (``interrupted_line``)."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

from unlearn_bench.config import CONFIG_DIR
from unlearn_bench.errors import Interrupted

# jobs of this process: how a stopped sweep says what it left (the basic launcher runs them here, in turn);
# "outcomes" (run folder -> (kind, reason)) and "returns" (every launcher's JobReturns) say how a sweep ended
JOBS: dict = {"finished": 0, "current": None, "outcomes": {}, "returns": [], "sweep": None}


def adhoc(cfg) -> bool:
    """Whether the run goes to the default experiment folder (``name`` left as conf/config.yaml sets it):
    runs nobody chose to group, which is where a note on mixed experiments belongs."""
    try:
        return str(cfg.name) == str(OmegaConf.load(Path(CONFIG_DIR) / "config.yaml").get("name"))
    except Exception:  # noqa: BLE001 -- no note rather than no run
        return False


class _RecordedLauncher:
    """A sweeper's launcher, whose ``launch`` also keeps the JobReturns for the sweep's closing lines. The
    sweeper holds this wrapper; the launcher itself (which submitit pickles into its jobs) is unchanged."""

    def __init__(self, launcher):
        self._launcher = launcher

    def __getattr__(self, name):
        return getattr(self._launcher, name)

    def launch(self, job_overrides, initial_job_idx):
        returns = self._launcher.launch(job_overrides, initial_job_idx)
        JOBS["returns"].extend(returns)
        return returns


@contextmanager
def recorded_launches():
    """Inside, every launcher Hydra builds for a sweeper is a ``_RecordedLauncher``."""
    from hydra.core.plugins import Plugins
    real = Plugins.instantiate_launcher

    def instantiate_launcher(self, *args, **kwargs):
        launcher = real(self, *args, **kwargs)
        JOBS["sweep"] = kwargs.get("config", args[-1] if args else None)
        if "optuna" in sys.modules:  # a study's creation announces itself; the sweeper's own line says it all
            sys.modules["optuna"].logging.set_verbosity(logging.WARNING)
        return _RecordedLauncher(launcher)
    Plugins.instantiate_launcher = instantiate_launcher
    try:
        yield
    finally:
        Plugins.instantiate_launcher = real


def sweep_end(since: float, stopped: bool) -> None:
    """Print the sweep's closing lines (``rundir.sweep_lines``); nothing for a dry run or when no job ran."""
    import os

    from unlearn_bench.run.rundir import sweep_lines, sweep_outcomes
    runs, cfg = sweep_outcomes(JOBS["returns"], JOBS["outcomes"], since), JOBS["sweep"]
    if not runs or (cfg is not None and OmegaConf.select(cfg, "hydra.launcher.dry_run", default=False)):
        return
    try:
        folder = Path(str(cfg.hydra.sweep.dir))
    except Exception:  # noqa: BLE001 -- a sweep folder named by something only a job resolves
        folder = Path(os.path.commonpath([str(d) for d in runs]))
    print("\n".join(sweep_lines(runs, folder, stopped, cfg is not None and adhoc(cfg))), flush=True)


def interrupted_line(e: Interrupted, multirun: bool, total: int | None) -> str:
    """The one line a stopped run or sweep prints: what was left, and that the same command resumes it."""
    done, current = JOBS["finished"], JOBS["current"]
    fix = "rerun the same command to resume"
    if not multirun:
        if current is None:
            return f"{e}: the run had not started; {fix}"
        return f"{e}: run {current} left unfinished; {fix}"
    parts = [f"{done} of {total} jobs finished" if total else f"{done} jobs finished here"]
    if current is not None:
        parts.append(f"1 interrupted ({current})")
    if total:
        parts.append(f"{max(total - done - (current is not None), 0)} did not start")
    else:  # another launcher or sweeper: its jobs run elsewhere or are chosen as it goes
        parts.append("jobs of other processes or launchers may not have finished")
    return f"{e}: sweep left unfinished: {', '.join(parts)}; {fix} (finished runs are skipped)"
