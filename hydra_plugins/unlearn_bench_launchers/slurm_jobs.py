"""Waiting for a submitted array, and saying in one line what became of a run that did not finish.

submitit learns a Slurm job's state from ``sacct`` only. Without Slurm accounting every call fails
(``Bypassing sacct error``), the state stays ``UNKNOWN``, which submitit counts as still running, and a job
that was cancelled, killed or ran out of memory before writing its result is waited for forever. Here a
job is over when its result file exists, or when ``squeue`` (which needs no accounting and lists ended
jobs for ``MinJobAge`` seconds, 300 by default) shows it in a final state or no longer lists it; ``sacct``
is asked only for the state of a job that left the queue. A run that ended without a result, or whose job
raised, becomes one line naming its folder, overrides and log.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus

from unlearn_bench.errors import one_line

# squeue's final states (the rest: pending, running, completing, requeued, suspended ...)
FINAL = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "REVOKED",
         "SPECIAL_EXIT", "TIMEOUT", "FINISHED", "INTERRUPTED"}  # the last two: submitit's local jobs
RESULT_GRACE_S = 20.0  # a shared file system may show a finished job's result file this much later
GONE = "gone from the queue"
RERUN = "rerun the same command to submit it again (finished runs are skipped)"
_FIXES = {
    "CANCELLED": RERUN,
    "TIMEOUT": "raise hydra.launcher.timeout_min or hydra.launcher.max_num_timeout, then " + RERUN,
    "OUT_OF_MEMORY": "raise hydra.launcher.mem_gb, then " + RERUN,
    "NODE_FAIL": RERUN,
    "BOOT_FAIL": RERUN,
}
_SAID = {"CANCELLED": "was cancelled", "TIMEOUT": "reached its time limit",
         "OUT_OF_MEMORY": "ran out of memory", "NODE_FAIL": "lost its node",
         "BOOT_FAIL": "could not boot its node", "FAILED": "failed",
         "FINISHED": "exited without a result", "INTERRUPTED": "was interrupted",
         GONE: "left the queue without a result (no Slurm accounting to say why)"}


def _job_states(array_ids: set[str]) -> dict[str, str] | None:
    """State of every task of these arrays that ``squeue`` still lists (``<array>_<index>`` -> state), or
    None when squeue cannot answer."""
    try:
        out = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T",
                              f"--jobs={','.join(sorted(array_ids))}"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        # squeue refuses a list of job ids none of which it still holds: they all left the queue
        return {} if "invalid job id" in out.stderr.lower() else None
    states = {}
    for line in out.stdout.splitlines():
        if "|" in line:
            jid, state = line.strip().split("|", 1)
            states[jid] = state.split()[0].upper()
    return states


def accounting_state(job_id: str) -> str | None:
    """The state ``sacct`` recorded for a job, or None without accounting."""
    try:
        out = subprocess.run(["sacct", "--noheader", "--parsable2", "--allocations", "--format=State",
                              f"--jobs={job_id}"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = out.stdout.split() if out.returncode == 0 else []
    return words[0].upper() if words else None


def slurm_states(jobs: Sequence) -> dict[str, str] | None:
    return _job_states({j.job_id.split("_")[0] for j in jobs})


def local_states(jobs: Sequence) -> dict[str, str]:
    return {j.job_id: (str(j.state).upper() if j.done() else "RUNNING") for j in jobs}


def wait_for_jobs(jobs: Sequence, states: Callable[[Sequence], dict[str, str] | None] = slurm_states,
                  first_poll_s: float = 5.0, max_poll_s: float = 60.0, grace_s: float = RESULT_GRACE_S,
                  clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                  ) -> list[str | None]:
    """Wait until every job has a result file or has ended without one; per job, None (a result) or the
    final state of a job that ended without a result. The queue is asked every ``first_poll_s`` at first,
    then every tenth of the time waited, at most every ``max_poll_s``."""
    outcome: dict[int, str | None] = {}
    ended: dict[int, tuple[float, str]] = {}
    absent: dict[int, int] = {}
    start = clock()
    next_poll = start + first_poll_s
    while len(outcome) < len(jobs):
        now = clock()
        for i, job in enumerate(jobs):
            if i in outcome:
                continue
            if i in ended:  # on NFS a chmod of the folder refreshes its cached listing (as submitit does)
                with contextlib.suppress(OSError):
                    job.paths.result_pickle.parent.chmod(job.paths.result_pickle.parent.stat().st_mode)
            if job.paths.result_pickle.exists():
                outcome[i] = None
            elif i in ended and now - ended[i][0] >= grace_s:
                outcome[i] = ended[i][1]
        watching = [i for i in range(len(jobs)) if i not in outcome and i not in ended]
        if watching and now >= next_poll:
            seen = states([jobs[i] for i in watching])
            for i in watching if seen is not None else []:
                state = seen.get(jobs[i].job_id)
                if state in FINAL:
                    ended[i] = (now, state)
                elif state is None:  # twice unlisted, a poll apart: it left the queue
                    absent[i] = absent.get(i, 0) + 1
                    if absent[i] >= 2:
                        ended[i] = (now, accounting_state(jobs[i].job_id) or GONE)
                else:
                    absent.pop(i, None)
            next_poll = now + min(max_poll_s, max(first_poll_s, (now - start) / 10))
        if len(outcome) < len(jobs):
            sleep(1.0)
    return [outcome[i] for i in range(len(jobs))]


def _log_path(job, stderr_to_stdout: bool) -> Path:
    return job.paths.stdout if stderr_to_stdout else job.paths.stderr


def _error_line(log: Path) -> str | None:
    """The last ``error: ...`` line the run printed (the project's own one-line errors), if any."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-200:]
    except OSError:
        return None
    found = [ln.strip() for ln in lines if ln.strip().startswith("error: ")]
    return found[-1][len("error: "):] if found else None


def _last_trace_line(text: str) -> str:
    blocks = re.split(r"\n-{10,}\n", text)
    lines = [ln.strip() for ln in (blocks[1] if len(blocks) >= 3 else text).splitlines() if ln.strip()]
    return one_line(lines[-1] if lines else text, 300)


def failure(job, state: str | None, stderr_to_stdout: bool = False) -> tuple[JobReturn | None, str | None]:
    """(the job's JobReturn, None) for a run that finished, else (None, what happened and the fix)."""
    log = _log_path(job, stderr_to_stdout)
    if state is None:
        try:
            ret = job.results()[0]
        except Exception as e:  # submitit's FailedJobError: the job's trace between two rules of dashes
            said = _last_trace_line(str(e))
            fix = _FIXES["TIMEOUT"] if "timed-out too many times" in said else f"read the log, then {RERUN}"
            return None, f"job {job.job_id} failed: {said}; log: {log}; fix: {fix}"
        if ret.status == JobStatus.FAILED:
            said = f"{type(ret._return_value).__name__}: {one_line(ret._return_value, 300)}"
            fix = _FIXES["TIMEOUT"] if "timed-out too many times" in said else f"read the log, then {RERUN}"
            return None, f"job {job.job_id} failed: {said}; log: {log}; fix: {fix}"
        return ret, None
    said = _SAID.get(state, f"ended {state} without a result")
    fix = _FIXES.get(state, f"read the log, then {RERUN}")
    own = _error_line(log)
    if own:  # the run's own one-line error: its problem and its fix
        problem, _, own_fix = own.partition("; fix: ")
        said += f": {one_line(problem, 300)}"
        fix = f"{one_line(own_fix, 200)}, then {RERUN}" if own_fix else fix
    return None, f"job {job.job_id} {said}; log: {log}; fix: {fix}"


_REFUSALS = [
    ("invalid partition", "hydra.launcher.partition=<a partition sinfo lists>"),
    ("invalid account", "hydra.launcher.account=<one of your accounts> (or export SLURM_ACCOUNT)"),
    ("invalid qos", "hydra.launcher.qos=<a QOS of your account>, or qos=null"),
    ("memory specification", "a smaller hydra.launcher.mem_gb (sinfo -o '%P %m' lists memory per node)"),
    ("generic resource", "hydra/launcher=slurm_cpu (no GPU), or a partition whose nodes have GPUs"),
    ("gres", "hydra/launcher=slurm_cpu (no GPU), or a partition whose nodes have GPUs"),
    ("node configuration is not available", "ask for fewer CPUs or GPUs or less memory (hydra.launcher."
     "cpus_per_task, gpus_per_node, mem_gb), or another partition (sinfo -o '%P %c %m %G' lists nodes)"),
    ("time limit", "a smaller hydra.launcher.timeout_min"),
    ("array", "fewer runs per sweep (split it), or a smaller hydra.launcher.array_parallelism"),
]


def refusal_line(message: str) -> str:
    """One line for sbatch's refusal (``sbatch: error: ...`` lines) with the setting that fixes it."""
    said = [ln.split("error:", 1)[-1].replace("Batch job submission failed:", "").strip()
            for ln in str(message).splitlines() if ln.strip()]
    text = "; ".join(dict.fromkeys(s for s in said if s)) or "no reason given"
    fix = next((f for key, f in _REFUSALS if key in text.lower()),
               "change the hydra.launcher setting it names")
    return f"sbatch refused the submission: {one_line(text, 400)}; nothing was submitted; fix: {fix}"
