"""``python -m unlearn_bench.cli``: the same entry point as ``unlearn-bench``."""

from unlearn_bench.cli import main

main()
