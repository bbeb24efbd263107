"""The LRA-NPP paper's MNIST table (Chang et al. 2024, arXiv 2410.23693): At, Ag, Fr, Fs, Time, G as
mean ± std over seeds, one table per unseen-data protocol, paired tests against Retrain and the authors'
published re-run beside ours. Usage: python experiments/paper_tables/analyze.py [RUNS_DIR] [--out DIR]"""

import sys

import pandas as pd

from unlearn_bench import figures, stats
from unlearn_bench.report import (
    PAPER_COLUMNS,
    _original_rows,
    experiment_cli,
    group_keys,
    summarize,
    write_table,
)

# lra_npp.md: the authors' published MNIST re-run, mean over 5 seeds
AUTHORS = "| method | At | Ag | Fr | Time (s) |\n|---|---|---|---|---|\n" \
          "| lra_npp (authors) | 0.016 | 0.984 | 0.985 | 0.9 |\n| retrain (authors) | 0 | 0.987 | 1.000 | 28.7 |\n"
SOURCE = "cfg/forget.unseen.source"


def main(argv=None):
    df, out = experiment_cli("paper_tables", __doc__, argv, config_nodes=("method", "forget"))
    if SOURCE not in df.columns:
        df[SOURCE] = "unknown"
    md = ["# Paper table: LRA-NPP vs Retrain", "", "Authors' published numbers (MNIST, class 1):", "", AUTHORS]
    for source, g in df.groupby(SOURCE, sort=True):
        table = summarize(g, list(PAPER_COLUMNS), rename=PAPER_COLUMNS)
        md += [write_table(table, out / f"table_{source}", f"## Ours, unseen images from `{source}`")]
        comp = stats.compare_to_reference(g, list(PAPER_COLUMNS))
        if not comp.empty:
            comp["metric"] = comp["metric"].map(PAPER_COLUMNS)
            md += [write_table(stats.format_comparison(comp), out / f"stats_{source}",
                               f"### Paired with Retrain (`{source}`)")]
        ok = g[g["status"] == "ok"]
        if not ok.empty:
            figures.pareto(pd.concat([_original_rows(ok, group_keys(ok)), ok]), out / f"pareto_{source}.png",
                           forget="acc/forget_train", retain="acc/retain_train", title=f"unseen: {source}")
            md += [f"![At vs Ag, {source}](pareto_{source}.png)", ""]
    (out / "README_results.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
