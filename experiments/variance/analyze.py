"""Where the spread of a result comes from: training seed (original, oracle, data split), method seed (the
method's own draws) and attack draw (a population attack's own subsamples), for each method and metric.

The design is nested: S training seeds, each with M method seeds, each run reporting its attacks as the mean
(and ``_std``) over R draws. Per method and metric, from the run values x[s, m]:
- method seed: the pooled within-seed std, sqrt(sum_s sum_m (x[s, m] - mean_s)^2 / sum_s (M_s - 1));
- training seed: the between-seed component of a one-way random-effects ANOVA,
  sqrt(max(0, var_s(mean_s) - var_method / M)), with M the harmonic mean of the M_s;
- attack draw: the draw noise of a run's reported value, the mean of R draws: the root mean square of the
  runs' ``<key>_std`` (one draw's spread, also printed as "one draw") divided by sqrt(R);
- total: the std of x over all S x M runs.
Usage: python experiments/variance/analyze.py [RUNS_DIR] [--out DIR]"""

import sys

import numpy as np
import pandas as pd

from unlearn_bench.report import figures
from unlearn_bench.report.experiment import experiment_cli
from unlearn_bench.report.markdown import write_table

METRICS = ["acc/forget_train", "acc/retain_train", "acc/forget_test", "acc/retain_test", "mia/svc_confidence",
           "mia/entropy_member_rate", "mia/loss_cv_acc", "mia/fs", "mia/fr"]
SOURCES = ["training seed", "method seed", "attack draw"]


def decompose(runs: pd.DataFrame, metric: str) -> dict:
    """Per-source std (and how many values each rests on) of ``metric`` over one method's runs."""
    x = runs.assign(_x=pd.to_numeric(runs[metric], errors="coerce")).dropna(subset=["_x"])
    out = {"mean": x["_x"].mean(), "runs": len(x)}
    if x.empty:
        return out
    per = x.groupby("seed")["_x"]
    sizes, means = per.size(), per.mean()
    dof = int((sizes - 1).sum())
    within = float(((x["_x"] - x["seed"].map(means)) ** 2).sum() / dof) if dof else np.nan
    out["total"] = x["_x"].std(ddof=1) if len(x) > 1 else np.nan
    out["method seed"], out["method seed n"] = np.sqrt(within), dof
    if len(means) > 1:
        m = len(sizes) / float((1.0 / sizes).sum())
        out["training seed"] = np.sqrt(max(0.0, means.var(ddof=1) - (within / m if dof else 0.0)))
    else:
        out["training seed"] = np.nan
    out["training seed n"] = len(means)
    if f"{metric}_std" in x.columns:
        d = pd.to_numeric(x[f"{metric}_std"], errors="coerce").dropna()
        r = pd.to_numeric(x.get("eval/mia_draws", pd.Series(np.nan, index=x.index)), errors="coerce")
        one = float(np.sqrt((d ** 2).mean())) if len(d) else np.nan
        out["one draw"] = one
        if len(d) and r.notna().all() and r.nunique() == 1:  # one R for all runs: the mean's draw noise
            out["attack draw"] = one / np.sqrt(r.iloc[0])
            out["attack draw n"] = f"{int(r.iloc[0])} x {len(d)}"
    return out


def table(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The printed table (cells with n) and the numeric matrix behind its figure."""
    ok = df[df["status"] == "ok"].copy()
    ok["method_seed"] = ok["method_seed"] if "method_seed" in ok.columns else ok["seed"]
    rows, grid = [], []
    for (data, model, method), g in ok.groupby(["data", "model", "method"], sort=True):
        for metric in [m for m in METRICS if m in g.columns]:
            d = decompose(g, metric)
            if "total" not in d:
                continue
            row = {"data": data, "model": model, "method": method, "metric": metric, "n runs": d["runs"],
                   "mean": f"{d['mean']:.3f}", "total std": _num(d["total"])}
            for s in SOURCES:
                row[s] = f"{_num(d[s])} (n={d[s + ' n']})" if s in d and np.isfinite(d[s]) else "—"
            row["one draw"] = _num(d.get("one draw"))
            rows.append(row)
            grid.append({"label": f"{method} {metric}", **{s: d.get(s, np.nan) for s in SOURCES}})
    return pd.DataFrame(rows), pd.DataFrame(grid)


def _num(v) -> str:
    return f"{v:.3f}" if v is not None and np.isfinite(v) else "—"


def main(argv=None):
    df, out = experiment_cli("variance", __doc__, argv)
    t, grid = table(df)
    seeds = df.groupby("method")["seed"].nunique().max()
    mseeds = df.groupby(["method", "seed"])["method_seed"].nunique().max() \
        if "method_seed" in df.columns else 1
    heading = (f"## Spread by source: std of each metric over training seeds, method seeds and attack draws "
               f"(up to {seeds} seeds x {mseeds} method seeds per method; n = values each estimate rests "
               "on; attack draw = the draw noise of the reported mean over R draws, one draw = a single "
               "draw's std)")
    md = write_table(t, out / "table", heading)
    if not grid.empty:
        figures.heatmap(grid[SOURCES].to_numpy(float), list(grid["label"]), SOURCES, out / "sources.png",
                        title="std by source (blank: not measured)", fmt="{:.3f}", cmap="viridis")
        md += "\n![std by source](sources.png)\n"
    (out / "README_results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    sys.exit(main())
