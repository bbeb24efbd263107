"""Finished runs are dropped before a launcher submits anything: a relaunched sweep asks the scheduler
only for the runs still to do, instead of one allocation per run to print ``skipping``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)


def _finished_return(hydra_context: HydraContext, sweep_config: DictConfig, overrides: Sequence[str],
                     run_dir: Path, idx: int, metrics: dict) -> JobReturn:
    """What the job would have returned (``cfg.optimized_metric`` of its metrics.json), with the callbacks
    called as after a run."""
    from unlearn_bench.cli.objective import objective_value

    with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
        sweep_config.hydra.runtime.output_dir = str(run_dir.resolve())
    with read_write(sweep_config.hydra.job), open_dict(sweep_config.hydra.job):
        sweep_config.hydra.job.num = idx
    task_cfg = OmegaConf.masked_copy(sweep_config, [k for k in sweep_config if k != "hydra"])
    ret = JobReturn(overrides=list(overrides), cfg=task_cfg, hydra_cfg=sweep_config,
                    working_dir=str(run_dir), task_name=str(sweep_config.hydra.job.name),
                    status=JobStatus.COMPLETED, _return_value=objective_value(task_cfg, metrics))
    hydra_context.callbacks.on_job_end(config=sweep_config, job_return=ret)
    return ret


def _run_dir(sweep_config: DictConfig) -> Path:
    HydraConfig.instance().set_config(sweep_config)  # the subdir may read hydra's own settings
    return Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)


def run_dir_of(config: DictConfig, hydra_context: HydraContext, overrides: Sequence[str],
               job_num: int | None = None) -> Path:
    """The run folder of the job with these overrides and number (as the job itself will name it)."""
    try:
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        if job_num is not None:  # folders named by job number (Optuna trials)
            with read_write(sweep_config.hydra.job), open_dict(sweep_config.hydra.job):
                sweep_config.hydra.job.num, sweep_config.hydra.job.id = job_num, str(job_num)
        return _run_dir(sweep_config)
    finally:
        HydraConfig.instance().set_config(config)


class InProgress:
    """What a job returns when it was not submitted because its run is in progress elsewhere: another
    process holds its folder's lock and beats (``unlearn_bench.run.locks``)."""

    def __init__(self, run_dir: Path, owner: dict):
        self.run_dir, self.owner = run_dir, owner

    def __str__(self) -> str:
        from unlearn_bench.run.locks import describe
        return f"{self.run_dir} ({describe(self.owner)})"


def in_progress(run_dir: Path) -> dict | None:
    """The owner record of a live run writing ``run_dir`` in another process, else None. Live: it has beaten
    within three heartbeats and, when it names its Slurm job, squeue still lists that job as not ended (a
    cancelled or killed job never releases its lock, and its node may not be this one)."""
    from unlearn_bench.run.locks import HEARTBEAT_S, live_owner
    from unlearn_bench.run.rundir import LOCK
    owner = live_owner(Path(run_dir) / LOCK, stale_s=3 * HEARTBEAT_S, others_only=True)
    if owner is None:
        return None
    job = owner.get("slurm_job")
    if job and _slurm_job_ended(str(job)):
        return None
    return owner


def _slurm_job_ended(job: str) -> bool:
    """Whether squeue says ``job`` has ended (not listed, or in a final state); False when it cannot say."""
    import subprocess
    try:
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    if out.returncode != 0:  # an id squeue no longer knows is an ended job
        return "Invalid job id" in out.stderr
    states = {s.strip() for s in out.stdout.split()}
    return not states or states <= {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                                    "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


def split_finished(config: DictConfig, hydra_context: HydraContext, job_overrides: Sequence[Sequence[str]],
                   initial_job_idx: int) -> tuple[list[int], dict[int, JobReturn]]:
    """Positions of the jobs still to run, and a completed ``JobReturn`` for each job whose run directory
    already holds a finished run of exactly this configuration (the test the run itself applies) or a run
    in progress in another process (its return value an ``InProgress``: a relaunch while the array still
    runs does not put a second job into a live run's folder)."""
    from unlearn_bench.run.pipeline import finished

    subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir", "")
    if "job.num" in str(subdir) or "job.id" in str(subdir):
        # folders named by job number (Optuna trials): a job's folder is known only once it is numbered,
        # and a new trial is a new configuration anyway, so every job is submitted
        return list(range(len(job_overrides))), {}
    todo, done = [], {}
    for i, overrides in enumerate(job_overrides):
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        run_dir = _run_dir(sweep_config)
        task_cfg = OmegaConf.masked_copy(sweep_config, [k for k in sweep_config if k != "hydra"])
        try:
            result = finished(run_dir, task_cfg)
        except Exception:  # a config the run itself will reject, in one line
            result = None
        owner = in_progress(run_dir) if result is None else None
        if owner is not None:
            done[i] = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED,
                                _return_value=InProgress(run_dir, owner))
        elif result is None:
            todo.append(i)
        else:
            done[i] = _finished_return(hydra_context, sweep_config, overrides, run_dir, initial_job_idx + i,
                                       result)
    HydraConfig.instance().set_config(config)
    return todo, done


def leaders_first(todo: list[int], job_overrides: Sequence[Sequence[str]]) -> list[int]:
    """``todo`` reordered so that one job of each group sharing everything but the method's settings (the
    jobs that share an original model and oracle) comes first: an array then trains each original once, in
    its first tasks, instead of starting many tasks that all wait on the same training's lock."""
    def shared(i: int) -> tuple:
        return tuple(sorted(o for o in job_overrides[i]
                            if not o.lstrip("+~").split("=", 1)[0].startswith(("method", "name"))))
    seen, leaders, rest = set(), [], []
    for i in todo:
        (rest if shared(i) in seen else leaders).append(i)
        seen.add(shared(i))
    return leaders + rest


def launch_unfinished(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int,
                      submit, dry_run: bool = False) -> list[JobReturn]:
    """Drop finished runs, then ``submit(overrides_to_run, initial_job_idx)``; results come back in the
    order of ``job_overrides``. ``dry_run`` lists what would be submitted and submits nothing."""
    if dry_run and "BasicSweeper" not in str(launcher.config.hydra.sweeper.get("_target_", "")):
        print("error: hydra.launcher.dry_run lists the jobs of a grid sweep; a sweeper such as Optuna draws "
              "its trials as results come in; fix: drop dry_run=true for this sweep", file=sys.stderr)
        raise SystemExit(2)
    todo, done = split_finished(launcher.config, launcher.hydra_context, job_overrides, initial_job_idx)
    live = [r._return_value for r in done.values() if isinstance(r._return_value, InProgress)]
    print(f"{len(done) - len(live)} of {len(job_overrides)} runs already finished (skipped); "
          f"{'would submit' if dry_run else 'submitting'} {len(todo)}", flush=True)
    if live:
        print(f"{len(live)} run(s) in progress elsewhere, not submitted (relaunch once they end if they "
              f"fail):", flush=True)
        for r in live:
            print(f"  {r}", flush=True)
    if dry_run:
        for i in todo:
            print(f"  #{initial_job_idx + i}: {' '.join(filter_overrides(job_overrides[i]))}", flush=True)
        pending = {i: JobReturn(overrides=list(job_overrides[i]), status=JobStatus.COMPLETED,
                                _return_value=None) for i in todo}
        return [done.get(i) or pending[i] for i in range(len(job_overrides))]
    subdir = str(OmegaConf.to_container(launcher.config.hydra.sweep, resolve=False).get("subdir", ""))
    if "job.num" not in subdir and "job.id" not in subdir:  # folders named by number keep their numbers
        todo = leaders_first(todo, job_overrides)
    launched = list(submit([job_overrides[i] for i in todo], initial_job_idx)) if todo else []
    results = dict(zip(todo, launched))
    results.update(done)
    return [results[i] for i in range(len(job_overrides))]
