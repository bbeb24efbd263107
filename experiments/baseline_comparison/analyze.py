"""Every method against Original and Retrain: the full report (tables with n and spread, Pareto figure of
forget vs retain accuracy with cost as marker size, paired tests against Retrain), the LRA-NPP paper's
columns, and a method x forget-class heatmap of forget accuracy.
Usage: python experiments/baseline_comparison/analyze.py [RUNS_DIR] [--out DIR]"""

import sys

from unlearn_bench.report import figures
from unlearn_bench.report.experiment import experiment_cli
from unlearn_bench.report.markdown import markdown_report, write_table
from unlearn_bench.report.summary import DEFAULT_COLUMNS, PAPER_COLUMNS, row_order, summarize


def main(argv=None):
    df, out = experiment_cli("baseline_comparison", __doc__, argv)
    extra = ["mia/loss_cv_acc", "dist/js_forget"]
    columns = list(dict.fromkeys(DEFAULT_COLUMNS + list(PAPER_COLUMNS) + extra))
    md = markdown_report(df, out, title="Baseline comparison", columns=columns)
    # every forget class pooled: n = classes x seeds per method
    pooled = summarize(df, list(PAPER_COLUMNS), rename=PAPER_COLUMNS, pool_forget=True)
    write_table(pooled, out / "paper_columns", "## The paper's columns, all forget classes pooled")
    ok = df[df["status"] == "ok"]
    if not ok.empty:
        grid = ok.pivot_table(index="method", columns="forget", values="acc/forget_train", aggfunc="mean")
        grid = grid.loc[sorted(grid.index, key=row_order)]
        figures.heatmap(grid.to_numpy(), list(grid.index), list(grid.columns), out / "forget_acc_heatmap.png",
                        title="forget accuracy (At), mean over seeds", xlabel="forget class", vmin=0, vmax=1,
                        cmap="magma")
    print(md)


if __name__ == "__main__":
    sys.exit(main())
