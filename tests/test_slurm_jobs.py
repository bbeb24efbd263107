"""The Slurm launcher waiting for its jobs: a job that ended without its result (a cancelled one, seen
through squeue, no accounting needed) is noticed and named in one line; a requeued job never returns a
result. Fake ``squeue`` from tests/fake_slurm.py."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_slurm import tool
from hydra.core.utils import JobReturn, JobStatus

from hydra_plugins.unlearn_bench_launchers import slurm_jobs
from hydra_plugins.unlearn_bench_launchers.slurm_jobs import failure, wait_for_jobs


def _job(tmp_path: Path, job_id: str, log: str = "") -> SimpleNamespace:
    folder = tmp_path / job_id
    folder.mkdir()
    (folder / "err").write_text(log)
    return SimpleNamespace(job_id=job_id, paths=SimpleNamespace(result_pickle=folder / "result.pkl",
                                                               stderr=folder / "err", stdout=folder / "out"))


class _Clock:
    """Time that passes only when the waiter sleeps; ``at`` runs a callback once a moment is reached."""

    def __init__(self):
        self.t, self.events = 0.0, []

    def __call__(self):
        return self.t

    def at(self, t, fn):
        self.events.append((t, fn))

    def sleep(self, s):
        self.t += s
        for when, fn in [e for e in self.events if e[0] <= self.t]:
            fn()
            self.events.remove((when, fn))


def test_a_job_squeue_shows_cancelled_ends_the_wait_without_a_result_the_others_with(tmp_path, monkeypatch):
    jobs = [_job(tmp_path, "7_0"), _job(tmp_path, "7_1"), _job(tmp_path, "7_2")]
    clock, polls = _Clock(), []

    clock.at(12, lambda: jobs[0].paths.result_pickle.write_bytes(b"x"))  # finished: its result file appears

    def states(watching):
        polls.append((clock.t, [j.job_id for j in watching]))
        seen = {"7_0": "RUNNING", "7_1": "CANCELLED" if clock.t > 5 else "RUNNING"}
        return seen if clock.t < 8 else {k: v for k, v in seen.items() if k != "7_2"}  # 7_2 left the queue

    monkeypatch.setattr(slurm_jobs, "accounting_state", lambda job_id: None)  # no accounting
    out = wait_for_jobs(jobs, states, first_poll_s=5, grace_s=20, clock=clock, sleep=clock.sleep)
    assert out == [None, "CANCELLED", "gone from the queue"]
    assert polls[0][0] == 5 and len(polls) < 10  # first look after 5 s, then spaced out
    assert clock.t < 60  # each ended job waited its grace for a late result, not forever


def test_a_result_file_that_appears_within_the_grace_counts_as_finished(tmp_path):
    job, clock = _job(tmp_path, "8_0"), _Clock()
    clock.at(18, lambda: job.paths.result_pickle.write_bytes(b"x"))  # the shared file system shows it late
    assert wait_for_jobs([job], lambda w: {"8_0": "COMPLETED"}, first_poll_s=5, grace_s=20, clock=clock,
                         sleep=clock.sleep) == [None]
    assert clock.t < 20


def test_squeue_is_read_without_accounting(tmp_path, slurm_bin):
    tool(slurm_bin, "squeue", "12_0|RUNNING\n12_1|CANCELLED\n12_2|PENDING\n13_0|COMPLETED\n")
    assert slurm_jobs._job_states({"12", "13"}) == {"12_0": "RUNNING", "12_1": "CANCELLED", "12_2": "PENDING",
                                                     "13_0": "COMPLETED"}
    calls = (slurm_bin / "squeue.calls").read_text()
    assert "--array" in calls and "--states=all" in calls and "--jobs=12,13" in calls
    tool(slurm_bin, "squeue", stderr="slurm_load_jobs error: Invalid job id specified", status=1)
    assert slurm_jobs._job_states({"12"}) == {}  # no job of these arrays is left in the queue
    tool(slurm_bin, "squeue", stderr="slurm_load_jobs error: Unable to contact slurm controller", status=1)
    assert slurm_jobs._job_states({"12"}) is None  # cannot tell: keep waiting


def test_a_run_that_ended_without_a_result_is_one_line_with_its_own_error_log_and_fix(tmp_path):
    job = _job(tmp_path, "9_1", log="some warning\nerror: forget class(es) [12] out of range for digits "
                                    "(classes 0..9); fix: pick forget.classes within 0..9\n")
    ret, line = failure(job, "FAILED")
    assert ret is None and "\n" not in line
    assert line.startswith("job 9_1 failed: forget class(es) [12] out of range for digits (classes 0..9); "
                           "log: ")
    assert str(job.paths.stderr) in line and line.count("fix:") == 1
    assert line.endswith("fix: pick forget.classes within 0..9, then rerun the same command to submit it "
                         "again (finished runs are skipped)")
    ret, line = failure(_job(tmp_path, "9_2"), "CANCELLED")
    assert line.startswith("job 9_2 was cancelled; log: ") and "fix: rerun the same command" in line


def test_a_job_whose_submitit_wrapper_raised_or_whose_task_failed_is_one_line(tmp_path):
    from submitit.core.utils import FailedJobError

    rule = "----------------------"  # submitit's FailedJobError text, a trace between two rules
    trace = (f"Job (task=0) failed during processing with trace:\n{rule}\nTraceback (most recent call "
             "last):\n  File \"x.py\", line 1, in f\nsubmitit.core.utils.UncompletedJobError: Job not "
             f"requeued because: timed-out too many times.\n\n{rule}\nYou can check full logs with "
             "'job.stderr(0)' and 'job.stdout(0)'or at paths:\n  - /a/err\n  - /a/out")
    job = _job(tmp_path, "5_0")

    def raises():
        raise FailedJobError(trace)
    job.results = raises
    ret, line = failure(job, None)
    assert "\n" not in line and "Job not requeued because: timed-out too many times." in line
    assert "raise hydra.launcher.timeout_min or hydra.launcher.max_num_timeout" in line
    job.results = lambda: [JobReturn(status=JobStatus.FAILED, _return_value=KeyError("method.lr"))]
    ret, line = failure(job, None)
    assert ret is None and line.startswith("job 5_0 failed: KeyError: 'method.lr'; log: ")
    ok = JobReturn(status=JobStatus.COMPLETED, _return_value=0.5)
    job.results = lambda: [ok]
    assert failure(job, None) == (ok, None)


def test_a_requeued_job_exits_without_a_result_whatever_the_interrupted_code_raised(monkeypatch):
    """submitit's handler requeues, then raises SystemExit inside the run; code it lands in (torch's writer,
    mid-save) may raise another error instead, which Hydra records as a failed run: the job must not
    return that as its result, or the submitter reports a failure while the requeued job runs again."""
    import signal

    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    from hydra_plugins.unlearn_bench_launchers.submitit_launchers import SlurmArrayLauncher

    monkeypatch.setenv("_TEST_CLUSTER_", "slurm")  # submitit's switch for a job environment outside a job
    requeued = []

    def submitit_handler(signum, frame):  # what submitit does once it has requeued the job
        requeued.append(signum)
        raise SystemExit(-1)

    def run(self, *args):  # a run whose save turns the SystemExit into a RuntimeError
        try:
            os.kill(os.getpid(), signal.SIGUSR2)
        except SystemExit:
            return JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("unexpected pos 1047040"))
        return JobReturn(status=JobStatus.COMPLETED, _return_value=0.5)

    previous = signal.signal(signal.SIGUSR2, submitit_handler)
    # the class SlurmArrayLauncher extends: Hydra's plugin scan may have executed its module again since
    base = next(c for c in SlurmArrayLauncher.__mro__[1:] if c.__name__ == SlurmLauncher.__name__)
    monkeypatch.setattr(base, "__call__", run)
    try:
        with pytest.raises(SystemExit):
            SlurmArrayLauncher(submitit_folder="x")([], "hydra.sweep.dir", 0, "j", {})
        assert requeued == [signal.SIGUSR2]
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # no requeue: the run's own result is returned
        assert SlurmArrayLauncher(submitit_folder="x")([], "hydra.sweep.dir", 0, "j", {}).return_value == 0.5
    finally:
        signal.signal(signal.SIGUSR2, previous)
