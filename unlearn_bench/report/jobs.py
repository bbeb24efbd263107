"""The jobs of the launch records (``launches.py``) resolved to run folders and states.

A run folder's ``.hydra/overrides.yaml`` is its job's override list, so a job is found where a folder under
the sweep dir holds that list (or the history ``launches.note_job`` keeps beside it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from unlearn_bench.report.launches import HISTORY, LAUNCHES

log = logging.getLogger("unlearn_bench")
FINISHED, FAILED, STOPPED, ERROR, RUNNING, NEVER, DAMAGED = (
    "finished", "failed", "stopped", "ended by an error", "running", "never started", "damaged")
WHY = {
    NEVER: "no folder holds these overrides: never started (cancelled while pending, or not yet run)",
    STOPPED: "started, no metrics.json and no failure record: stopped (cancelled, timed out, killed)",
    RUNNING: "no metrics.json yet and a process holds its lock: running now",
    DAMAGED: "metrics.json unreadable",
}


def key_of(override: str) -> str:
    """The key an override sets (``+a.b=1`` -> ``a.b``)."""
    return override.split("=", 1)[0].lstrip("+~")


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
            if "=" in o and key_of(o) == key:
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


def find_records(roots) -> list[Record]:
    """Every launch record under ``roots`` with its jobs resolved to folders."""
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
    return records
