"""Overlap of the neurons LRA-NPP selects: Jaccard index of the selected unit sets between forget classes
(same seed, averaged over seeds; the diagonal is the overlap of one class across seeds, i.e. stability),
against the overlap two random sets of the same size would have. Reads each run's lra_npp.json.
Usage: python experiments/neuron_overlap/analyze.py [RUNS_DIR] [--out DIR]"""

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from unlearn_bench.report import figures
from unlearn_bench.report.experiment import experiment_cli
from unlearn_bench.report.markdown import write_table


def selections(df: pd.DataFrame) -> pd.DataFrame:
    """(forget, seed, units, width) of the first analysed layer of every LRA-NPP run with an lra_npp.json."""
    rows = []
    for _, r in df[df["status"] == "ok"].iterrows():
        p = Path(r["run_dir"]) / "lra_npp.json"
        if p.exists():
            layer = json.loads(p.read_text())["layers"][0]
            rows.append({"forget": str(r["forget"]), "seed": r["seed"], "units": frozenset(layer["units"]),
                         "width": layer["width"]})
    return pd.DataFrame(rows)


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a | b else float("nan")


def main(argv=None):
    df, out = experiment_cli("neuron_overlap", __doc__, argv)
    sel = selections(df)
    if sel.empty:
        raise SystemExit("error: no lra_npp.json in these runs; fix: run experiment=neuron_overlap "
                         "(method lra_npp)")
    classes = sorted(sel["forget"].unique(), key=lambda c: (len(c), c))
    m = np.full((len(classes), len(classes)), np.nan)
    for i, a in enumerate(classes):
        for j, b in enumerate(classes):
            A, B = sel[sel["forget"] == a], sel[sel["forget"] == b]
            if i == j:  # stability: the same class under different seeds (different unseen images)
                vals = [jaccard(x, y) for x, y in itertools.combinations(A["units"], 2)]
            else:       # specificity: different classes, same seed
                pairs = A.merge(B, on="seed")
                vals = [jaccard(x, y) for x, y in zip(pairs["units_x"], pairs["units_y"])]
            m[i, j] = np.mean(vals) if vals else np.nan
    h, w = np.mean([len(u) for u in sel["units"]]), int(sel["width"].iloc[0])
    chance = h / (2 * w - h)  # E|A∩B| / E|A∪B| for two random H-subsets of W units (ratio of expectations)
    figures.heatmap(m, classes, classes, out / "overlap_heatmap.png", vmin=0, vmax=1, xlabel="forget class",
                    ylabel="forget class",
                    title=f"Jaccard of selected units (diag: across seeds); random ≈ {chance:.2f}")
    off = m[~np.eye(len(classes), dtype=bool)]
    between = round(float(np.nanmean(off)), 3) if off.size else float("nan")
    summary = pd.DataFrame([{"runs": len(sel), "classes": len(classes), "seeds": sel["seed"].nunique(),
                             "mean H": round(h, 1), "layer width": w, "random-set Jaccard": round(chance, 3),
                             "within class (stability)": round(float(np.nanmean(np.diag(m))), 3),
                             "between classes": between}])
    md = ["# Neuron overlap", "", write_table(summary, out / "summary", "## Summary"),
          "![overlap](overlap_heatmap.png)", ""]
    (out / "README_results.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
