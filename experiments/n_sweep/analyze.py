"""N sweep of LRA-NPP: forget and retain accuracy against N (unseen images), mean ± std over seeds and forget
classes, and per class the smallest N that brings forget accuracy down to chance.
Usage: python experiments/n_sweep/analyze.py [RUNS_DIR] [--out DIR]"""

import sys

from unlearn_bench.report.experiment import experiment_cli
from unlearn_bench.report.sweeps import sweep_report


def main(argv=None):
    df, out = experiment_cli("n_sweep", __doc__, argv)
    md = sweep_report(df, "cfg/method.n", out, "N", logx=True)
    (out / "README_results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    sys.exit(main())
