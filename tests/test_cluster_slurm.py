"""Cluster tier: a one-node Slurm cluster (Debian's munge, slurmctld, slurmd; no accounting) started on this
machine (``pytest -m cluster``; ``make test-cluster`` installs the packages).

Each test starts the daemons in a fresh network namespace (``unshare -n``, root) through
``tests/cluster/slurm_driver.py``, plays one scenario and stops them by PID: impossible requests end in one
line before anything is submitted; a digits sweep runs as a job array, a task cancelled while it runs is
named in one line and a relaunch submits only that run; a training longer than its time limit is requeued
and resumes from its last epoch to the metrics of an uninterrupted run.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn_bench.run.store import load_results

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parent.parent


def _drive(tmp_path: Path, scenario: str) -> dict:
    missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(c) is None]
    assert not missing, f"{missing} not installed: apt-get install slurmctld slurmd munge slurm-client " \
                        f"(make test-cluster does)"
    if subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.fail("the Slurm tier needs `unshare -n` (root or CAP_SYS_ADMIN) to keep the daemons private")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(["unshare", "-n", sys.executable, str(ROOT / "tests/cluster/slurm_driver.py"),
                          str(tmp_path), str(Path(sys.executable).parent), scenario], capture_output=True,
                         text=True, timeout=1200, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["left_running"] == {}, report
    assert report["left_in_queue"] == {}, report
    return report


def _one_error_line(run: dict) -> str:
    assert run["rc"] == 2, run
    lines = run["stderr"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "; fix: " in lines[0], run["stderr"]
    return lines[0]


def test_slurm_requests_no_node_can_run_end_in_one_line_before_anything_is_submitted(tmp_path):
    report = _drive(tmp_path, "checks")
    assert _one_error_line(report["partition"]) == (
        "error: partition 'gpu' does not exist (sinfo lists: cpu); fix: hydra.launcher.partition=<one of "
        "them>")
    line = _one_error_line(report["gpu"])
    assert line.startswith("error: hydra.launcher.gpus_per_node asks for a GPU but no node of partition")
    assert "hydra/launcher=slurm_cpu" in line
    line = _one_error_line(report["memory"])
    assert line.startswith("error: hydra.launcher.mem_gb asks for")
    assert "nodes of partition 'cpu' have at most" in line
    line = _one_error_line(report["cpus"])  # sbatch accepts this one: it would pend forever (PartitionConfig)
    assert "CPUs per node but nodes of partition 'cpu' have at most" in line
    for case in ("partition", "gpu", "memory", "cpus"):  # refused before the per-job checks and submission
        assert "runs already finished" not in report[case]["head"], report[case]
    assert report["queue_after_checks"] == {}  # squeue lists no job at all, not even a refused one
    line = _one_error_line(report["sbatch"])  # the check off: sbatch's own refusal, in one line
    assert line.startswith("error: sbatch refused the submission: ") and "Invalid partition name" in line


def test_slurm_array_cancelled_task_is_one_line_and_a_relaunch_submits_only_that_run(tmp_path):
    report = _drive(tmp_path, "sweep")
    first = report["first"]
    assert report["cancelled"], first  # task 1 was seen running and cancelled
    assert not report.get("hung"), f"the submitter still waited 300 s after the cancel: {first}"
    assert "0 of 2 runs already finished (skipped); submitting 2" in first["head"]
    assert report["job_names"] == ["ub-slurm"]  # squeue names the experiment, not `cli`
    assert first["rc"] == 1, first
    lines = first["stderr"].strip().splitlines()
    assert len(lines) == 1, first["stderr"]
    array, task = report["cancelled"].split("_")
    log = tmp_path / "runs" / "slurm" / ".submitit" / report["cancelled"] / f"{report['cancelled']}_0_log.err"
    folder = tmp_path / "runs" / "slurm" / "digits-mlp" / "finetune"
    assert lines[0].startswith(f"error: run {folder}"), lines[0]
    assert "(method=finetune) did not finish" in lines[0]
    assert f"job {report['cancelled']} was cancelled" in lines[0]
    assert f"log: {log};" in lines[0] and log.exists()
    second = report["second"]  # the run that finished is kept; only the cancelled one is submitted
    assert second["rc"] == 0, second
    assert "1 of 2 runs already finished (skipped); submitting 1" in second["head"]
    assert "finetune" in second["head"] and "#0 : " in second["head"]
    third = report["third"]
    assert third["rc"] == 0 and "2 of 2 runs already finished (skipped); submitting 0" in third["tail"], third
    assert report["new_jobs_on_third"] == [] and report["queue_after"].strip() == ""
    runs = load_results(tmp_path / "runs" / "slurm")
    assert sorted(runs["method"]) == ["finetune", "none"] and (runs["status"] == "ok").all()


def _differ(a: dict, b: dict) -> list[str]:
    """Keys whose values differ between two metrics.json, timings aside."""
    keys = {k for k in a.keys() | b.keys() if not (k.startswith("cost/") or k.endswith("_s"))}
    return sorted(k for k in keys if a.get(k) != b.get(k))


def test_slurm_timeout_requeues_the_job_and_it_resumes_to_an_uninterrupted_runs_metrics(tmp_path):
    report = _drive(tmp_path, "requeue")
    assert "calibration" not in report, report.get("calibration")
    job, ref = report["job"], report["ref"]
    assert job["rc"] == 0, job
    assert ref["rc"] == 0, ref
    states = [s for _, s in report["states"]]
    timing = f"states {report['states']}, {report['epochs']} epochs at {report['s_per_epoch']} s"
    assert report["requeued"], f"no requeue: {timing}"
    assert states.count("RUNNING") >= 2 and "PENDING" in states[states.index("RUNNING"):], timing
    resumed = report["resumed"]
    assert resumed and all(f"of {report['epochs']}" in r for r in resumed), (resumed, timing)
    assert int(resumed[0].split("resuming from epoch ")[1].split()[0]) > 0, resumed
    (metrics,), (ref_metrics,) = report["metrics"], report["ref_metrics"]
    assert metrics["status"] == "ok" and metrics["config_hash"] == ref_metrics["config_hash"]
    assert _differ(metrics, ref_metrics) == [], (metrics, ref_metrics)  # every metric equal, bit for bit
