"""The rows of a results table: runs grouped per task (data, model, forget set[, setup]) and method, each
cell the mean ± std over runs with n, failed runs counted and never averaged; the Original row from the
``original/`` keys of the runs (or the ``none`` runs that equal it), the marks of ``spread.py``; and the
same rows as points of the Pareto figure (``pareto_runs``)."""

from __future__ import annotations

import pandas as pd

from unlearn_bench.report import spread as sp
from unlearn_bench.report.load import GROUP

DEFAULT_COLUMNS = ["acc/forget_train", "acc/retain_train", "acc/forget_test", "acc/retain_test", "acc/test",
                   "mia/svc_confidence", "mia/fr", "gap/avg_to_retrain", "cost/unlearn_s"]
# The LRA-NPP paper's table (Chang et al. 2024): At, Ag, Fr, Fs, Time, G
PAPER_COLUMNS = {"acc/forget_train": "At", "acc/retain_train": "Ag", "mia/fr": "Fr", "mia/fs": "Fs",
                 "cost/unlearn_s": "Time (s)", "cost/peak_mem_mb": "G (MiB)"}
# eval=full's reference-model metrics: a second table in report.md when the runs have them
FULL_COLUMNS = ["relearn/ain", "mia/ulira_auc", "mia/ulira_tpr_at_1fpr", "fq/forgetting_quality", "fq/score",
                "klom/forget_mean", "klom/retain_mean", "klom/test_mean"]
STATS_METRICS = ["acc/forget_train", "acc/retain_train", "acc/retain_test", "mia/fr", "gap/avg_to_retrain"]


def group_keys(df: pd.DataFrame) -> list[str]:
    """(data, model, forget), plus ``setup`` (a hash of everything but method and seed) when runs of
    different setups (e.g. unseen-pool protocol, train recipe, data subset) share those: they are never
    averaged together."""
    if "setup" in df.columns and df["setup"].nunique(dropna=False) > 1:
        return GROUP + ["setup"]
    return list(GROUP)


def _original_rows(ok: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """One Original row per (data, model, forget[, setup], seed), from the ``original/`` keys of any run."""
    cols = [c for c in ok.columns if c.startswith("original/")]
    if not cols:
        return ok.iloc[0:0]
    # the original's attacks use the run's draws, its accuracies the run's examples
    keep = [c for c in ("eval/mia_draws", "examples/forget_train", "examples/forget_test") if c in ok.columns]
    orig = ok.drop_duplicates(group + ["seed"])[group + ["seed"] + keep + cols].copy()
    orig.columns = [c.removeprefix("original/") for c in orig.columns]
    orig["method"] = "Original"
    orig["cost/unlearn_s"] = 0.0
    return orig


def row_order(method: str) -> tuple:
    """Where a method's rows sit: Original, Retrain, the methods by name, then ``none``."""
    return (0 if method == "Original" else 1 if method == "retrain" else 3 if method == "none" else 2, method)


def table_runs(ok: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """The finished runs a table's rows average: Original rows (one per task and seed; see
    ``spread.fold_original`` for why a ``none`` run identical to its original becomes that row) and every
    other run. The table and the Pareto figure both group these, so their n agree."""
    orig, rest = sp.fold_original(ok, _original_rows(ok, group), group)
    return pd.concat([orig, rest], ignore_index=True)


def table_groups(df: pd.DataFrame, by: list[str] | None = None, pool_forget: bool = False
                 ) -> tuple[list[str], list[tuple[dict, pd.DataFrame]], list[str]]:
    """The rows of a table and the finished runs each one averages: (row keys, [(row, runs)], columns the
    runs have). One function for ``summarize`` and ``pareto_runs``, so a figure's points are the table's
    rows with the table's n."""
    by = [c for c in (by or []) if c in df.columns]
    group = group_keys(df)
    keys = group + ["method"] + by
    ok = df[df["status"] == "ok"]
    # Original rows are one per (forget set, seed) before pooling: forget metrics differ by class.
    # Object columns keep a variant's value as it is in df (40, not 40.0 after a concat with blanks), so the
    # failed runs match its row
    both = table_runs(ok.astype({c: object for c in by}), group)
    if pool_forget:
        both = both.assign(forget="all")
    for c in by:  # Original is the same model whatever the method's setting: one row, blank variant
        both[c] = both[c].astype(object)
        both.loc[both["method"] == "Original", c] = ""
    groups = [(dict(zip(keys, key)), g) for key, g in both.groupby(keys, sort=False, dropna=False)]
    return keys, groups, list(both.columns)


def summarize(df: pd.DataFrame, columns: list[str] | None = None, by: list[str] | None = None,
              rename: dict[str, str] | None = None, pool_forget: bool = False) -> pd.DataFrame:
    """Mean ± std (n) per (data, model, forget, method[, by...]); failed runs are counted, never averaged.
    ``by`` adds columns that separate variants of one method (e.g. ``cfg/method.h``); ``rename`` relabels
    metric columns (``PAPER_COLUMNS`` gives the LRA-NPP paper's At/Ag/Fr/Fs/Time/G); ``pool_forget`` puts
    every forget set in one row per method (forget = "all", n = classes x seeds). Where ``df.attrs`` holds
    launch records (``load``), ``expected`` and ``found`` follow ``failed``."""
    if df.empty:
        return df
    by = [c for c in (by or []) if c in df.columns]
    group = group_keys(df)
    keys, groups, have = table_groups(df, by, pool_forget)
    if pool_forget:
        df = df.assign(forget="all")
    columns = [c for c in (columns or DEFAULT_COLUMNS) if c in have]
    failed = df[df["status"] != "ok"]
    rows, spreads, accuracy = [], [], []
    for row, g in groups:
        row["n"] = len(g)  # runs: seeds x method seeds (x forget classes when pooled, forget="all")
        mine = failed
        for k in keys:
            if k in mine.columns:
                mine = mine[mine[k].map(str) == str(row[k])]
        row["failed"] = len(mine)
        spreads.append({c: sp.spread(g[c], g.get(f"{c}_std"), g.get("eval/mia_draws")) for c in columns})
        accuracy.append({c: sp.accuracy_spread(g, c) for c in sp.FORGET_ACCURACIES if c in g.columns})
        for c in columns:
            row[c] = sp.cell(spreads[-1][c], len(g))
        rows.append(row)
    sp.mark_within_noise(rows, spreads, group, columns)
    sp.mark_not_forgotten(rows, accuracy, group)
    seen = {tuple(str(r[k]) for k in keys) for r in rows}
    for key, g in (failed.groupby([k for k in keys if k in failed.columns], sort=False, dropna=False)
                   if not failed.empty else []):
        key = key if isinstance(key, tuple) else (key,)
        if tuple(str(k) for k in key) not in seen:  # every run of it failed: still a row, never dropped
            rows.append({**dict(zip(keys, key)), "n": 0, "failed": len(g), **{c: "—" for c in columns}})
    launches = df.attrs.get("launches")
    if launches is not None:
        rows = launches.add_counts(rows, keys, by, columns, df, pool_forget)
    out = pd.DataFrame(rows)
    if launches is not None:  # beside failed
        order = [c for c in out.columns if c not in ("expected", "found")]
        at = order.index("failed") + 1
        out = out[order[:at] + ["expected", "found"] + order[at:]]
    out["_o"] = out["method"].map(row_order)
    # variants sort numerically when they are numbers (H = 5 before 40), else by name; blanks first
    tmp = {f"_n{i}": pd.to_numeric(out[c], errors="coerce") for i, c in enumerate(by)}
    tmp.update({f"_s{i}": out[c].astype(str) for i, c in enumerate(by)})
    out = out.assign(**tmp)
    keys = group + ["_o"] + [k for i in range(len(by)) for k in (f"_n{i}", f"_s{i}")]
    out = out.sort_values(keys, kind="stable", na_position="first").drop(columns=["_o", *tmp])
    out = out.reset_index(drop=True)
    for c in by:  # a method without this setting shows a blank, not "nan"
        out[c] = out[c].map(lambda v: "" if pd.isna(v) else v)
    return out.rename(columns=rename or {})


def pareto_runs(df: pd.DataFrame, by: list[str] | None = None,
                forget: str = "acc/forget_train") -> pd.DataFrame:
    """The finished runs of ``table_groups``, each with ``_label`` naming its table row ("lra_npp h=40",
    plus the forget set and setup where they vary) and ``_forgets``: whether that row's ``forget`` accuracy
    does not lie at or above the Original's (``spread.against_original``: False for the Original, for rows
    marked ≈O and for rows above it beyond noise). Every point of the Pareto figure is one row of the table,
    with its n."""
    keys, groups, _ = table_groups(df, by)
    if not groups:
        return df.iloc[0:0].assign(_label=pd.Series(dtype=str), _forgets=pd.Series(dtype=bool))
    group = group_keys(df)
    rows = [r for r, _ in groups]
    split = [k for k in group if len({str(r[k]) for r in rows}) > 1]  # what tells the rows apart
    spreads = [{forget: sp.accuracy_spread(g, forget)} for _, g in groups]
    where = sp.against_original(rows, spreads, group, forget)
    labels, forgets = [], []
    for i, (row, g) in enumerate(groups):
        label = str(row["method"])
        for k in split:
            label += f" {k}={str(row[k])[:8] if k == 'setup' else _plain(row[k])}"
        for c in keys[len(group) + 1:]:  # a setting: blank for methods without it, and for the Original
            if not (row[c] is None or row[c] == "" or (isinstance(row[c], float) and pd.isna(row[c]))):
                label += f" {c.removeprefix('cfg/method.')}={_plain(row[c])}"
        labels += [label] * len(g)
        # at or above the Original's forget accuracy: does not forget (no Original to compare with: it may)
        forgets += [row["method"] != "Original" and where.get(i) not in ("same", "above")] * len(g)
    runs = pd.concat([g for _, g in groups], ignore_index=True)
    return pd.concat([runs, pd.DataFrame({"_label": labels, "_forgets": forgets})], axis=1)


def _plain(v) -> str:
    """40, not 40.0 (a setting's column turns float beside blanks)."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def varying_settings(df: pd.DataFrame) -> list[str]:
    """``cfg/method.*`` columns that differ between runs of one method on one task, forget set and seed:
    the swept settings that must split a table's rows (else variants would be averaged together)."""
    cols = [c for c in df.columns if c.startswith("cfg/method.")]
    keys = [k for k in group_keys(df) + ["method", "seed", "method_seed"] if k in df.columns]
    if not cols or df.empty:
        return []
    counts = df[keys + cols].astype(str).groupby(keys)[cols].nunique()
    return [c for c in cols if (counts[c] > 1).any()]
