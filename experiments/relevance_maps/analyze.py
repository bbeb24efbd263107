"""Explainability of LRA-NPP: a gallery of each run's before/after relevance maps (lra_npp_relevance_maps.png)
and how concentrated the top-K relevance is: per forget class, the sorted occurrence rate of units in the N
top-K lists (mean ± std over seeds) and the share of all top-K slots the H edited units take.
Usage: python experiments/relevance_maps/analyze.py [RUNS_DIR] [--out DIR]"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from unlearn_bench.report import figures
from unlearn_bench.report.experiment import experiment_cli
from unlearn_bench.report.markdown import write_table


def main(argv=None):
    df, out = experiment_cli("relevance_maps", __doc__, argv)
    curves, cover, gallery = [], [], []
    (out / "maps").mkdir(exist_ok=True)
    for _, r in df[df["status"] == "ok"].sort_values(["forget", "seed"]).iterrows():
        run = Path(r["run_dir"])
        if not (run / "lra_npp.json").exists():
            continue
        rep = json.loads((run / "lra_npp.json").read_text())
        layer = rep["layers"][0]
        counts = np.sort(np.asarray(layer["counts"], dtype=float))[::-1] / max(rep["n"], 1)
        top = min(len(counts), 4 * layer["h"])  # the tail beyond 4H is flat and only hides the knee
        curves += [{"forget": str(r["forget"]), "seed": r["seed"], "rank": i + 1, "rate": c}
                   for i, c in enumerate(counts[:top])]
        share = sum(layer["unit_counts"]) / max(rep["n"] * layer["k"], 1)
        cover.append({"forget": str(r["forget"]), "seed": r["seed"], "N": rep["n"], "K": layer["k"],
                      "H": layer["h"], "share of top-K slots on the H units": share,
                      "At after": r.get("acc/forget_train")})
        src = run / "lra_npp_relevance_maps.png"
        if src.exists():
            name = f"{len(gallery):03d}-forget{r['forget']}-seed{r['seed']}.png"
            shutil.copyfile(src, out / "maps" / name)
            gallery.append(f"### forget {r['forget']}, seed {r['seed']}\n\n![maps](maps/{name})\n")
    if not cover:
        raise SystemExit("error: no lra_npp.json in these runs; fix: run experiment=relevance_maps "
                         "(method lra_npp)")
    figures.lines(pd.DataFrame(curves), "rank", "rate", out / "occurrence.png", hue="forget",
                  title="occurrence of units in the top-K lists (rate over N images), mean ± std over seeds")
    table = pd.DataFrame(cover).groupby("forget").agg(
        runs=("seed", "count"), N=("N", "first"), K=("K", "first"), H=("H", "first"),
        coverage=("share of top-K slots on the H units", "mean"), At_after=("At after", "mean")).reset_index()
    heading = "## Share of top-K relevance slots taken by the H edited units"
    md = ["# Relevance maps", "", write_table(table.round(3), out / "concentration", heading),
          "![occurrence](occurrence.png)", "", "## Maps (rows: image, original, unlearned)", "", *gallery]
    (out / "README_results.md").write_text("\n".join(md))
    print("\n".join(md[:4]))


if __name__ == "__main__":
    sys.exit(main())
