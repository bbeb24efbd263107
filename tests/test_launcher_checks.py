"""The Slurm launcher's checks, against fake ``sinfo`` / ``squeue`` / ``sbatch`` executables on PATH that
print what Slurm 22.05 prints: a request no partition can run is one line before anything is submitted (or
passes when sinfo cannot answer); sbatch's refusal is one line; a job that ended without its result (a
cancelled one, seen through squeue, no accounting needed) is noticed and named in one line."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.core.utils import JobReturn, JobStatus

from hydra_plugins.unlearn_bench_launchers import slurm_jobs, slurm_request
from hydra_plugins.unlearn_bench_launchers.slurm_jobs import failure, refusal_line, wait_for_jobs
from hydra_plugins.unlearn_bench_launchers.slurm_request import check_launcher, gres_gpus, megabytes, minutes
from unlearn_bench.config import compose
from unlearn_bench.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("unlearn-bench"))
# `sinfo --all --noheader --format=%P|%a|%l|%c|%m|%G|%D` on a cluster with CPU and GPU partitions: one
# line per partition and node configuration; cpu mixes nodes with more CPUs and nodes with more memory
SINFO = """debug*|up|1:00:00|16|64000|(null)|2
cpu|up|2-00:00:00|64|512000|(null)|8
cpu|up|2-00:00:00|128|256000|(null)|40
gpu|up|1-00:00:00|64|512000|gpu:a100:4(S:0-1)|16
gpu|up|1-00:00:00|32|192000|gpu:v100:8(S:0-1),shard:8|4
maint|down|30:00|16|64000|(null)|2
"""


def _tool(bindir: Path, name: str, stdout: str = "", stderr: str = "", status: int = 0) -> Path:
    """An executable ``name`` that prints ``stdout`` / ``stderr``, exits ``status`` and logs its arguments."""
    bindir.mkdir(exist_ok=True)
    (bindir / f"{name}.out").write_text(stdout)
    (bindir / f"{name}.err").write_text(stderr)
    exe = bindir / name
    exe.write_text(f'#!/bin/sh\necho "$@" >> "{bindir}/{name}.calls"\ncat "{bindir}/{name}.out"\n'
                   f'cat "{bindir}/{name}.err" >&2\nexit {status}\n')
    exe.chmod(0o755)
    return exe


@pytest.fixture
def slurm_bin(tmp_path, monkeypatch):
    """A folder of fake Slurm tools, alone on PATH but for the shell's own tools; no request checked yet."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.delenv("SBATCH_PARTITION", raising=False)
    monkeypatch.setattr(slurm_request, "_checked", set())
    if Path("/usr/bin/sinfo").exists() or Path("/bin/sinfo").exists():
        _tool(bindir, "sinfo", stderr="sinfo: error: no controller here", status=1)  # shadow the real one
    return bindir


def _check(*overrides):
    return check_launcher(compose(["name=t", *overrides]).hydra.launcher)


def _error(*overrides) -> str:
    with pytest.raises(ConfigError) as e:
        _check(*overrides)
    text = str(e.value)
    assert "\n" not in text and "; fix: " in text, text
    return text


def test_slurm_times_sizes_and_gres_read_as_sinfo_prints_them():
    assert minutes("1-00:00:00") == 1440 and minutes("2-12") == 3600 and minutes("1:30:00") == 90
    assert minutes("30:00") == 30 and minutes("45") == 45 and minutes("infinite") is None
    assert megabytes("32GB") == 32 * 1024 and megabytes("4000") == 4000 and megabytes("512M") == 512
    assert megabytes("1T") == 1024 ** 2
    assert gres_gpus("gpu:a100:4(S:0-1),shard:8") == {"a100": 4} and gres_gpus("gpu:2") == {"": 2}
    assert gres_gpus("(null)") == {}
    assert gres_gpus("gpu:a100:2(S:0),gpu:v100:1(S:1)") == {"a100": 2, "v100": 1}


def test_a_partition_sinfo_does_not_list_is_one_line_naming_the_ones_it_does(slurm_bin):
    _tool(slurm_bin, "sinfo", SINFO)
    text = _error("hydra/launcher=slurm", "hydra.launcher.partition=gpux")
    assert text == ("partition 'gpux' does not exist (sinfo lists: debug, cpu, gpu, maint); fix: "
                    "hydra.launcher.partition=<one of them>")
    assert "--format=%P|%a|%l|%c|%m|%G|%D" in (slurm_bin / "sinfo.calls").read_text()


def test_a_gpu_asked_of_a_partition_without_gpus_names_the_cpu_preset_and_the_gpu_partition(slurm_bin):
    _tool(slurm_bin, "sinfo", SINFO)
    text = _error("hydra/launcher=slurm", "hydra.launcher.partition=cpu")  # the GPU preset on CPU nodes
    assert "hydra.launcher.gpus_per_node asks for a GPU" in text and "partition 'cpu'" in text
    assert "hydra/launcher=slurm_cpu" in text and "<one with GPUs: gpu>" in text
    text = _error("hydra/launcher=slurm_cpu", "hydra.launcher.partition=debug", "hydra.launcher.gres=gpu:1")
    assert text.startswith("hydra.launcher.gres asks for a GPU") and "partition 'debug'" in text
    text = _error("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=16")
    assert "asks for 16 GPUs per node" in text and "at most 8" in text
    gpu = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"]
    assert "at most 4" in _error(*gpu, "hydra.launcher.gpus_per_node=a100:8")  # typed: only the a100 nodes
    assert _check(*gpu, "hydra.launcher.gpus_per_node=8") is None


def test_more_cpus_memory_or_time_than_the_partition_has_is_one_line_with_the_largest_value(slurm_bin):
    _tool(slurm_bin, "sinfo", SINFO)
    base = ["hydra/launcher=slurm_cpu", "hydra.launcher.partition=cpu"]
    text = _error(*base, "hydra.launcher.cpus_per_task=200")
    assert "200 CPUs per node" in text and "at most 128" in text and "cpus_per_task=128 or fewer" in text
    text = _error(*base, "hydra.launcher.cpus_per_task=40", "hydra.launcher.tasks_per_node=4")
    assert "160 CPUs per node" in text  # CPUs per task x tasks per node
    text = _error(*base, "hydra.launcher.mem_gb=600")
    assert "600 GB per node" in text and "at most 500 GB (512000 MB)" in text and "mem_gb=500 or less" in text
    text = _error(*base, "hydra.launcher.mem_gb=null", "hydra.launcher.cpus_per_task=64",
                  "+hydra.launcher.additional_parameters.mem_per_cpu=10G")
    assert text.startswith("hydra.launcher.additional_parameters.mem_per_cpu asks for 640 GB per node")
    text = _error("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=2000")
    assert text.startswith("hydra.launcher.timeout_min=2000 is longer than partition 'gpu' allows (1440 min)")
    assert text.endswith("fix: hydra.launcher.timeout_min=1440 or less")
    # each figure fits some node of cpu, but no node has 100 CPUs and 400 GB together
    text = _error(*base, "hydra.launcher.cpus_per_task=100", "hydra.launcher.mem_gb=400")
    assert text.startswith("no node of partition 'cpu' has 100 CPUs, 400 GB and 0 GPUs together")
    assert _check(*base, "hydra.launcher.cpus_per_task=100", "hydra.launcher.mem_gb=200") is None


def test_the_default_partition_is_checked_when_none_is_given_and_a_down_one_only_warns(slurm_bin):
    _tool(slurm_bin, "sinfo", SINFO)
    cpu = ["hydra/launcher=slurm_cpu"]
    text = _error(*cpu, "hydra.launcher.partition=null", "hydra.launcher.timeout_min=120")
    assert "partition 'debug' allows (60 min)" in text  # debug* is the default
    warning = _check(*cpu, "hydra.launcher.partition=maint", "hydra.launcher.timeout_min=20")
    assert warning.startswith("partition 'maint' is down") and "\n" not in warning
    assert _check("hydra/launcher=slurm_cpu", "hydra.launcher.partition='maint,cpu'",
                  "hydra.launcher.timeout_min=20") is None  # cpu is up and can run it
    text = _error("hydra/launcher=slurm", "hydra.launcher.partition='cpu,debug'")
    assert text.startswith("no partition of cpu,debug can run the job (cpu: ")


def test_no_sinfo_or_one_that_cannot_answer_or_the_check_turned_off_passes(slurm_bin, monkeypatch):
    bad = ["hydra/launcher=slurm", "hydra.launcher.partition=nope"]
    _tool(slurm_bin, "sinfo", stderr="slurm_load_partitions: Unable to contact slurm controller", status=1)
    assert _check(*bad) is None
    _tool(slurm_bin, "sinfo", "garbage without fields\n")
    assert _check(*bad) is None  # output it cannot read
    _tool(slurm_bin, "sinfo", SINFO)
    (slurm_bin / "sinfo.calls").unlink()
    assert _check(*bad, "hydra.launcher.sinfo_check=false") is None
    assert not (slurm_bin / "sinfo.calls").exists()  # not even asked
    assert _check("hydra/launcher=ray_cluster") is None and _check("hydra/launcher=slurm_local") is None
    (slurm_bin / "sinfo").unlink()
    monkeypatch.setenv("PATH", str(slurm_bin))
    assert _check(*bad) is None  # no sinfo at all


def test_the_launcher_checks_the_request_before_looking_at_any_run_folder(slurm_bin, monkeypatch, capsys):
    from omegaconf import OmegaConf

    from hydra_plugins.unlearn_bench_launchers import skip
    from hydra_plugins.unlearn_bench_launchers.submitit_launchers import SlurmArrayLauncher

    _tool(slurm_bin, "sinfo", SINFO)
    node = compose(["name=t", "hydra/launcher=slurm", "hydra.launcher.partition=cpu"]).hydra.launcher
    params = {k: node[k] for k in node if k not in ("_target_", "submitit_folder", "setup")}
    launcher = SlurmArrayLauncher(submitit_folder="/nonexistent/%j",
                                  **OmegaConf.to_container(OmegaConf.create(params), resolve=True))
    monkeypatch.setattr(skip, "split_finished", lambda *a: pytest.fail("run folders read before the check"))
    with pytest.raises(SystemExit) as e:
        launcher.launch([["seed=0"], ["seed=1"]], 0)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: hydra.launcher.gpus_per_node asks for a GPU")


def test_sbatch_refusals_become_one_line_with_the_setting_to_change():
    said = ("sbatch: error: Memory specification can not be satisfied\n"
            "sbatch: error: Batch job submission failed: Requested node configuration is not available")
    line = refusal_line(said)
    assert "\n" not in line and line.startswith(
        "sbatch refused the submission: Memory specification can not be satisfied; Requested node "
        "configuration is not available")
    assert "fix: a smaller hydra.launcher.mem_gb" in line
    line = refusal_line("sbatch: error: invalid partition specified: nope\n"
                        "sbatch: error: Batch job submission failed: Invalid partition name specified")
    assert line.endswith("fix: hydra.launcher.partition=<a partition sinfo lists>")


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
    _tool(slurm_bin, "squeue", "12_0|RUNNING\n12_1|CANCELLED\n12_2|PENDING\n13_0|COMPLETED\n")
    assert slurm_jobs._job_states({"12", "13"}) == {"12_0": "RUNNING", "12_1": "CANCELLED", "12_2": "PENDING",
                                                     "13_0": "COMPLETED"}
    calls = (slurm_bin / "squeue.calls").read_text()
    assert "--array" in calls and "--states=all" in calls and "--jobs=12,13" in calls
    _tool(slurm_bin, "squeue", stderr="slurm_load_jobs error: Invalid job id specified", status=1)
    assert slurm_jobs._job_states({"12"}) == {}  # no job of these arrays is left in the queue
    _tool(slurm_bin, "squeue", stderr="slurm_load_jobs error: Unable to contact slurm controller", status=1)
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


def test_a_sweep_that_sbatch_refuses_ends_in_one_line_and_submits_nothing(tmp_path, slurm_bin):
    """Through the CLI: sinfo cannot answer, so sbatch is asked and refuses; exit 2, one line on stderr."""
    said = ("sbatch: error: invalid partition specified: nope\n"
            "sbatch: error: Batch job submission failed: Invalid partition name specified")
    _tool(slurm_bin, "sbatch", stderr=said, status=1)
    env = {**os.environ, "PATH": f"{slurm_bin}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1",
           "UNLEARN_BENCH_SWEEP_CHECK": "0"}  # the jobs' own validation is not what this test is about
    r = subprocess.run([CLI, "-m", "data=digits", "model=mlp", "method=none", "seed=0,1", "name=ref",
                        f"runs_dir={tmp_path / 'runs'}", f"cache_dir={tmp_path / 'cache'}",
                        "hydra/launcher=slurm_cpu", "hydra.launcher.partition=nope"], capture_output=True,
                       text=True, timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.strip() == (
        "error: sbatch refused the submission: invalid partition specified: nope; Invalid partition name "
        "specified; nothing was submitted; fix: hydra.launcher.partition=<a partition sinfo lists>"), r.stderr
    assert "0 of 2 runs already finished (skipped); submitting 2" in r.stdout
    assert (slurm_bin / "sbatch.calls").read_text().count("\n") == 1  # one array, tried once


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
