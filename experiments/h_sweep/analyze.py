"""H sweep of LRA-NPP: forget and retain accuracy against H (perturbed neurons), mean ± std over seeds and
forget classes, and per class the smallest H that brings forget accuracy down to chance.
Usage: python experiments/h_sweep/analyze.py [RUNS_DIR] [--out DIR]"""

import sys

from unlearn_bench.report.experiment import experiment_cli
from unlearn_bench.report.sweeps import sweep_report


def main(argv=None):
    df, out = experiment_cli("h_sweep", __doc__, argv)
    md = sweep_report(df, "cfg/method.h", out, "H", logx=True)
    (out / "README_results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    sys.exit(main())
