"""Runs loaded for a report: every run folder's metrics.json as one row, with the settings of its config.yaml
the tables split rows by, and the launch records of the folders (``expected.read``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from unlearn_bench.run.rundir import flatten
from unlearn_bench.run.store import load_results

GROUP = ["data", "model", "forget"]  # a task: runs of different tasks never share a table row


def load(runs_dir, config_nodes: tuple[str, ...] = ("method",)) -> pd.DataFrame:
    """``load_results`` of one folder or a list of them, plus ``cfg/<node>.<key>`` columns from each run's
    config.yaml, so variants of one method (swept ``method.h``, ``method.rule``, ...) can be told apart;
    ``df.attrs["launches"]``: the launch records found under them (``expected.read``), if any."""
    dirs = [runs_dir] if isinstance(runs_dir, (str, Path)) else list(runs_dir)
    frames = [f for f in (load_results(d) for d in dirs) if not f.empty]
    df = pd.concat(frames, ignore_index=True).drop_duplicates("run_dir") if frames else pd.DataFrame()
    if df.empty:
        return df
    from unlearn_bench.report.expected import read
    recorded = read([d for d in dirs if Path(d).is_dir()])
    if "seed" in df.columns:  # runs made before method_seed existed drew their method's randomness from seed
        had = "method_seed" in df.columns
        df["method_seed"] = df["method_seed"].fillna(df["seed"]) if had else df["seed"]
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
