"""The LRA-NPP paper's tables (Chang et al. 2024, arXiv 2410.23693), one per data set (MNIST, CIFAR-10,
CIFAR-100) and unseen-data protocol: At, Ag, Fr, Fs, Time, G as mean ± std over seeds in the authors' layout,
their published re-run (summary.csv in their repository) beside ours, and paired tests against Retrain.
Usage: python experiments/paper_tables/analyze.py [RUNS_DIR ...] [--out DIR]; without RUNS_DIR it reads
runs/paper_tables, runs/paper_tables_cifar10 and runs/paper_tables_cifar100 (those that exist; the folder
$UNLEARN_BENCH_RUNS instead of runs/ where set). Output goes to experiments/paper_tables/results/."""

import argparse
import sys
from pathlib import Path

import pandas as pd

from unlearn_bench.report import figures, stats
from unlearn_bench.report.experiment import default_out, default_runs, load_or_exit
from unlearn_bench.report.markdown import PARETO_NOTE, write_table
from unlearn_bench.report.summary import PAPER_COLUMNS, pareto_runs, summarize

EXPERIMENTS = ("paper_tables", "paper_tables_cifar10", "paper_tables_cifar100")
SOURCE = "cfg/forget.unseen.source"
REPO = "ChangWenhan/LRA-NPP-Unlearning@1815094"  # summary.csv files added in 1a00959, unchanged since
OURS = {"LRA-NPP": "lra_npp", "Noise-GN": "lra_npp_gn", "Noise-LN": "lra_npp_ln", "Retrain": "retrain"}
# data label -> (their output folder, forget class, {their method: (At, Ag, Fr, Fs, Time s, G GiB) as
# (mean, std) pairs over their 5 runs}); G is their peak allocated GPU memory in GiB
AUTHORS = {
    "mnist": ("mnist/mnist_20260309_235631", 1, {
        "LRA-NPP": (0.0155, 0.0082, 0.9840, 0.0004, 0.9846, 0.0038, 0.0264, 0.0141,
                    0.87, 0.17, 0.160, 0.000),
        "Noise-GN": (0.7930, 0.3538, 0.5438, 0.2349, 0.2027, 0.3552, 0.0086, 0.0115,
                     0.79, 0.05, 0.136, 0.000),
        "Noise-LN": (0.7517, 0.3258, 0.3385, 0.1071, 0.2443, 0.3219, 0.0097, 0.0090,
                     0.84, 0.04, 0.136, 0.000),
        "Retrain": (0.0000, 0.0000, 0.9874, 0.0009, 1.0000, 0.0000, 0.0153, 0.0105,
                    28.65, 1.83, 0.175, 0.011)}),
    "cifar10": ("cifar10/cifar10_20260310_171651", 9, {
        "LRA-NPP": (0.0526, 0.0451, 0.9762, 0.0031, 0.9703, 0.0355, 0.0340, 0.0081,
                    7.45, 1.24, 0.673, 0.002),
        "Noise-GN": (0.9414, 0.1299, 0.7911, 0.0419, 0.0597, 0.1285, 0.0180, 0.0068,
                     7.54, 1.26, 0.672, 0.001),
        "Noise-LN": (0.6541, 0.4471, 0.6682, 0.1172, 0.3981, 0.4775, 0.0126, 0.0043,
                     8.14, 1.11, 0.672, 0.002),
        "Retrain": (0.0000, 0.0000, 0.9776, 0.0020, 0.9989, 0.0019, 0.0185, 0.0031,
                    199.71, 28.38, 3.118, 0.080)}),
    "cifar100": ("cifar100/cifar100_20260310_131801", 0, {
        "LRA-NPP": (0.0000, 0.0000, 0.9686, 0.0010, 1.0000, 0.0000, 0.0540, 0.0238,
                    8.86, 1.69, 0.680, 0.002),
        "Noise-GN": (0.0000, 0.0000, 0.0900, 0.0098, 1.0000, 0.0000, 0.0650, 0.0359,
                     9.85, 1.34, 0.678, 0.002),
        "Noise-LN": (0.0132, 0.0295, 0.0503, 0.0070, 0.9800, 0.0447, 0.0960, 0.0513,
                     17.33, 3.68, 0.679, 0.001),
        "Retrain": (0.0000, 0.0000, 0.9192, 0.0017, 0.9844, 0.0349, 0.0410, 0.0393,
                    492.51, 64.63, 5.620, 0.081)}),
}
LAYOUT = ["At", "Ag", "Fr", "Fs", "Time (s)", "G (MiB)"]  # the authors' column order


def authors_table(data: str) -> pd.DataFrame:
    """Their summary.csv rows in our layout: methods under our labels, G converted from GiB to MiB."""
    rows = []
    for theirs, v in AUTHORS[data][2].items():
        pairs = [(v[i], v[i + 1]) for i in range(0, 12, 2)]
        pairs[5] = (pairs[5][0] * 1024, pairs[5][1] * 1024)
        fmt = ["{:.3f} ± {:.3f}"] * 4 + ["{:.2f} ± {:.2f}", "{:.0f} ± {:.0f}"]
        rows.append({"data": data, "model": "theirs", "forget": str(AUTHORS[data][1]),
                     "method": f"{OURS[theirs]} (authors)", "n": 5, "failed": 0,
                     **{c: f.format(*p) for c, f, p in zip(LAYOUT, fmt, pairs, strict=True)}})
    return pd.DataFrame(rows)


def _authors_note(data: str) -> str:
    folder, cls, _ = AUTHORS[data]
    return (f"Authors' re-run (class {cls}, 5 runs): `{REPO}` "
            f"`examples/batch_experiments/outputs/{folder}/summary.csv`; their G is peak GPU memory, "
            f"shown in MiB.")


def _load(argv, name: str, doc: str):
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("runs_dirs", nargs="*",
                    help=f"default $UNLEARN_BENCH_RUNS/<experiment> (else runs/...) for "
                         f"{', '.join(EXPERIMENTS)}")
    ap.add_argument("--out", default=None,
                    help=f"where figures and tables go (default experiments/{name}/results/)")
    args = ap.parse_args(argv)
    every = EXPERIMENTS if name == "paper_tables" else (name,)  # this script reads all three by default
    present = [default_runs(e) for e in every if Path(default_runs(e)).is_dir()]
    dirs = args.runs_dirs or present or [default_runs(name)]
    df = load_or_exit(dirs, f"unlearn-bench -m experiment={name}", ("method", "forget"))
    out = Path(args.out) if args.out else default_out(name)
    out.mkdir(parents=True, exist_ok=True)
    return df, out


def main(argv=None, name: str = "paper_tables", doc: str = __doc__):
    df, out = _load(argv, name, doc)
    if SOURCE not in df.columns:
        df[SOURCE] = "unknown"
    md = ["# Paper tables: LRA-NPP vs Retrain, in the authors' layout", ""]
    for (data, source), g in df.groupby(["data", SOURCE], sort=True):
        tag = f"{data}_{source}"
        ours = summarize(g, list(PAPER_COLUMNS), rename=PAPER_COLUMNS)
        ours = ours[[c for c in ours.columns if c not in LAYOUT] + [c for c in LAYOUT if c in ours.columns]]
        md += [f"## {data}, unseen images from `{source}`", ""]
        if data in AUTHORS:
            table = pd.concat([ours, authors_table(data)], ignore_index=True)
            for c in ("expected", "found"):  # counts of our launches; the authors' rows have none
                if c in table.columns:
                    table[c] = table[c].astype(object).where(table[c].notna(), "")
            md += [_authors_note(data), ""]
        else:
            table = ours
            md += [f"(no published numbers for {data})", ""]
        md += [write_table(table, out / f"table_{tag}")]
        comp = stats.compare_to_reference(g, list(PAPER_COLUMNS))
        if not comp.empty:
            comp["metric"] = comp["metric"].map(PAPER_COLUMNS)
            md += [write_table(stats.format_comparison(comp), out / f"stats_{tag}",
                               "### Paired with Retrain")]
        if (g["status"] == "ok").any():  # the table's rows, grouped by the table's own function
            figures.pareto(pareto_runs(g), out / f"pareto_{tag}.png", forget="acc/forget_train",
                           retain="acc/retain_train", label="_label", eligible="_forgets",
                           title=f"{data}, unseen: {source}")
            md += [f"![At vs Ag, {data}, {source}](pareto_{tag}.png)", "", PARETO_NOTE, ""]
    (out / "README_results.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
