"""One swept setting of a method (``cfg/method.h``, ``cfg/method.n``, ...) as a report: a table per value,
line plots against the value, and the smallest value that brings each forget class to chance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from unlearn_bench.report.markdown import write_table
from unlearn_bench.report.summary import summarize


def _num_classes(df: pd.DataFrame) -> int:
    """Classes of the task, from the width of a run's saved logits (no dataset needs loading)."""
    import numpy as np
    for d in df.get("run_dir", []):
        p = Path(d) / "predictions.npz"
        if p.exists():
            with np.load(p) as z:
                return int(z["logits_forget_train"].shape[1])
    return 10


SWEPT_METRICS = ("acc/forget_train", "acc/retain_train", "acc/retain_test")


def sweep_report(df: pd.DataFrame, param: str, out: Path, label: str, logx: bool = False,
                 metrics: tuple[str, ...] = SWEPT_METRICS) -> str:
    """One swept setting (``cfg/method.h``, ``cfg/method.n``, ...): a table per value (mean ± std over
    seeds and forget classes, n runs), line plots with ±std bands (all classes pooled, then per class), and
    per forget class the smallest value whose mean forget accuracy reaches chance (1 / classes)."""
    from unlearn_bench.report import figures
    if param not in df.columns:
        key = param.removeprefix("cfg/")
        raise SystemExit(f"error: runs have no {key} in config.yaml; fix: point at runs of the experiment "
                         f"that sweeps {key}")
    df = df.assign(**{param: pd.to_numeric(df[param], errors="coerce")})
    ok = df[df["status"] == "ok"]
    # every run goes to the table, so failed ones are counted (a setting whose runs all failed keeps a row)
    table = summarize(df, list(metrics) + ["cost/unlearn_s"], by=[param], pool_forget=True)
    md = [write_table(table, out / "table", f"## {label}: mean ± std over seeds and forget classes")]
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
        # a mean over the seeds that survived is not the mean of the setting: name the settings that lost runs
        failed = ", ".join(f"{v:g}" for v in sorted(lost.dropna().unique()))
        rows.append({"method": method, "forget": cls,
                     f"smallest {label} with At <= {chance:.2f}": hit[param].iloc[0] if len(hit) else "none",
                     f"{label} with failed runs": failed})
    md += [write_table(pd.DataFrame(rows), out / "smallest",
                       f"## Smallest {label} reaching chance per class")]
    return "\n".join(md)
