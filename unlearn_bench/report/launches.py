"""Expected against found runs: what each multirun launch listed, and which of those runs a runs folder holds.

``RecordLaunch`` (a Hydra callback, registered in conf/config.yaml, so every ``unlearn-bench -m`` has it
whatever the launcher) writes ``<sweep dir>/.launches/<UTC time>-<pid>.json`` when a multirun starts: every
job's override list, expanded as Hydra's basic sweeper expands it (``hydra.sweeper.params`` first, then the
command line; a later value of a key replaces an earlier one in its place), without composing any job's
config. For another sweeper (Optuna) the record holds the number of trials instead. Each job also notes its
override list in its folder (``.hydra/launched.jsonl``) when it starts, or when a launcher skips it as
finished, so a folder rerun with another override list still answers for the first one.

A run folder's ``.hydra/overrides.yaml`` is its job's override list, so a job is found where a folder under
the sweep dir holds that list. ``read`` resolves every recorded job to its folder and state; the report
counts them per table row (``Launches.counts``) and lists the missing ones (``Launches.missing_lines``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from hydra.experimental.callback import Callback

log = logging.getLogger("unlearn_bench")
LAUNCHES = ".launches"
HISTORY = "launched.jsonl"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
SEED_KEYS = ("seed", "method_seed")  # jobs that differ only in these share a table row
FINISHED, FAILED, STOPPED, ERROR, RUNNING, NEVER, DAMAGED = (
    "finished", "failed", "stopped", "ended by an error", "running", "never started", "damaged")
WHY = {
    NEVER: "no folder holds these overrides: never started (cancelled while pending, or not yet run)",
    STOPPED: "started, no metrics.json and no failure record: stopped (cancelled, timed out, killed)",
    RUNNING: "no metrics.json yet and a process holds its lock: running now",
    DAMAGED: "metrics.json unreadable",
}


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def expand_jobs(task: list[str], params: dict | None, config_loader=None) -> list[list[str]]:
    """Every job's override list, in launch order, as ``BasicSweeper.sweep`` builds it."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(task)
    overrides = OverridesParser.create(config_loader=config_loader).parse_overrides(lines)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def launch_record(config) -> dict:
    """What a multirun's config says it will launch (see the module docstring)."""
    from omegaconf import OmegaConf
    sweeper = config.hydra.sweeper
    target = str(sweeper.get("_target_", ""))
    task = [str(o) for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False)]
    rec = {"version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "pid": os.getpid(),
           "sweeper": target, "launcher": str(config.hydra.launcher.get("_target_", "")), "command": task,
           "output_subdir": config.hydra.output_subdir, "jobs": None, "trials": None}
    if target == BASIC_SWEEPER:
        from hydra.core.global_hydra import GlobalHydra
        params = OmegaConf.to_container(sweeper.params, resolve=True) if sweeper.get("params") else {}
        loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
        rec["jobs"] = expand_jobs(task, params, loader)
    elif sweeper.get("n_trials") is not None:
        rec["trials"] = int(sweeper.n_trials)
    return rec


def note_job(run_dir: str | Path, overrides, subdir: str | None = ".hydra") -> None:
    """Add ``overrides`` to the override lists ``run_dir`` has answered for (once each)."""
    if subdir is None:
        return
    path = Path(run_dir) / subdir / HISTORY
    line = json.dumps(sorted(str(o) for o in overrides))
    if path.is_file() and line in path.read_text().splitlines():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(line + "\n")


class RecordLaunch(Callback):
    """Records each multirun's expected jobs (module docstring); never stops a sweep: a record it cannot
    write is one warning line, and the runs go on."""

    def on_multirun_start(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf
        if OmegaConf.select(config, "hydra.launcher.dry_run", default=False):
            return  # a dry run launches nothing
        try:
            rec = launch_record(config)
            sweep = Path(str(config.hydra.sweep.dir))
            name = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.json"
            _write_json(sweep / LAUNCHES / name, rec)
        except Exception as e:  # noqa: BLE001 -- the sweep itself reports what is wrong with its config
            log.warning("the launch record was not written (%s: %s); the report will not list this sweep's "
                        "expected runs", e.__class__.__name__, str(e).splitlines()[0] if str(e) else "")

    def _note(self, config, overrides) -> None:
        from hydra.types import RunMode
        from omegaconf import OmegaConf
        if OmegaConf.select(config, "hydra.mode", default=None) != RunMode.MULTIRUN:
            return
        try:
            note_job(str(config.hydra.runtime.output_dir), overrides, config.hydra.output_subdir)
        except Exception as e:  # noqa: BLE001 -- bookkeeping must not end a run
            log.warning("could not note the job in its folder (%s)", e)

    def on_job_start(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf
        self._note(config, OmegaConf.to_container(config.hydra.overrides.task, resolve=False))

    def on_job_end(self, config, job_return, **kwargs) -> None:
        # also called for jobs a launcher skipped as finished (hydra_plugins/.../skip.py), which never start
        self._note(config, job_return.overrides or [])


@dataclass
class Job:
    overrides: list[str]
    sweep: Path
    record: str
    folder: Path | None = None
    state: str = NEVER
    reason: str = ""

    @property
    def ident(self) -> tuple:
        """One run: its folder once it has one (two override lists that ran in one folder are one run),
        else its overrides in its sweep."""
        if self.folder is not None:
            return ("folder", str(self.folder.resolve()))
        return (str(self.sweep), tuple(sorted(self.overrides)))

    @property
    def found(self) -> bool:
        return self.state in (FINISHED, FAILED)

    def value(self, key: str) -> str | None:
        """The value this job's overrides give ``key`` (a group such as ``method``, or a dotted key)."""
        for o in self.overrides:
            if "=" in o and _key(o) == key:
                return o.split("=", 1)[1]
        return None


@dataclass
class Record:
    path: Path
    sweep: Path
    data: dict
    jobs: list[Job] = field(default_factory=list)
    trial_folders: int = 0  # other sweepers: run folders under the sweep dir that hold a result


def _folder_index(sweep: Path, subdir: str) -> dict[tuple, list[Path]]:
    """sorted override list -> run folders under ``sweep`` that ran it (overrides.yaml and the history)."""
    import yaml
    index: dict[tuple, list[Path]] = {}
    for p in sweep.glob(f"**/{subdir}/overrides.yaml"):
        folder = p.parent.parent
        lists = []
        try:
            lists.append(yaml.safe_load(p.read_text()) or [])
        except (OSError, yaml.YAMLError):
            pass
        hist = p.parent / HISTORY
        if hist.is_file():
            for line in hist.read_text().splitlines():
                try:
                    lists.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        for lst in lists:
            if isinstance(lst, list):
                index.setdefault(tuple(sorted(str(o) for o in lst)), []).append(folder)
    return index


def _state(folder: Path) -> tuple[str, str]:
    """How a job's folder says its run ended: metrics.json (finished, or failed as the table counts it),
    else the run's failure record (an error, a signal, or "unfinished": started and never heard of again),
    else its lock (running now), else nothing: stopped."""
    from unlearn_bench.run import rundir
    from unlearn_bench.run.store import damage
    m = folder / "metrics.json"
    if m.is_file():
        why = damage(m)
        if why is not None:
            return DAMAGED, f"{WHY[DAMAGED]} ({why})"
        status = json.loads(m.read_text()).get("status")
        return (FINISHED, "") if status == "ok" else (FAILED, "")
    from unlearn_bench.run.locks import live_owner
    if live_owner(folder / rundir.LOCK) is not None:  # read, never taken: a starting run is not disturbed
        return RUNNING, WHY[RUNNING]
    try:
        record = json.loads((folder / getattr(rundir, "FAILED", "failed.json")).read_text())
    except (OSError, ValueError):
        record = None
    if isinstance(record, dict):
        status, reason = str(record.get("status") or "failed"), str(record.get("reason") or "")
        if status == "failed":
            return ERROR, f"ended by an error: {reason or 'no reason recorded'}"
        return STOPPED, f"stopped ({status}): {reason}" if reason else WHY[STOPPED]
    return STOPPED, WHY[STOPPED]


def _per_seed(jobs: list[Job]) -> list[Job]:
    """One job per (sweep, overrides but the method seed), a found one where there is one."""
    groups: dict[tuple, Job] = {}
    for j in jobs:
        k = (str(j.sweep), tuple(sorted(o for o in j.overrides if _key(o) != "method_seed")))
        if k not in groups or (j.found and not groups[k].found):
            groups[k] = j
    return list(groups.values())


def read(roots) -> Launches | None:
    """Every launch record under ``roots`` with its jobs resolved to folders; None when there is none."""
    records = []
    indexes: dict[tuple, dict] = {}
    for root in roots:
        for p in sorted(Path(root).glob(f"**/{LAUNCHES}/*.json")):
            try:
                data = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError) as e:
                log.warning("skipping the launch record %s (%s)", p, e.__class__.__name__)
                continue
            if not isinstance(data, dict):
                continue
            sweep = p.parent.parent
            subdir = data.get("output_subdir") or ".hydra"
            rec = Record(p, sweep, data)
            if (str(sweep), subdir) not in indexes:
                indexes[(str(sweep), subdir)] = _folder_index(sweep, subdir)
            index = indexes[(str(sweep), subdir)]
            if isinstance(data.get("jobs"), list):
                for overrides in data["jobs"]:
                    job = Job([str(o) for o in overrides], sweep.resolve(), p.name)
                    folders = index.get(tuple(sorted(job.overrides)), [])
                    states = sorted((_state(f) + (f,) for f in folders),
                                    key=lambda s: (s[0] not in (FINISHED, FAILED), s[0] != RUNNING))
                    if states:
                        job.state, job.reason, job.folder = states[0]
                    else:
                        job.reason = WHY[NEVER]
                    rec.jobs.append(job)
            else:
                rec.trial_folders = sum(_state(f)[0] in (FINISHED, FAILED)
                                        for f in {f for fs in index.values() for f in fs})
            records.append(rec)
    return Launches(records) if records else None


def _norm(v) -> str:
    """One spelling per value: blank for NaN/None, 40 for 40.0, else str."""
    if v is None or (isinstance(v, float) and v != v) or (not isinstance(v, str) and pd.isna(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _forget_value(text: str) -> str:
    """``[0, 1]`` (a forget.classes override) as metrics.json spells the forget set: ``0-1``."""
    return "-".join(p.strip() for p in text.strip().strip("[]").split(",") if p.strip())


class Launches:
    """The jobs of every launch record found, resolved (``read``); ``index_runs`` adds the loaded runs."""

    def __init__(self, records: list[Record]):
        self.records = records
        seen, self.jobs = set(), []
        for rec in records:
            for job in rec.jobs:  # a relaunch lists the same runs again: counted once
                if job.ident not in seen:
                    seen.add(job.ident)
                    self.jobs.append(job)
        self.runs = pd.DataFrame()
        self.folded: set[str] = set()

    def __deepcopy__(self, memo):  # pandas copies a frame's attrs on every operation: share, do not copy
        return self

    def index_runs(self, df: pd.DataFrame) -> None:
        """The loaded runs (repeats included), by folder, and which ``none`` runs are the Original row."""
        from unlearn_bench.report import spread as sp
        if df.empty or "run_dir" not in df.columns:
            return
        self.runs = df.assign(_dir=df["run_dir"].map(lambda d: str(Path(d).resolve()))).drop_duplicates(
            "_dir").set_index("_dir")
        ok = df[df["status"] == "ok"]
        group = [k for k in ("data", "model", "forget", "setup") if k in ok.columns]
        if "seed" in ok.columns and not ok.empty:
            _, rest = sp.fold_original(ok, ok.iloc[0:0], group)
            self.folded = {str(Path(d).resolve()) for d in set(ok["run_dir"]) - set(rest["run_dir"])}

    def _run_key(self, job: Job, keys: list[str], by: list[str], pool_forget: bool) -> tuple | None:
        if job.folder is None or str(job.folder.resolve()) not in self.runs.index:
            return None
        d = str(job.folder.resolve())
        run = self.runs.loc[d]
        original = d in self.folded
        out = []
        for k in keys:
            if k == "method":
                out.append("Original" if original else _norm(run.get("method")))
            elif k == "forget" and pool_forget:
                out.append("all")
            elif k in by:
                out.append("" if original else _norm(run.get(k)))
            else:
                out.append(_norm(run.get(k)))
        return tuple(out)

    def _derive(self, job: Job, keys: list[str], by: list[str], pool_forget: bool, known: dict) -> tuple | None:
        """A key from the job's overrides, the rest from the found jobs of its own launch where they agree."""
        mates = [known[j.ident] for j in self.jobs if j.record == job.record and j.ident in known]
        method = job.value("method")
        if method is None:
            methods = {m[keys.index("method")] for m in mates}
            method = methods.pop() if len(methods) == 1 else None
        if method is None:
            return None
        out = []
        for i, k in enumerate(keys):
            if k == "method":
                v = method
            elif k == "forget" and pool_forget:
                v = "all"
            elif k in by:
                v = job.value(k.removeprefix("cfg/"))
                if v is None:
                    same = {m[i] for m in mates if m[keys.index("method")] == method}
                    has = "method" in self.runs.columns and k in self.runs.columns and \
                        self.runs.loc[self.runs["method"] == method, k].map(_norm).ne("").any()
                    v = same.pop() if len(same) == 1 else (None if has else "")
            else:
                v = job.value("forget.classes") if k == "forget" else job.value(k)
                v = _forget_value(v) if (k == "forget" and v is not None) else v
                if v is None:
                    vals = {m[i] for m in mates}
                    v = vals.pop() if len(vals) == 1 else None
            if v is None:
                return None
            out.append(_norm(v))
        return tuple(out)

    def counts(self, keys: list[str], by: list[str], pool_forget: bool = False) -> dict[tuple, list[Job]]:
        """Table row key -> its jobs. A job's row is its run's row; else that of a job of the same overrides
        but seeds; else what its overrides and its launch name (jobs whose row cannot be told are left
        out here; the missing-runs section lists them)."""
        by = [c for c in by if c in keys]
        known: dict[tuple, tuple] = {}
        for job in self.jobs:
            k = self._run_key(job, keys, by, pool_forget)
            if k is not None:
                known[job.ident] = k

        def sig(job: Job) -> tuple:
            return (str(job.sweep), tuple(sorted(o for o in job.overrides if _key(o) not in SEED_KEYS)))
        by_sig = {sig(j): known[j.ident] for j in self.jobs if j.ident in known}
        rows: dict[tuple, list[Job]] = {}
        for job in self.jobs:
            k = known.get(job.ident) or by_sig.get(sig(job)) or self._derive(job, keys, by, pool_forget, known)
            if k is not None:
                rows.setdefault(k, []).append(job)
        return rows

    def add_counts(self, rows: list[dict], keys: list[str], by: list[str], columns: list[str],
                   scope: pd.DataFrame, pool_forget: bool = False) -> list[dict]:
        """``expected`` / ``found`` on every table row (``—`` where no record lists it), and a row of its
        own for jobs whose row the table lacks because none of them left a result."""
        per = self.counts(keys, by, pool_forget)
        have = {tuple(_norm(r.get(k)) for k in keys): r for r in rows}
        present = {tuple(_norm(v) for v in t) for t in scope[["data", "model"]].itertuples(index=False)} \
            if {"data", "model"} <= set(scope.columns) else set()
        for key, jobs in per.items():
            if key[keys.index("method")] == "none" and key not in have:  # none is the Original row
                alt = tuple("Original" if k == "method" else "" if k in by else v for k, v in zip(keys, key))
                if alt in have:
                    key = alt
            row = have.get(key)
            if row is None:
                d = dict(zip(keys, key))
                if (d.get("data", ""), d.get("model", "")) not in present:
                    continue  # another table's row
                row = {**d, "n": 0, "failed": 0, **{c: "—" for c in columns}}
                rows.append(row)
                have[key] = row
            if row.get("method") in ("Original", "none"):  # one original per (task, seed), whatever the
                jobs = _per_seed(jobs)                       # method seeds its `none` jobs were given
            row["expected"] = row.get("expected", 0) + len(jobs)
            row["found"] = row.get("found", 0) + sum(j.found for j in jobs)
        for r in rows:
            r.setdefault("expected", "—")
            r.setdefault("found", "—")
        return rows

    def trial_sweeps(self) -> dict[str, tuple[list[Record], int, int]]:
        """Sweep folder -> (its trial-count records, trials expected over all of them, folders with a result,
        at most that many): relaunches of one study share its folders, which are counted once."""
        out: dict[str, tuple[list[Record], int, int]] = {}
        for r in self.records:
            if r.data.get("jobs") is None:
                recs, exp, folders = out.get(str(r.sweep), ([], 0, 0))
                out[str(r.sweep)] = (recs + [r], exp + int(r.data.get("trials") or 0),
                                     max(folders, r.trial_folders))
        return {k: (recs, exp, min(folders, exp)) for k, (recs, exp, folders) in out.items()}

    def totals(self) -> tuple[int, int]:
        """(expected, found) over every recorded job (Optuna trials included)."""
        trials = self.trial_sweeps().values()
        return (len(self.jobs) + sum(exp for _, exp, _ in trials),
                sum(j.found for j in self.jobs) + sum(found for _, _, found in trials))

    def missing(self) -> list[Job]:
        return [j for j in self.jobs if not j.found]

    def missing_lines(self) -> list[str]:
        """The report's section on missing runs: each one with its likely reason."""
        lines = []
        for sweep, (recs, exp, found) in self.trial_sweeps().items():
            if found < exp or any(r.data.get("trials") is None for r in recs):
                names = ", ".join(f"`{r.path.name}`" for r in recs)
                sweeper = recs[0].data.get("sweeper", "?").rsplit(".", 1)[-1]
                lines.append(f"- {names} ({sweeper}, {exp} trials in all): {found} run folders under "
                             f"`{sweep}` hold a result")
        for job in self.missing():
            where = f" (`{job.folder}`)" if job.folder is not None else ""
            lines.append(f"- `{' '.join(job.overrides)}`: {job.reason}{where}")
        if not lines:
            return []
        exp, found = self.totals()
        return ["## Missing runs", "",
                (f"{exp - found} of {exp} runs the launch records (`{LAUNCHES}/` under the sweep folders) list "
                 "left no result here; rerun the same command to run them (finished runs are skipped)."), "",
                *lines, ""]
