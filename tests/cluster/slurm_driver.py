"""Drives a one-node Slurm cluster for the cluster tier; run inside a fresh network namespace
(``unshare -n``, so its ports are reachable from this machine only):
``python slurm_driver.py <work folder> <venv bin> <scenario>``.

Starts munged, slurmctld and slurmd from Debian's packages in the foreground with a private state folder
and ``deploy/slurm/slurm.conf.in``, waits for the node to be idle, plays one scenario, then cancels what is
left, stops every daemon by PID (slurmd, then slurmctld, then munged), kills by PID whatever is still
running in the namespace and reports it. Prints one JSON line with what it saw. Scenarios:

- ``checks``: requests sinfo shows impossible (a partition that does not exist, a GPU on the CPU node,
  more memory or CPUs than the node has) end before submission; with the check off, sbatch's refusal;
- ``sweep``: a digits sweep as a job array, one task cancelled while it runs; the relaunch submits only
  that run, and a third launch submits nothing;
- ``requeue``: a training longer than its 1-minute limit is signalled, requeued and resumed until it
  ends; an uninterrupted run of the same configuration trains beside it.
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

from daemons import namespace_pids, stop_group, wait_for  # tests/cluster, the driver's own folder

ROOT = Path(__file__).resolve().parent.parent.parent
DIGITS = ["data=digits", "model=mlp", "progress=false"]
SLURM = ["hydra/launcher=slurm_cpu", "hydra.launcher.partition=cpu", "hydra.launcher.cpus_per_task=1",
         "hydra.launcher.mem_gb=2"]
BASE = [*DIGITS, *SLURM, "hydra.launcher.timeout_min=20"]


def start(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def sh(cmd: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, **kw)


def queue(env: dict, states: str = "all") -> dict[str, str]:
    """Every job (array tasks one a line) squeue lists, with its state; ended jobs stay MinJobAge seconds."""
    out = sh(["squeue", "-h", "-r", f"--states={states}", "-o", "%i|%T"], env, timeout=60).stdout
    return dict(line.split("|", 1) for line in out.split())


def result(p: subprocess.Popen | subprocess.CompletedProcess, t0: float) -> dict:
    out, err = (p.stdout.read(), p.stderr.read()) if isinstance(p, subprocess.Popen) else (p.stdout, p.stderr)
    return {"rc": p.returncode, "s": round(time.time() - t0, 1), "head": out[:3000], "tail": out[-3000:],
            "stderr": err[-3000:]}


def checks(work: Path, bindir: str, env: dict, mem_mb: int) -> dict:
    sweep = [f"{bindir}/unlearn-bench", "-m", *BASE, "method=none", "seed=0,1", "name=checks",
             f"runs_dir={work / 'runs'}", f"cache_dir={work / 'cache'}"]
    cases = {"partition": ["hydra.launcher.partition=gpu"], "gpu": ["hydra/launcher=slurm"],
             "memory": [f"hydra.launcher.mem_gb={mem_mb // 1024 + 8}"],
             "cpus": [f"hydra.launcher.cpus_per_task={os.cpu_count() + 1}"]}
    t0 = time.time()
    running = {k: subprocess.Popen([*sweep, *v], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True) for k, v in cases.items()}
    report = {}
    for k, p in running.items():
        p.wait(600)
        report[k] = result(p, t0)
    report["queue_after_checks"] = queue(env)
    t0 = time.time()  # the check off: sbatch itself refuses the partition
    off = ["hydra.launcher.partition=gpu", "hydra.launcher.sinfo_check=false"]
    report["sbatch"] = result(sh([*sweep, *off], env, timeout=600), t0)
    return report


def sweep(work: Path, bindir: str, env: dict) -> dict:
    cmd = [f"{bindir}/unlearn-bench", "-m", *BASE, "method=none,finetune", "seed=0", "name=slurm",
           f"runs_dir={work / 'runs'}", f"cache_dir={work / 'cache'}"]
    t0 = time.time()
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    names, cancelled = set(), None
    while first.poll() is None:  # what the queue shows while the array runs; cancel task 1 once it runs
        names.update(sh(["squeue", "-h", "-o", "%j"], env).stdout.split())
        running = [j for j, s in queue(env, "running").items() if j.endswith("_1")]
        if cancelled is None and running:
            cancelled = running[0]
            sh(["scancel", cancelled], env, check=True)
        if time.time() - t0 > 300:  # a submitter that never notices the cancelled task
            first.kill()
            first.wait()
            return {"first": result(first, t0), "cancelled": cancelled, "hung": True}
        time.sleep(0.5)
    report = {"first": result(first, t0), "job_names": sorted(names), "cancelled": cancelled}
    t0 = time.time()
    report["second"] = result(sh(cmd, env, timeout=600), t0)
    before = queue(env)
    t0 = time.time()
    report["third"] = result(sh(cmd, env, timeout=600), t0)
    report["new_jobs_on_third"] = sorted(set(queue(env)) - set(before))
    report["queue_after"] = sh(["squeue", "-h"], env).stdout
    return report


def requeue(work: Path, bindir: str, env: dict) -> dict:
    env = dict(env, UNLEARN_BENCH_CHECKPOINT_EVERY_S="0")  # save every epoch
    one = [f"{bindir}/unlearn-bench", *DIGITS, "method=none", "seed=0"]
    # the epochs that train for ~60 s on this machine, alone: beside the reference run it takes longer still,
    # past the first signal (25 to 55 s into a job with a 1-minute limit and signal_delay_s=5: Slurm looks at
    # time limits every 30 s), so the job is requeued at least once
    t0 = time.time()
    calib = sh([*one, "train.epochs=150", f"runs_dir={work / 'calib'}", f"cache_dir={work / 'calib-cache'}"],
               env, timeout=600)
    if calib.returncode != 0:
        return {"calibration": result(calib, t0)}
    cached = next((work / "calib-cache" / "original").glob("*.json"))
    per_epoch = json.loads(cached.read_text())["train_s"] / 150
    epochs = int(min(20000, max(1500, 60 / per_epoch)))
    report: dict = {"epochs": epochs, "s_per_epoch": round(per_epoch, 4)}
    cmd = [one[0], "-m", *one[1:], *SLURM, f"train.epochs={epochs}",
           "name=requeue", "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=5",
           "hydra.launcher.max_num_timeout=10", f"runs_dir={work / 'runs'}", f"cache_dir={work / 'cache'}"]
    t0 = time.time()
    job = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ref = subprocess.Popen([*one, f"train.epochs={epochs}", "name=requeue", f"runs_dir={work / 'ref'}",
                            f"cache_dir={work / 'ref-cache'}"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    seen: list[list] = []  # the job's states as they change (one run: a plain job, not an array)
    while "job" not in report or "ref" not in report:
        state = next(iter(queue(env).values()), None)
        if state and (not seen or seen[-1][1] != state):
            seen.append([round(time.time() - t0), state])
        for key, p in (("job", job), ("ref", ref)):
            if p.poll() is not None and key not in report:
                report[key] = result(p, t0)
        if time.time() - t0 > 900:
            raise SystemExit(f"the requeue scenario ran past 900 s: states {seen}")
        time.sleep(1)
    report["states"] = seen
    logs = sorted((work / "runs" / "requeue" / ".submitit").rglob("*_log.*"))
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    text += "\n".join(p.read_text(errors="replace") for p in (work / "runs" / "requeue").rglob("*.log"))
    report["resumed"] = sorted({ln.split("][")[-1] for ln in text.splitlines()
                                if "resuming from epoch" in ln})
    report["requeued"] = [ln[-120:] for ln in text.splitlines() if "Requeued job" in ln]
    report["metrics"] = [json.loads(p.read_text()) for p in (work / "runs" / "requeue").rglob("metrics.json")]
    report["ref_metrics"] = [json.loads(p.read_text()) for p in (work / "ref").rglob("metrics.json")]
    return report


def main(work: str, bindir: str, scenario: str) -> None:
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
    report: dict = {"scenario": scenario}
    try:
        procs.append(start(["munged", "-F", "--force", f"--key-file={key}",
                            f"--socket={d}/munge/munge.socket",
                            f"--pid-file={d}/munge/munged.pid", f"--log-file={d}/munge/munged.log",
                            f"--seed-file={d}/munge/munged.seed"], d / "log" / "munged.out", env))
        wait_for("munged", lambda: (d / "munge" / "munge.socket").exists(), 30, procs)
        procs.append(start(["slurmctld", "-D", "-i", "-f", str(d / "slurm.conf")], d / "log" / "ctld.out",
                           env))
        procs.append(start(["slurmd", "-D", "-N", "ubnode", "-f", str(d / "slurm.conf")], d / "log" / "d.out",
                           env))

        def idle() -> bool:
            r = sh(["sinfo", "-h", "-N", "-o", "%T"], env)
            return r.returncode == 0 and r.stdout.strip() == "idle"
        wait_for("the node to be idle", idle, 90, procs)
        report["daemons"] = [p.pid for p in procs]
        play = {"checks": lambda: checks(work_p, bindir, env, mem_mb),
                "sweep": lambda: sweep(work_p, bindir, env),
                "requeue": lambda: requeue(work_p, bindir, env)}[scenario]
        report.update(play())
    finally:
        report["left_in_queue"] = queue(env, "pending,running,completing") if procs else {}
        if report["left_in_queue"]:
            sh(["scancel", *report["left_in_queue"]], env)
            time.sleep(5)
        for p in reversed(procs):  # slurmd first: it reports its jobs' ends to slurmctld, which uses munged
            stop_group(p, 30)
        report["left_running"] = namespace_pids()
        for pid in report["left_running"]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for log in (d / "log").glob("*"):
            report.setdefault("logs", {})[log.name] = log.read_text()[-800:]
        shutil.rmtree(d / "state", ignore_errors=True)
        (work_p / "report.json").write_text(json.dumps(report, indent=1))  # all of it, for a post-mortem
        print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
