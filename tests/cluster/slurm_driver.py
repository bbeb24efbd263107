"""Drives a one-node Slurm cluster for the cluster tier; run inside a fresh network namespace
(``unshare -n``, so its ports are reachable from this machine only).

Starts munged, slurmctld and slurmd from Debian's packages in the foreground with a private state folder
and ``deploy/slurm/slurm.conf.in``, waits for the node to be idle, runs a digits sweep through
``hydra/launcher=slurm_cpu``, records what ``squeue`` showed while it ran, relaunches it (nothing may be
submitted), stops every daemon by PID and checks they are gone. Prints one JSON line with what it saw.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from daemons import wait_for  # tests/cluster, the driver's own folder

ROOT = Path(__file__).resolve().parent.parent.parent


def start(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def main(work: str, bindir: str) -> None:
    work_p = Path(work)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # Slurm resolves its listening address with AI_ADDRCONFIG, which finds no IPv4 address where loopback's
    # 127.0.0.1 is the only one: a second address on lo itself satisfies it and is reachable from nowhere
    subprocess.run(["ip", "addr", "add", "10.254.0.1/32", "dev", "lo"], check=True)
    d = work_p / "slurm"
    for sub in ("munge", "state", "spool", "log"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(d / "munge", 0o755)
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    mem_mb = int(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 * 0.8)
    conf = (ROOT / "deploy/slurm/slurm.conf.in").read_text().format(
        dir=d, host=os.uname().nodename.split(".")[0], user=os.environ.get("USER", "root"), ctld_port=6817,
        slurmd_port=6818, cpus=os.cpu_count(), mem_mb=mem_mb)
    (d / "slurm.conf").write_text(conf)
    env = dict(os.environ, SLURM_CONF=str(d / "slurm.conf"))
    procs: list[subprocess.Popen] = []
    report: dict = {}
    try:
        procs.append(start(["munged", "-F", "--force", f"--key-file={key}", f"--socket={d}/munge/munge.socket",
                            f"--pid-file={d}/munge/munged.pid", f"--log-file={d}/munge/munged.log",
                            f"--seed-file={d}/munge/munged.seed"], d / "log" / "munged.out", env))
        wait_for("munged", lambda: (d / "munge" / "munge.socket").exists(), 30, procs)
        procs.append(start(["slurmctld", "-D", "-i", "-f", str(d / "slurm.conf")], d / "log" / "ctld.out", env))
        procs.append(start(["slurmd", "-D", "-N", "ubnode", "-f", str(d / "slurm.conf")], d / "log" / "d.out", env))

        def idle() -> bool:
            r = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True)
            return r.returncode == 0 and r.stdout.strip() == "idle"
        wait_for("the node to be idle", idle, 90, procs)
        report["daemons"] = [p.pid for p in procs]

        sweep = [f"{bindir}/unlearn-bench", "-m", "data=digits", "model=mlp", "method=none,finetune", "seed=0",
                 "progress=false", "name=slurm", f"runs_dir={work_p / 'runs'}", f"cache_dir={work_p / 'cache'}",
                 "hydra/launcher=slurm_cpu", "hydra.launcher.partition=cpu", "hydra.launcher.cpus_per_task=1",
                 "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=20"]
        t0 = time.time()
        first = subprocess.Popen(sweep, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        names = set()
        while first.poll() is None:  # what the queue shows while the array runs
            q = subprocess.run(["squeue", "-h", "-o", "%j"], env=env, capture_output=True, text=True)
            names.update(q.stdout.split())
            time.sleep(1)
        out = first.stdout.read()
        report["first"] = {"rc": first.returncode, "s": round(time.time() - t0, 1), "head": out[:3000],
                           "tail": out[-3000:]}
        report["job_names"] = sorted(names)
        before = subprocess.run(["sacct", "-n"], env=env, capture_output=True, text=True).stdout
        again = subprocess.run(sweep, env=env, capture_output=True, text=True, timeout=600)
        report["again"] = {"rc": again.returncode, "tail": (again.stdout + again.stderr)[-3000:]}
        report["queue_after"] = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout
        report["sacct_unchanged"] = before == subprocess.run(["sacct", "-n"], env=env, capture_output=True,
                                                             text=True).stdout
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        report["left_running"] = [p.pid for p in procs if p.poll() is None]
        for log in (d / "log").glob("*"):
            report.setdefault("logs", {})[log.name] = log.read_text()[-800:]
        shutil.rmtree(d / "state", ignore_errors=True)
        print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
