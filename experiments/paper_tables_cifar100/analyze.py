"""The LRA-NPP paper's CIFAR-100 table (Chang et al. 2024, arXiv 2410.23693) in the authors' layout
(At, Ag, Fr, Fs, Time, G), their published re-run beside ours, paired tests against Retrain:
experiments/paper_tables/analyze.py over this experiment's runs.
Usage: python experiments/paper_tables_cifar100/analyze.py [RUNS_DIR ...] [--out DIR]"""

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "paper_tables_analyze", Path(__file__).resolve().parent.parent / "paper_tables" / "analyze.py")
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)


def main(argv=None):
    return _shared.main(argv, name="paper_tables_cifar100", doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
