"""Cluster tier: a real Ray head on this machine runs a digits sweep (``pytest -m cluster``).

The head runs in a fresh network namespace whose only interface is loopback (``unshare -n``, root), so it
can be reached from this machine alone; the driver also refuses to send work if any socket of the head
listens elsewhere. The head is stopped by its process group and checked gone.
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


def test_ray_cluster_runs_a_sweep_and_a_relaunch_submits_nothing(tmp_path):
    bindir = Path(sys.executable).parent
    assert (bindir / "ray").exists(), "ray is not installed: pip install -e '.[ray]' (make test-cluster does)"
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.fail("the Ray tier needs `unshare -n` (root or CAP_SYS_ADMIN) to keep the head on loopback")
    home = tmp_path / "home"  # Ray keeps an auth token under ~/.ray: one of the user's must not leak in
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(["unshare", "-n", sys.executable, str(ROOT / "tests/cluster/ray_driver.py"),
                          str(tmp_path), str(bindir)], capture_output=True, text=True, timeout=1800, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["first"]["rc"] == 0, report["first"]["tail"]
    assert report["again"]["rc"] == 0, report["again"]["tail"]
    assert report["left_running"] == [], report
    runs = load_results(tmp_path / "runs" / "ray")
    assert sorted(zip(runs["method"], runs["seed"])) == [("finetune", 0), ("finetune", 1), ("none", 0),
                                                          ("none", 1)]
    assert (runs["status"] == "ok").all()
    assert "0 of 4 runs already finished (skipped); submitting 4" in report["first"]["head"]
    # the relaunch asks Ray for nothing: every run is dropped before submission
    assert "4 of 4 runs already finished (skipped); submitting 0" in report["again"]["tail"], report["again"]
