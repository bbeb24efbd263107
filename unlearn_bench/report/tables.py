"""Results tables rebuilt from run directories: ``unlearn-bench-report RUNS_DIR``.

Every table has an Original row (the model before unlearning, from the ``original/`` keys, or the ``none``
runs that equal it) and, when present, the Retrain oracle; every cell is mean ± std over runs (seeds x
method seeds) with n stated, the spread over an attack's draws where it has one, a mark where a row lies
within noise of Retrain and one where its forget accuracy stays at the Original's (``spread.py``). Where the
sweeps recorded their launches (``launches.py``), each row also says how many runs were expected and found.
Besides ``results.md`` / ``.csv`` the command writes ``report.md``: the tables, paired statistics against
Retrain (``stats.py``), a forget-vs-retain Pareto figure per data x model (``figures.py``) whose points are
the table's rows (``table_groups`` serves both), and the missing runs with their likely reason. It prints
the table and every path it wrote."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from unlearn_bench.report import spread as sp
from unlearn_bench.run.rundir import flatten
from unlearn_bench.run.store import load_results, read_complete

DEFAULT_COLUMNS = ["acc/forget_train", "acc/retain_train", "acc/forget_test", "acc/retain_test", "acc/test",
                   "mia/svc_confidence", "mia/fr", "gap/avg_to_retrain", "cost/unlearn_s"]
# The LRA-NPP paper's table (Chang et al. 2024): At, Ag, Fr, Fs, Time, G
PAPER_COLUMNS = {"acc/forget_train": "At", "acc/retain_train": "Ag", "mia/fr": "Fr", "mia/fs": "Fs",
                 "cost/unlearn_s": "Time (s)", "cost/peak_mem_mb": "G (MiB)"}
# eval=full's reference-model metrics: a second table in report.md when the runs have them
FULL_COLUMNS = ["relearn/ain", "mia/ulira_auc", "mia/ulira_tpr_at_1fpr", "fq/forgetting_quality", "fq/score",
                "klom/forget_mean", "klom/retain_mean", "klom/test_mean"]
STATS_METRICS = ["acc/forget_train", "acc/retain_train", "acc/retain_test", "mia/fr", "gap/avg_to_retrain"]
GROUP = ["data", "model", "forget"]


def load(runs_dir, config_nodes: tuple[str, ...] = ("method",)) -> pd.DataFrame:
    """``load_results`` of one folder or a list of them, plus ``cfg/<node>.<key>`` columns from each run's
    config.yaml, so variants of one method (swept ``method.h``, ``method.rule``, ...) can be told apart;
    ``df.attrs["launches"]``: the launch records found under them (``launches.read``), if any."""
    dirs = [runs_dir] if isinstance(runs_dir, (str, Path)) else list(runs_dir)
    frames = [f for f in (load_results(d) for d in dirs) if not f.empty]
    df = pd.concat(frames, ignore_index=True).drop_duplicates("run_dir") if frames else pd.DataFrame()
    if df.empty:
        return df
    from unlearn_bench.report import launches as lx
    recorded = lx.read([d for d in dirs if Path(d).is_dir()])
    if "seed" in df.columns:  # runs made before method_seed existed drew their method's randomness from seed
        df["method_seed"] = df["method_seed"].fillna(df["seed"]) if "method_seed" in df.columns else df["seed"]
    if "retrain/train_s" in df.columns:
        # a cached oracle "unlearns" in the time it takes to load it; its real cost is its training time
        hit = df["retrain/train_s"].notna() & (df["method"] == "retrain")
        df["cost/unlearn_s_measured"] = df.get("cost/unlearn_s")
        df.loc[hit, "cost/unlearn_s"] = df.loc[hit, "retrain/train_s"]
    extra = []
    for d in df["run_dir"]:
        flat: dict = {}
        p = Path(d) / "config.yaml"
        if p.exists():
            cfg = OmegaConf.to_container(OmegaConf.load(p))
            for node in config_nodes:
                flat.update(flatten(cfg.get(node, {}), f"{node}."))
        extra.append({f"cfg/{k}": str(v) if isinstance(v, list) else v  # one cell per list
                      for k, v in flat.items() if not k.endswith("_target_")})
    df = pd.concat([df, pd.DataFrame(extra, index=df.index)], axis=1)
    out = drop_repeats(df)
    if recorded is not None:  # what the launches expected: summarize adds expected / found per row
        recorded.index_runs(df)
        out.attrs["launches"] = recorded
    return out


def drop_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """One run per experiment: runs that repeat one (data, model, forget set, setup, seed, method seed,
    method and method settings), e.g. the same oracle under two sweep names, would count twice in n and pair
    twice in the tests. A finished run is kept over a failed one, then the newest (by its metrics.json);
    ``df.attrs["repeats"]`` says how many were dropped."""
    keys = [k for k in (*GROUP, "setup", "seed", "method_seed", "method") if k in df.columns]
    keys += sorted(c for c in df.columns if c.startswith("cfg/method."))
    if not keys or "run_dir" not in df.columns:
        return df
    mtime = df["run_dir"].map(lambda d: (Path(d) / "metrics.json").stat().st_mtime
                              if (Path(d) / "metrics.json").exists() else 0.0)
    ident = df[keys].map(str).agg("|".join, axis=1)  # str() of every cell: NaN and None become text too
    rank = pd.DataFrame({"ok": df["status"].eq("ok") if "status" in df.columns else True, "t": mtime})
    keep = ~ident.loc[rank.sort_values(["ok", "t"], kind="stable").index].duplicated(keep="last")
    out = df.loc[keep[keep].index.sort_values()]
    out.attrs["repeats"] = len(df) - len(out)
    return out


def load_or_exit(runs_dir, command: str = "", config_nodes: tuple[str, ...] = ("method",)) -> pd.DataFrame:
    """For experiments' analyze.py: the runs of one folder or a list of them, or a clear message and exit
    status 1 when there are none."""
    dirs = [runs_dir] if isinstance(runs_dir, (str, Path)) else list(runs_dir)
    there = [d for d in dirs if Path(d).exists()]
    df = load(there, config_nodes) if there else pd.DataFrame()
    if df.empty:
        how = f"; fix: run `{command}` first" if command else "; fix: run the experiment first"
        raise SystemExit(f"error: no runs (metrics.json) under {', '.join(map(str, dirs))}{how}")
    return df


RUNS_ENV = "UNLEARN_BENCH_RUNS"  # the runs_dir analyze.py scripts read by default (``make figures RUNS=...``)


def default_runs(name: str) -> str:
    """Where experiment ``name`` writes its runs unless told otherwise: ``$UNLEARN_BENCH_RUNS/name``, else
    ``runs/name`` (the default ``runs_dir``)."""
    return str(Path(os.environ.get(RUNS_ENV) or "runs") / name)


def default_out(name: str) -> Path:
    """Where ``experiments/<name>/analyze.py`` writes by default: ``experiments/<name>/results/``, which git
    ignores, so rebuilding figures never changes the source tree."""
    return Path(__file__).resolve().parents[2] / "experiments" / name / "results"


def experiment_cli(name: str, description: str, argv: list[str] | None = None,
                   config_nodes: tuple[str, ...] = ("method",)) -> tuple[pd.DataFrame, Path]:
    """The shared command line of ``experiments/<name>/analyze.py``: ``[RUNS_DIR] [--out DIR]``; returns
    the runs (with ``cfg/`` columns) and the output folder (default ``default_out(name)``)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("runs_dir", nargs="?", default=default_runs(name),
                    help=f"default $UNLEARN_BENCH_RUNS/{name}, else runs/{name}")
    ap.add_argument("--out", default=None, help=f"where figures and tables go (default experiments/{name}/results/)")
    args = ap.parse_args(argv)
    df = load_or_exit(args.runs_dir, f"unlearn-bench -m experiment={name}", config_nodes)
    out = Path(args.out) if args.out else default_out(name)
    out.mkdir(parents=True, exist_ok=True)
    return df, out


def write_table(table: pd.DataFrame, path: str | Path, heading: str = "") -> str:
    """``path``.md (markdown, with an optional heading line) and ``path``.csv."""
    md = (f"{heading}\n\n" if heading else "") + table.to_markdown(index=False) + "\n"
    Path(f"{path}.md").write_text(md)
    table.to_csv(f"{path}.csv", index=False)
    return md


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


def _order(method: str) -> tuple:
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
    out["_o"] = out["method"].map(_order)
    # variants sort numerically when they are numbers (H = 5 before 40), else by name; blanks first
    tmp = {f"_n{i}": pd.to_numeric(out[c], errors="coerce") for i, c in enumerate(by)}
    tmp.update({f"_s{i}": out[c].astype(str) for i, c in enumerate(by)})
    out = out.assign(**tmp)
    keys = group + ["_o"] + [k for i in range(len(by)) for k in (f"_n{i}", f"_s{i}")]
    out = out.sort_values(keys, kind="stable", na_position="first").drop(columns=["_o", *tmp]).reset_index(drop=True)
    for c in by:  # a method without this setting shows a blank, not "nan"
        out[c] = out[c].map(lambda v: "" if pd.isna(v) else v)
    return out.rename(columns=rename or {})


def pareto_runs(df: pd.DataFrame, by: list[str] | None = None, forget: str = "acc/forget_train") -> pd.DataFrame:
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
    where = sp.against_original(rows, [{forget: sp.accuracy_spread(g, forget)} for _, g in groups], group, forget)
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


def _commits(df: pd.DataFrame) -> str:
    """Git commits (and dirty flags) the runs were made from, from each run's env.json."""
    import json
    seen = set()
    for d in df.get("run_dir", []):
        p = Path(d) / "env.json"
        if p.exists():
            env = json.loads(p.read_text())
            seen.add(f"{(env.get('git_commit') or 'unknown')[:10]}{' (dirty)' if env.get('git_dirty') else ''}")
    return ", ".join(sorted(seen)) or "unknown"


EXPECTED_NOTE = ("`expected` / `found`: runs the launch records list for the row (`.launches/` in each sweep "
                 "folder, written when `unlearn-bench -m` starts) and how many of them left a result (finished or "
                 "failed); — where no record lists the row. The Original row counts the `none` jobs, whose "
                 "runs are the original model. Missing runs, if any, are listed at the end.")
PARETO_NOTE = ("Points are the table's rows (n as in the table), mean ± std over runs; marker area = unlearning "
               "time (legend); dashed: the Pareto front, the rows no other row beats on both axes among those "
               "that forget, whose forget accuracy lies below the Original's beyond noise (rows marked ≈O, "
               "and rows above the Original, do not forget: their labels say so).")


def markdown_report(df: pd.DataFrame, out_dir: str | Path, title: str = "Results", columns: list[str] | None = None,
                    by: list[str] | None = None, reference: str = "retrain", figures: bool = True,
                    rename: dict[str, str] | None = None, written: list[Path] | None = None) -> str:
    """A self-contained markdown report in ``out_dir/report.md``: per data x model a table (mean ± std, n,
    failed; expected and found where launches were recorded), its Pareto figure, paired tests against
    ``reference``, the reasons of failed runs and the missing runs. Paths written are added to ``written``."""
    from unlearn_bench.report import stats
    written = written if written is not None else []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = df[df["status"] != "ok"]
    repeats = df.attrs.get("repeats", 0)
    launches = df.attrs.get("launches")
    counted = ""
    if launches is not None:
        exp, found = launches.totals()
        counted = f"{found} of {exp} expected runs found. {EXPECTED_NOTE} "
    lines = [f"# {title}", "",
             (f"{len(df)} runs ({len(failed)} failed); cells are mean ± std over runs, n = runs per row "
              "(seeds x method seeds). " + counted + sp.LEGEND + " "
              + (f"{repeats} repeated run(s) of an experiment already counted were left out (the newest "
                 "is kept). " if repeats else "")
              + f"Commits: {_commits(df)}."), ""]
    for (data, model), g in df.groupby(["data", "model"], sort=True):
        lines += [f"## {data} / {model}", "", summarize(g, columns, by, rename).to_markdown(index=False), ""]
        ok = g[g["status"] == "ok"]
        full = [c for c in FULL_COLUMNS if c in ok.columns and ok[c].notna().any()]
        if full:
            lines += _reference_model_table(g, ok, full, by)
            if figures:
                lines += _klom_figure(g, out_dir / f"klom-{data}-{model}.png", f"{data} / {model}", by, written)
        if figures and not ok.empty:
            from unlearn_bench.report import figures as figs
            name = f"pareto-{data}-{model}.png"
            written.append(figs.pareto(pareto_runs(g, by), out_dir / name, label="_label", eligible="_forgets",
                                       title=f"{data} / {model}"))
            lines += [f"![forget vs retain, {data} / {model}]({name})", "", PARETO_NOTE, ""]
    comp = stats.compare_to_reference(df, STATS_METRICS, reference=reference, by=by)
    if not comp.empty:
        lines += [f"## Paired comparison with {reference}", "",
                  ("Difference method − reference over runs matched on data, model, forget set and seed (runs "
                   "of one seed's method seeds averaged first, so n counts seeds); bootstrap 95% CI of the mean "
                   "difference; paired t-test and Wilcoxon signed-rank p. With n = 1 there is no spread, so "
                   "neither CI nor test."), "",
                  stats.format_comparison(comp).to_markdown(index=False), ""]
    if not failed.empty:
        lines += ["## Failed runs", ""] + [f"- `{r.get('run_dir', '')}`: {r.get('reason', '')}"
                                            for _, r in failed.iterrows()] + [""]
    if launches is not None:
        lines += launches.missing_lines()
    md = "\n".join(lines)
    (out_dir / "report.md").write_text(md)
    written.append(out_dir / "report.md")
    return md


def _reference_model_table(g: pd.DataFrame, ok: pd.DataFrame, columns: list[str], by) -> list[str]:
    """eval=full's metrics for one data x model: U-LiRA, forgetting quality, KLOM (with its null at the runs' N)."""
    note = ("Reference-model metrics (eval=full; docs/metrics.md). Retrain's row is the target: forgetting "
            "quality and KLOM of a perfect method are not 1 and 0 at small N")
    if "eval/klom_null_mean" in ok.columns and ok["eval/klom_null_mean"].notna().any():
        nulls = sorted({(int(n), float(v)) for n, v in ok[["eval/fq_runs", "eval/klom_null_mean"]].dropna().values})
        note += "; KLOM of one distribution against itself: " + ", ".join(f"{v:.2f} at N = {n}" for n, v in nulls)
    table = summarize(g, columns, by)
    table = table[table["method"] != "Original"]  # these metrics exist for unlearned models only
    return [note + ".", "", table.to_markdown(index=False), ""]


def _klom_figure(g: pd.DataFrame, path: Path, title: str, by: list[str] | None = None,
                 written: list[Path] | None = None) -> list[str]:
    """Per-example KLOM of every run (predictions.npz), one box per row of the table beside it (the rows of
    ``table_groups``, labelled as in the Pareto figure; the Original has no row there)."""
    import logging

    import numpy as np

    from unlearn_bench.report import figures as figs
    per: dict[tuple, dict[str, list]] = {}
    for _, r in pareto_runs(g, by).iterrows():
        f = Path(str(r.get("run_dir", ""))) / "predictions.npz"
        if r["method"] == "Original" or not f.is_file():
            continue
        try:
            with np.load(f, allow_pickle=False) as z:
                arrays = {p: z[f"klom_{p}"] for p in ("forget", "retain", "test") if f"klom_{p}" in z.files}
        except (OSError, ValueError) as e:  # a damaged file leaves its run out of the figure, not the report
            logging.getLogger("unlearn_bench").warning("%s is unreadable (%s); left out of the KLOM figure", f, e)
            continue
        for part, a in arrays.items():
            per.setdefault((_order(str(r["method"])), r["_label"]), {}).setdefault(part, []).append(a)
    if not per:
        return []
    per = {k[1]: {p: np.concatenate(v) for p, v in d.items()} for k, d in sorted(per.items())}
    ok = g[g["status"] == "ok"]
    nulls = pd.to_numeric(ok.get("eval/klom_null_mean", pd.Series(dtype=float)), errors="coerce").dropna()
    null = float(nulls.iloc[0]) if len(nulls) and nulls.nunique() == 1 else None  # one N, one line
    out = figs.klom_boxes(per, null, path, f"per-example KLOM, {title}")
    if written is not None:
        written.append(out)
    return [f"![per-example KLOM, {title}]({path.name})", ""]


def write_report(runs_dir, out: str | Path | None = None, figures: bool = True,
                 written: list[Path] | None = None, notes: list[str] | None = None) -> str:
    """``results.md`` / ``.csv`` (the summary table) and, beside them, ``report.md`` with figures and tests.
    ``runs_dir`` is one folder or a list (runs found in several are counted once); every path written is
    added to ``written``, a line on missing runs to ``notes``."""
    written = written if written is not None else []
    dirs = [runs_dir] if isinstance(runs_dir, (str, Path)) else list(runs_dir)
    missing = [str(d) for d in dirs if not Path(d).is_dir()]
    if missing:
        raise SystemExit(f"error: {missing[0]} is not a folder; fix: point at the runs_dir/name folder of a "
                         f"sweep, e.g. runs/default")
    df = load(dirs)
    if df.empty:
        raise SystemExit(f"error: no metrics.json under {', '.join(map(str, dirs))}; "
                         "fix: point at a folder of run directories")
    by = varying_settings(df)
    table = summarize(df, by=by)
    md = table.to_markdown(index=False)
    out = Path(out) if out else Path(dirs[0]) / "results"
    out.parent.mkdir(parents=True, exist_ok=True)
    footnotes = [sp.LEGEND] + ([EXPECTED_NOTE] if "expected" in table.columns else [])
    Path(f"{out}.md").write_text(md + "\n\n" + "\n\n".join(footnotes) + "\n")
    table.to_csv(f"{out}.csv", index=False)
    written += [Path(f"{out}.md"), Path(f"{out}.csv")]
    markdown_report(df, out.parent, title=f"Results: {', '.join(map(str, dirs))}", by=by, figures=figures,
                    written=written)
    launches = df.attrs.get("launches")
    exp, found = launches.totals() if launches is not None else (0, 0)
    if found < exp and notes is not None:
        notes.append(f"{exp - found} of {exp} expected runs left no result: listed in {out.parent / 'report.md'}")
    return md


def _num_classes(df: pd.DataFrame) -> int:
    """Classes of the task, from the width of a run's saved logits (no dataset needs loading)."""
    import numpy as np
    for d in df.get("run_dir", []):
        p = Path(d) / "predictions.npz"
        if p.exists():
            with np.load(p) as z:
                return int(z["logits_forget_train"].shape[1])
    return 10


def sweep_report(df: pd.DataFrame, param: str, out: Path, label: str, logx: bool = False,
                 metrics: tuple[str, ...] = ("acc/forget_train", "acc/retain_train", "acc/retain_test")) -> str:
    """One swept setting (``cfg/method.h``, ``cfg/method.n``, ...): a table per value (mean ± std over
    seeds and forget classes, n runs), line plots with ±std bands (all classes pooled, then per class), and
    per forget class the smallest value whose mean forget accuracy reaches chance (1 / classes)."""
    from unlearn_bench.report import figures
    if param not in df.columns:
        key = param.removeprefix("cfg/")
        raise SystemExit(f"error: runs have no {key} in config.yaml; fix: point at runs of the experiment that "
                         f"sweeps {key}")
    df = df.assign(**{param: pd.to_numeric(df[param], errors="coerce")})
    ok = df[df["status"] == "ok"]
    # every run goes to the table, so failed ones are counted (a setting whose runs all failed keeps a row)
    md = [write_table(summarize(df, list(metrics) + ["cost/unlearn_s"], by=[param], pool_forget=True), out / "table",
                      f"## {label}: mean ± std over seeds and forget classes")]
    chance = 1.0 / _num_classes(ok)  # the level smallest.md tests against, drawn in both figures
    figures.lines(ok, param, list(metrics), out / "sweep.png", logx=logx, chance=chance,
                  title=f"{label}: mean ± std over seeds and forget classes")
    figures.lines(ok, param, "acc/forget_train", out / "sweep_per_class.png", hue="forget", logx=logx,
                  chance=chance, title=f"{label}: forget accuracy per forget class, mean ± std over seeds")
    md += ["![sweep](sweep.png)", "", "![per class](sweep_per_class.png)", ""]
    means = ok.groupby(["method", "forget", param])["acc/forget_train"].mean().reset_index()
    bad = df[df["status"] != "ok"]
    rows = []
    for (method, cls), g in means.groupby(["method", "forget"]):
        hit = g[g["acc/forget_train"] <= chance + 1e-12].sort_values(param)
        lost = bad[(bad["method"] == method) & (bad["forget"].map(str) == str(cls))][param]
        rows.append({"method": method, "forget": cls,
                     f"smallest {label} with At <= {chance:.2f}": hit[param].iloc[0] if len(hit) else "none",
                     # a mean over the seeds that survived is not the mean of the setting
                     f"{label} with failed runs": ", ".join(f"{v:g}" for v in sorted(lost.dropna().unique()))})
    md += [write_table(pd.DataFrame(rows), out / "smallest", f"## Smallest {label} reaching chance per class")]
    return "\n".join(md)


class SweepObjective(Callback):
    """Hydra callback that hands a sweeper (Optuna) one metrics.json key of each finished run as the job's
    return value, so the tuning objective (e.g. ``gap/avg_to_retrain``) is chosen in config, not in the CLI.
    A failed run (diverged, or the key missing) returns ``failed_value``, the worst score it may have."""

    def __init__(self, key: str, failed_value: float = 1.0):
        self.key, self.failed_value = key, failed_value

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if job_return.status != JobStatus.COMPLETED:
            return  # the sweeper sees the exception itself
        metrics = read_complete(Path(config.hydra.runtime.output_dir)) or {}
        value = metrics.get(self.key) if metrics.get("status") == "ok" else None
        job_return.return_value = float(value) if isinstance(value, (int, float)) else float(self.failed_value)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Summarise run directories into a results table and report.md.")
    ap.add_argument("runs_dir", nargs="+", help="one or more folders searched for run directories")
    ap.add_argument("--out", default=None, help="output path without extension (default FIRST_RUNS_DIR/results)")
    ap.add_argument("--no-figures", action="store_true", help="skip the Pareto figures in report.md")
    args = ap.parse_args(argv)
    written: list[Path] = []
    notes: list[str] = []
    md = write_report(args.runs_dir, args.out, figures=not args.no_figures, written=written, notes=notes)
    sys.stdout.write(md + "\n\n" + "".join(f"wrote {p}\n" for p in written) + "".join(f"{n}\n" for n in notes))


if __name__ == "__main__":
    main()
