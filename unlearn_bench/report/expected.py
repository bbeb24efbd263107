"""Expected against found runs: the jobs every launch record lists (``jobs.find_records``), counted per
table row (``Launches.add_counts``: ``expected`` and ``found``) and the missing ones listed with their likely
reason (``Launches.missing_lines``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unlearn_bench.report.jobs import Job, Record, find_records, key_of
from unlearn_bench.report.launches import LAUNCHES

SEED_KEYS = ("seed", "method_seed")  # jobs that differ only in these share a table row


def read(roots) -> Launches | None:
    """Every launch record under ``roots`` with its jobs resolved to folders; None when there is none."""
    records = find_records(roots)
    return Launches(records) if records else None


def _per_seed(jobs: list[Job]) -> list[Job]:
    """One job per (sweep, overrides but the method seed), a found one where there is one."""
    groups: dict[tuple, Job] = {}
    for j in jobs:
        k = (str(j.sweep), tuple(sorted(o for o in j.overrides if key_of(o) != "method_seed")))
        if k not in groups or (j.found and not groups[k].found):
            groups[k] = j
    return list(groups.values())


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

    def _derive(self, job: Job, keys: list[str], by: list[str], pool_forget: bool,
                known: dict) -> tuple | None:
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
            return (str(job.sweep), tuple(sorted(o for o in job.overrides if key_of(o) not in SEED_KEYS)))
        by_sig = {sig(j): known[j.ident] for j in self.jobs if j.ident in known}
        rows: dict[tuple, list[Job]] = {}
        for job in self.jobs:
            k = known.get(job.ident) or by_sig.get(sig(job)) or \
                self._derive(job, keys, by, pool_forget, known)
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
                (f"{exp - found} of {exp} runs the launch records (`{LAUNCHES}/` under the sweep folders) "
                 "list left no result here; rerun the same command to run them (finished runs are "
                 "skipped)."), "", *lines, ""]
