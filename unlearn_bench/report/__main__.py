"""``python -m unlearn_bench.report``: the same command as ``unlearn-bench-report``."""

from unlearn_bench.report.tables import main

main()
