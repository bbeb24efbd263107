"""LRP rules for LRA-NPP: a rule x metric heatmap of means, a table (mean ± std, n) and paired tests of
every rule against the authors' default, epsilon, on runs matched by forget class and seed.
Usage: python experiments/lrp_rules/analyze.py [RUNS_DIR] [--out DIR]"""

import sys

from unlearn_bench.report import figures, stats
from unlearn_bench.report.experiment import experiment_cli
from unlearn_bench.report.markdown import write_table
from unlearn_bench.report.summary import summarize

METRICS = ["acc/forget_train", "acc/retain_train", "acc/retain_test", "mia/fr", "cost/unlearn_s"]
RULE = "cfg/method.rule"


def main(argv=None):
    df, out = experiment_cli("lrp_rules", __doc__, argv)
    if RULE not in df.columns:
        raise SystemExit("error: runs have no method.rule in config.yaml; fix: point at runs of "
                         "experiment=lrp_rules")
    metrics = [m for m in METRICS if m in df.columns]
    ok = df[df["status"] == "ok"]
    md = ["# LRP rules", "", write_table(summarize(df, metrics, by=[RULE], pool_forget=True), out / "table",
                                         "## Mean ± std over seeds and forget classes")]
    means = ok.groupby(RULE)[metrics].mean(numeric_only=True)
    figures.heatmap(means.to_numpy(), list(means.index), metrics, out / "rules_heatmap.png",
                    title=f"LRP rule x metric, mean over {ok.groupby(RULE).size().min()}+ runs each",
                    fmt="{:.3f}")
    md += ["![rule x metric](rules_heatmap.png)", ""]
    # paired against epsilon: relabel rules as methods so stats pairs them by data, model, forget and seed
    as_methods = ok.assign(method="rule=" + ok[RULE].astype(str))
    comp = stats.compare_to_reference(as_methods, metrics, reference="rule=epsilon")
    if not comp.empty:
        md += [write_table(stats.format_comparison(comp), out / "stats_vs_epsilon", "## Paired with epsilon")]
    (out / "README_results.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
