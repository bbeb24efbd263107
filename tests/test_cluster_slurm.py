"""Cluster tier: a one-node Slurm cluster (Debian's munge, slurmctld, slurmd) started on this machine runs
a digits sweep as a job array (``pytest -m cluster``; ``make test-cluster`` installs the packages).

The daemons run in a fresh network namespace (``unshare -n``, root) and are stopped by PID; the relaunch
of the finished sweep must submit nothing (the accounting record is unchanged).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn_bench.store import load_results

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parent.parent


def test_slurm_array_runs_a_sweep_and_a_relaunch_submits_nothing(tmp_path):
    missing = [c for c in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(c) is None]
    assert not missing, f"{missing} not installed: apt-get install slurmctld slurmd munge slurm-client " \
                        f"(make test-cluster does)"
    if subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.fail("the Slurm tier needs `unshare -n` (root or CAP_SYS_ADMIN) to keep the daemons private")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(["unshare", "-n", sys.executable, str(ROOT / "tests/cluster/slurm_driver.py"),
                          str(tmp_path), str(Path(sys.executable).parent)], capture_output=True, text=True,
                         timeout=1800, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["first"]["rc"] == 0, report["first"]["tail"]
    assert "0 of 2 runs already finished (skipped); submitting 2" in report["first"]["head"]
    assert report["job_names"] == ["ub-slurm"]  # squeue names the experiment, not `cli`
    assert report["again"]["rc"] == 0, report["again"]["tail"]
    assert "2 of 2 runs already finished (skipped); submitting 0" in report["again"]["tail"]
    assert report["queue_after"].strip() == ""
    assert report["left_running"] == [], report
    runs = load_results(tmp_path / "runs" / "slurm")
    assert sorted(runs["method"]) == ["finetune", "none"] and (runs["status"] == "ok").all()
    assert list((tmp_path / "runs" / "slurm" / ".submitit").iterdir())  # it went through sbatch
