"""A Slurm request checked against what ``sinfo`` says about the cluster, before anything is submitted.

sbatch refuses some impossible requests (a partition that does not exist, a GPU on nodes without GPUs,
more memory than a node has), but accepts others that can never start: more CPUs per task than any node
of the partition has (the job pends with reason ``PartitionConfig``) or more time than the partition
allows (``PartitionTimeLimit``), and on a large grid the per-job checks before submission cost minutes.
``check_request`` asks ``sinfo`` once and turns each of these into one line naming the problem and the
fix. When ``sinfo`` is missing or cannot answer, nothing is checked here.
"""

# no `from __future__ import annotations`: Hydra's plugin scan runs this module outside sys.modules, where
# dataclasses cannot resolve annotations given as strings
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from unlearn_bench.errors import ConfigError

# Slurm 22.05's sinfo fields: partition (default marked *), availability, time limit, CPUs and memory (MB)
# per node, generic resources, node count; one line per partition and node configuration
SINFO_FORMAT = "%P|%a|%l|%c|%m|%G|%D"
SINFO_TIMEOUT_S = 30
_UNITS_MB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2}


@dataclass
class NodeGroup:
    cpus: int
    mem_mb: float
    gpus: dict[str, int]        # GPU type ("" when untyped) -> GPUs per node
    at_least: bool = False      # sinfo printed "N+" (nodes that differ): N is a lower bound

    def gpu_count(self, kind: str | None) -> int:
        return sum(n for t, n in self.gpus.items() if kind is None or t == kind)


@dataclass
class Partition:
    name: str
    default: bool
    avail: str
    limit_min: float | None     # None: no limit
    groups: list[NodeGroup] = field(default_factory=list)


def minutes(text: str) -> float | None:
    """Minutes in a Slurm time (``infinite``, ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``);
    None for no limit."""
    t = text.strip().lower()
    if t in ("infinite", "unlimited", "n/a", "none", ""):
        return None
    days, _, rest = t.rpartition("-")
    parts = [int(x) for x in rest.split(":")]
    if days:
        h, m, s = (parts + [0, 0])[:3]
        return int(days) * 1440 + h * 60 + m + s / 60
    if len(parts) == 3:
        return parts[0] * 60 + parts[1] + parts[2] / 60
    return parts[0] + (parts[1] / 60 if len(parts) == 2 else 0)


def megabytes(value) -> float | None:
    """MB in a Slurm memory size (``4000``, ``4G``, ``32GB``, ``512M``); plain numbers are MB."""
    if value is None or value == "":
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(value), re.IGNORECASE)
    if m is None:
        raise ValueError(f"not a memory size: {value!r}")
    return float(m.group(1)) * _UNITS_MB[(m.group(2) or "M").upper()]


def gres_gpus(gres: str) -> dict[str, int]:
    """GPUs in a gres list as sinfo prints it (``gpu:a100:4(S:0-1),shard:8``, ``gpu:2``, ``(null)``)."""
    out: dict[str, int] = {}
    for item in re.sub(r"\([^)]*\)", "", gres).split(","):
        fields = item.strip().split(":")
        if fields[0] != "gpu":
            continue
        count = re.match(r"\d+", fields[-1]) if len(fields) > 1 else None
        kind = fields[1] if len(fields) == 3 else ""
        out[kind] = out.get(kind, 0) + (int(count.group()) if count else 1)
    return out


def parse_sinfo(text: str) -> dict[str, Partition]:
    """Partitions from ``sinfo --noheader --format=SINFO_FORMAT`` output; ValueError on a line it cannot
    read."""
    parts: dict[str, Partition] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, avail, limit, cpus, mem, gres, _nodes = line.strip().split("|")
        default = name.endswith("*")
        name = name.rstrip("*")
        p = parts.setdefault(name, Partition(name, default, avail, minutes(limit)))
        more = cpus.endswith("+") or mem.endswith("+")
        p.groups.append(NodeGroup(int(cpus.rstrip("+")), float(mem.rstrip("+")), gres_gpus(gres), more))
    return parts


def query_sinfo() -> dict[str, Partition] | None:
    """The cluster's partitions, or None when sinfo is not installed or cannot answer."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(["sinfo", "--all", "--noheader", f"--format={SINFO_FORMAT}"],
                             capture_output=True, text=True, timeout=SINFO_TIMEOUT_S)
        return parse_sinfo(out.stdout) if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


@dataclass
class Request:
    """What one job asks of one node, and the setting each figure comes from (for the messages)."""

    partitions: list[str] | None
    partition_key: str
    cpus: int
    cpus_key: str
    mem_mb: float | None
    mem_key: str
    gpus: int
    gpu_kind: str | None
    gpus_key: str
    minutes: float | None


def _gpu_setting(value) -> tuple[int, str | None]:
    """(count, type) of ``2``, ``"a100:2"`` or a gres ``"gpu:a100:2"`` / ``"gpu"``."""
    text = str(value).strip()
    if text.isdigit():
        return int(text), None
    found = gres_gpus(text if text.startswith("gpu") else f"gpu:{text}")
    if not found:
        return 0, None
    kind = next(iter(found))
    return sum(found.values()), (kind or None)


def request_of(params: dict) -> Request:
    """The per-node request of a submitit Slurm launcher's settings (``hydra.launcher``)."""
    extra = {str(k).replace("-", "_"): v for k, v in (params.get("additional_parameters") or {}).items()}

    def pick(key: str):
        if extra.get(key) is not None:
            return extra[key], f"hydra.launcher.additional_parameters.{key}"
        return params.get(key), f"hydra.launcher.{key}"

    tasks = int(params.get("tasks_per_node") or 1)
    part, part_key = pick("partition")
    if part is None and os.environ.get("SBATCH_PARTITION"):
        part, part_key = os.environ["SBATCH_PARTITION"], "SBATCH_PARTITION"
    cpt, cpus_key = pick("cpus_per_task")
    cpus = int(cpt or 1) * tasks
    gpus, kind, gpus_key = 0, None, "hydra.launcher.gpus_per_node"
    gpu_keys = (("gpus_per_node", False), ("gres", False), ("gpus", False), ("gpus_per_task", True))
    for key, per_task in gpu_keys:
        value, where = pick(key)
        if value is not None and str(value) not in ("", "0"):
            n, t = _gpu_setting(value)
            if n:
                gpus, kind, gpus_key = n * (tasks if per_task else 1), t, where
                break
    mem_mb, mem_key = None, "hydra.launcher.mem_gb"
    mem, where = pick("mem")
    if mem is not None:
        mem_mb, mem_key = megabytes(mem), where
    elif params.get("mem_gb") is not None:
        mem_mb = float(params["mem_gb"]) * 1024
    else:
        for key, times in (("mem_per_cpu", cpus), ("mem_per_gpu", gpus)):
            value, where = pick(key)
            if value is not None and times:
                mem_mb, mem_key = megabytes(value) * times, where
                break
    t = params.get("timeout_min")
    return Request([p.strip() for p in str(part).split(",")] if part else None, part_key, cpus, cpus_key,
                   mem_mb, mem_key, gpus, kind, gpus_key, float(t) if t is not None else None)


def _gb(mb: float) -> str:
    return f"{mb / 1024:.0f} GB" if mb >= 10240 else f"{mb / 1024:.1f} GB"


def _problem(req: Request, p: Partition, parts: dict[str, Partition]) -> tuple[str, str] | None:
    """(problem, fix) if no node of ``p`` can ever run ``req``; None if one can (or sinfo cannot tell)."""
    if req.gpus:
        with_gpus = [g for g in p.groups if g.gpu_count(req.gpu_kind)]
        if not with_gpus:
            kind = f" of type {req.gpu_kind}" if req.gpu_kind else ""
            others = [n for n, q in parts.items() if any(g.gpu_count(req.gpu_kind) for g in q.groups)]
            where = f", or hydra.launcher.partition=<one with GPUs: {', '.join(others)}>" if others else ""
            return (f"{req.gpus_key} asks for a GPU{kind} but no node of partition '{p.name}' has one "
                    f"(sinfo lists no gpu gres there)",
                    f"hydra/launcher=slurm_cpu (or {req.gpus_key}=0) to run without a GPU{where}")
        most = max(g.gpu_count(req.gpu_kind) for g in with_gpus)
        if req.gpus > most and not any(g.at_least for g in with_gpus):
            return (f"{req.gpus_key} asks for {req.gpus} GPUs per node but nodes of partition '{p.name}' "
                    f"have at most {most}", f"{req.gpus_key}={most} or fewer")
    exact = not any(g.at_least for g in p.groups)
    most_cpus = max(g.cpus for g in p.groups)
    if exact and req.cpus > most_cpus:
        return (f"{req.cpus_key} asks for {req.cpus} CPUs per node but nodes of partition '{p.name}' have at "
                f"most {most_cpus}", f"{req.cpus_key}={most_cpus} or fewer (CPUs per task x tasks_per_node)")
    most_mem = max(g.mem_mb for g in p.groups)
    if exact and req.mem_mb is not None and req.mem_mb > most_mem:
        fix = (f"hydra.launcher.mem_gb={int(most_mem // 1024)} or less" if req.mem_key.endswith("mem_gb")
               else f"a smaller {req.mem_key}")
        return (f"{req.mem_key} asks for {_gb(req.mem_mb)} per node but nodes of partition '{p.name}' have "
                f"at most {_gb(most_mem)} ({most_mem:.0f} MB)", fix)
    if req.minutes is not None and p.limit_min is not None and req.minutes > p.limit_min:
        return (f"hydra.launcher.timeout_min={req.minutes:g} is longer than partition '{p.name}' allows "
                f"({p.limit_min:g} min)", f"hydra.launcher.timeout_min={int(p.limit_min)} or less")
    fits = [g for g in p.groups if g.at_least or (g.cpus >= req.cpus and g.gpu_count(req.gpu_kind) >= req.gpus
                                                  and (req.mem_mb is None or g.mem_mb >= req.mem_mb))]
    if not fits:
        mem = f", {_gb(req.mem_mb)}" if req.mem_mb is not None else ""
        return (f"no node of partition '{p.name}' has {req.cpus} CPUs{mem} and {req.gpus} GPUs together",
                f"ask for less ({req.cpus_key}, {req.mem_key}, {req.gpus_key}) or another partition")
    return None


def problems(req: Request, parts: dict[str, Partition]) -> tuple[str | None, str | None]:
    """(error, warning) for ``req`` on the cluster ``parts`` describes, each one line or None."""
    names = ", ".join(parts)
    if req.partitions is None:
        default = [n for n, p in parts.items() if p.default]
        if not default:
            return (f"no partition given and the cluster has no default partition (sinfo lists: {names}); "
                    f"fix: hydra.launcher.partition=<one of them> (or export SLURM_PARTITION)"), None
        wanted = default
    else:
        wanted = req.partitions
        missing = [n for n in wanted if n not in parts]
        if missing:
            return (f"partition '{missing[0]}' does not exist (sinfo lists: {names}); fix: "
                    f"{req.partition_key}=<one of them>"), None
    found = {n: _problem(req, parts[n], parts) for n in wanted}
    usable = [n for n, f in found.items() if f is None]
    if not usable:
        if len(found) == 1:
            problem, fix = next(iter(found.values()))
            return f"{problem}; fix: {fix}", None
        said = "; ".join(f"{n}: {f[0]}" for n, f in found.items())
        first_fix = next(iter(found.values()))[1]
        return f"no partition of {','.join(wanted)} can run the job ({said}); fix: {first_fix}", None
    down = [n for n in usable if parts[n].avail.lower() != "up"]
    if len(down) == len(usable):
        return None, (f"partition '{down[0]}' is {parts[down[0]].avail} (sinfo): the jobs wait until it is "
                      f"up; another partition runs them sooner")
    return None, None


_checked: set[str] = set()


def check_request(params: dict, enabled: bool = True) -> str | None:
    """Raise ``ConfigError`` (one line) if ``sinfo`` shows that this Slurm request can never run; return a
    warning line (or None) otherwise. sinfo is asked once per request and process; without it, this passes."""
    if not enabled:
        return None
    try:
        req = request_of(params)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"the Slurm request in hydra.launcher cannot be read ({e}); fix: give numbers "
                          f"(cpus_per_task, gpus_per_node, timeout_min) and memory sizes such as 4G"
                          ) from None
    if repr(req) in _checked:
        return None
    parts = query_sinfo()
    if not parts:
        return None
    error, warning = problems(req, parts)
    if error:
        raise ConfigError(error)
    _checked.add(repr(req))
    return warning


def check_launcher(launcher) -> str | None:
    """``check_request`` for a composed ``hydra.launcher`` node, for a caller that has not started Hydra
    yet (the CLI, before it checks every job of a sweep); launchers other than Slurm's pass."""
    from omegaconf import OmegaConf

    if not str(launcher.get("_target_", "")).endswith("SlurmArrayLauncher"):
        return None
    params = {}
    for key in launcher:
        try:  # only what the request needs: folders and setup lines may name settings known to jobs only
            value = launcher[key]
            params[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        except Exception:  # noqa: BLE001
            continue
    return check_request(params, bool(params.get("sinfo_check", True)))
