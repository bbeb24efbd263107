"""Drives a real Ray head for the cluster tier; run inside a fresh network namespace (``unshare -n``),
where ``lo`` is the only interface, so whatever Ray binds is reachable from this machine alone.

Steps: bring ``lo`` up, refuse to go on unless every interface is loopback, start ``ray start --head
--block`` in its own process group, check every listening socket is on a loopback address, run a digits
sweep through ``hydra/launcher=ray_cluster`` against that head, run it again (every run is skipped), stop
the head by its process group and check its processes are gone. Prints one JSON line with what it saw.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from daemons import stop_group, wait_for  # tests/cluster, the driver's own folder


def on_loopback(addr: str) -> bool:
    """A listening address reachable only from this machine: a loopback address (IPv4-mapped too), or
    any-address (``*``), which in a namespace whose only interface is ``lo`` means loopback."""
    a = addr.strip("[]").split("%")[0]
    if a == "*":
        return True
    ip = ipaddress.ip_address(a)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or ip.is_unspecified or bool(mapped and mapped.is_loopback)


def interfaces() -> list[str]:
    """Interfaces of this network namespace (/proc/self/net follows the namespace; /sys/class/net
    does not unless sysfs is remounted)."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


def listening(pids: set[int]) -> list[tuple[str, int]]:
    """(address, pid) of every listening TCP socket owned by one of ``pids``."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        cols = line.split()
        local = cols[3]
        for pid in (int(p.split("=")[1]) for p in line.split(",") if p.startswith("pid=")):
            if pid in pids:
                found.append((local.rsplit(":", 1)[0], pid))
    return found


def group_pids(pgid: int) -> set[int]:
    pids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.getpgid(int(d.name)) == pgid:
                    pids.add(int(d.name))
            except ProcessLookupError:
                pass
    return pids


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def main(work: str, bindir: str) -> None:
    work_p = Path(work)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    if interfaces() != ["lo"]:
        raise SystemExit(f"abort: interfaces other than loopback are present ({interfaces()}); "
                         f"run this driver under `unshare -n`")
    port = 6390
    ray_tmp = tempfile.mkdtemp(prefix="ubray-")  # Ray's socket paths must stay under 107 bytes
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    head = subprocess.Popen([f"{bindir}/ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                             f"--port={port}", "--include-dashboard=false", "--num-cpus=2",
                             "--disable-usage-stats", f"--temp-dir={ray_tmp}"],
                            env=env, stdout=open(work_p / "head.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    report: dict = {"head_pid": head.pid}
    try:
        wait_for(f"the ray head on 127.0.0.1:{port}", lambda: port_open(port), 120, [head],
                 work_p / "head.log")
        for _ in range(60):  # the raylet and its agents open their ports after the GCS
            socks = listening(group_pids(head.pid))
            if len({pid for _, pid in socks}) >= 2:
                break
            time.sleep(1)
        report["listening"] = sorted({a for a, _ in socks})
        bad = [a for a, _ in socks if not on_loopback(a)]
        if not socks or bad:
            raise SystemExit(f"abort: ray listens on non-loopback addresses {bad} (or on none: {socks})")
        sweep = [f"{bindir}/unlearn-bench", "-m", "data=digits", "model=mlp", "method=none,finetune",
                 "seed=0,1", "progress=false", "name=ray", f"runs_dir={work_p / 'runs'}",
                 f"cache_dir={work_p / 'cache'}", "hydra/launcher=ray_cluster",
                 f"hydra.launcher.init.address=127.0.0.1:{port}", "hydra.launcher.remote.num_cpus=1"]
        t0 = time.time()
        first = subprocess.run(sweep, env=env, capture_output=True, text=True, timeout=900)
        out = first.stdout + first.stderr
        report["first"] = {"rc": first.returncode, "s": round(time.time() - t0, 1), "head": out[:3000],
                           "tail": out[-3000:]}
        again = subprocess.run(sweep, env=env, capture_output=True, text=True, timeout=600)
        report["again"] = {"rc": again.returncode, "tail": (again.stdout + again.stderr)[-3000:]}
    finally:
        pids = group_pids(head.pid)
        stop_group(head, 60)
        time.sleep(2)
        report["left_running"] = sorted(p for p in pids if Path(f"/proc/{p}").exists()
                                        and "zombie" not in Path(f"/proc/{p}/status").read_text().lower())
        for p in report["left_running"]:
            os.kill(p, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
