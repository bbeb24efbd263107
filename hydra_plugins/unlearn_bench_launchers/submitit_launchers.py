"""Slurm and local submitit launchers that drop finished runs before submitting (``skip.py``): a
relaunched array asks Slurm only for the runs still to do. ``dry_run: true`` lists them and submits
nothing.

Beyond hydra-submitit-launcher, whose job setup (executor, parameters, one array per sweep) is kept:

- before anything else, the Slurm request is checked against ``sinfo`` (``slurm_request.py``; off with
  ``sinfo_check: false``): a partition that does not exist or cannot run the request is one line;
- a refusal by sbatch is one line naming the setting, not a traceback;
- the submitter waits for the array itself (``slurm_jobs.py``), so a job cancelled or killed before it
  wrote its result is noticed without Slurm accounting; each run that did not finish is one line (its
  folder, overrides, log and the fix), after every other run of the array has ended, and the sweep exits 1;
- a job submitit has requeued (time limit, preemption) exits without a result, whatever the code the
  signal interrupted made of submitit's exit, so its next start runs it again.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
from omegaconf import OmegaConf

from unlearn_bench.errors import ConfigError

from .skip import launch_unfinished, run_dir_of
from .slurm_jobs import failure, local_states, refusal_line, slurm_states, wait_for_jobs
from .slurm_request import check_request

log = logging.getLogger(__name__)


def _stop(lines: Sequence[str], status: int) -> None:
    for line in lines:
        print(f"error: {line}", file=sys.stderr, flush=True)
    raise SystemExit(status)


def _varying(job_overrides: Sequence[Sequence[str]]) -> set[str] | None:
    """The overrides that tell the submitted jobs apart (None: one job, all of its overrides name it)."""
    if len(job_overrides) < 2:
        return None
    common = set(job_overrides[0]).intersection(*map(set, job_overrides[1:]))
    return {o for ov in job_overrides for o in ov if o not in common}


class _SkipFinished:
    _EXECUTOR: str

    def __init__(self, dry_run: bool = False, sinfo_check: bool = True, **params) -> None:
        self.dry_run, self.sinfo_check = bool(dry_run), bool(sinfo_check)
        super().__init__(**params)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if self._EXECUTOR == "slurm":  # before the per-job checks of skip.py, which cost time on a big grid
            try:
                warning = check_request(self.params, self.sinfo_check)
            except ConfigError as e:
                _stop([str(e)], 2)
            if warning:
                print(f"warning: {warning}", file=sys.stderr, flush=True)
        return launch_unfinished(self, job_overrides, initial_job_idx, self._submit_and_wait, self.dry_run)

    def __call__(self, *args, **kwargs) -> JobReturn:
        """The job itself (on the node). submitit's preemption/timeout handler requeues the job and raises
        SystemExit wherever the run happens to be; code it interrupts can turn that into another error (a
        save cut short raises RuntimeError from torch's writer), which Hydra records as a failed run, and
        submitit would write it as this job's result although the job was requeued. A requeued job
        therefore never returns: it exits without a result, and its next start runs it again."""
        import signal

        import submitit

        try:
            sig = submitit.JobEnvironment()._usr_sig()
        except RuntimeError:  # not inside a submitit job: nothing requeues it
            sig = None
        handler, requeued = (signal.getsignal(sig) if sig else None), []
        if callable(handler):
            def noting(signum, frame):
                try:
                    handler(signum, frame)
                except SystemExit:  # submitit exits this way once it has requeued the job
                    requeued.append(signum)
                    raise
            signal.signal(sig, noting)
        ret = super().__call__(*args, **kwargs)
        if requeued:
            raise SystemExit(-1)
        return ret

    def _executor(self):
        import submitit

        params = dict(self.params)
        init = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in generic else f"{self._EXECUTOR}_{k}": v
                                      for k, v in params.items()})
        return executor

    def _submit_and_wait(self, job_overrides: Sequence[Sequence[str]],
                         initial_job_idx: int) -> list[JobReturn]:
        from submitit.core.utils import FailedJobError

        assert self.config is not None and self.hydra_context is not None
        executor = self._executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info("Submitit '%s' sweep output dir : %s", self._EXECUTOR, sweep_dir)
        calls = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            calls.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}",
                          Singleton.get_state()))
        said = io.StringIO()  # submitit prints sbatch's refusal itself before raising it: said once, below
        try:
            with contextlib.redirect_stderr(said):
                jobs = executor.map_array(self, *zip(*calls))
        except FailedJobError as e:
            _stop([refusal_line(str(e) or said.getvalue())], 2)
        except FileNotFoundError as e:
            _stop([f"{e.filename or 'sbatch'} is not installed on this machine; fix: submit from a machine "
                   f"of the cluster, or hydra/launcher=slurm_local to run the sweep here"], 2)
        sys.stderr.write(said.getvalue())  # submitit's warnings, if any, when sbatch accepted the array
        outcomes = wait_for_jobs(jobs, slurm_states if self._EXECUTOR == "slurm" else local_states)
        returns, lines = [], []
        shown = _varying(job_overrides)
        for i, (overrides, job, state) in enumerate(zip(job_overrides, jobs, outcomes)):
            ret, problem = failure(job, state, bool(self.params.get("stderr_to_stdout")))
            returns.append(ret)
            if problem:
                run_dir = run_dir_of(self.config, self.hydra_context, overrides, initial_job_idx + i)
                named = " ".join(o for o in filter_overrides(overrides) if shown is None or o in shown)
                lines.append(f"run {run_dir} ({named}) did not finish: {problem}")
        if lines:
            done = sum(r is not None for r in returns)
            log.info("%d of %d submitted runs finished; their results are kept", done, len(returns))
            _stop(lines, 1)
        return returns


class SlurmArrayLauncher(_SkipFinished, SlurmLauncher):
    """hydra-submitit-launcher's Slurm job array, less the runs already finished."""


class LocalArrayLauncher(_SkipFinished, LocalLauncher):
    """submitit's local executor (the Slurm code path on this machine), less the runs already finished."""
